"""The NetworkPolicies allow exactly the call graph and nothing else: default deny,
then channel edge -> its router bulkhead, subscribers -> confirmations, router ->
cores, bridge and confirmations, bridge -> mainframe, confirmations -> webhooks,
DNS, kubelet -> health port, Prometheus -> metrics port, every gRPC pod -> the platform's
OpenTelemetry Collector (OTLP/gRPC, 4317) and to the endpoint its configuration names; in prod,
the cores, the routers, the bridge and confirmations -> the database (5432), its instances -> each other (5432), the
CloudNativePG operator and kubelet -> them (status 8000, 5432), and they -> the Kubernetes API
server and the object storage (443). The allowed connections
are computed from the rendered policies the way a CNI reads them (matchLabels
selectors, named ports resolved on the destination pod) and compared whole."""

import copy
import ipaddress

import pytest

from paymesh.topology import SERVICES
from tests.k8s.manifests import OVERLAYS, build_variant, of_kind, render, workloads

ROUTER_GROUPS = ("digital", "atm", "agent-store")
ROUTERS = [f"payment-router-{group}" for group in ROUTER_GROUPS]
CALLEES = ("core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations")
EDGE_NS = "ns[paymesh.bank/tier=channel-edge]"
DNS = "ns[kubernetes.io/metadata.name=kube-system] pods[k8s-app=kube-dns]"
# The node-local resolvers a pod's resolv.conf may name instead (k8s/components/dns-link-local):
NODE_LOCAL_DNS_CACHE, CLOUD_DNS = "ip[169.254.20.10/32]", "ip[169.254.169.254/32]"
RESOLVERS = {"dev": (DNS,), "prod": (DNS, NODE_LOCAL_DNS_CACHE, CLOUD_DNS)}
PROMETHEUS = "ns[kubernetes.io/metadata.name=monitoring] pods[app.kubernetes.io/name=prometheus]"
COLLECTOR = "ns[kubernetes.io/metadata.name=monitoring] pods[app.kubernetes.io/name=opentelemetry-collector]"
OTLP_ENDPOINT = "https://otel-collector.monitoring.svc.cluster.local:4317"  # the collector's Service, its port
# Not the internet: private, loopback, link-local, carrier-grade NAT, "this network", benchmarking,
# multicast, reserved. A webhook to any of them is refused.
NOT_THE_INTERNET = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
                    "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")
WEBHOOKS = f"ip[0.0.0.0/0 except {','.join(sorted(NOT_THE_INTERNET))}]"
NODES = {"dev": "ip[172.18.0.0/16]", "prod": "ip[10.20.0.0/20]"}
PROD_MAINFRAME = ("10.50.0.10", 4790)
# prod's PostgreSQL (k8s/components/postgres): the CloudNativePG cluster's instances, modelled as one
# pod; the operator as its Helm chart installs it; the API server's address (the prod overlay's).
DATABASE = "paymesh-db"
CNPG_OPERATOR = "ns[kubernetes.io/metadata.name=cnpg-system] pods[app.kubernetes.io/name=cloudnative-pg]"
PROD_API_SERVER = "ip[172.16.0.2/32]"
DATABASE_CLIENTS = ("core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations", *ROUTERS)


def port_of(name: str) -> int:
    return SERVICES[name].default_port


def expected_graph(overlay: str, scraper: str = PROMETHEUS) -> set[tuple]:
    grpc_pods = [*ROUTERS, *CALLEES]
    every_pod = grpc_pods + (["mainframe-emulator"] if overlay == "dev" else [])
    edges = {(f"{EDGE_NS} pods[paymesh.bank/channel-group={g}]", f"payment-router-{g}", "TCP", 50051)
             for g in ROUTER_GROUPS}
    edges |= {(f"{EDGE_NS} pods[]", "confirmations", "TCP", port_of("confirmations"))}
    edges |= {(router, callee, "TCP", port_of(callee)) for router in ROUTERS for callee in CALLEES}
    edges |= {("confirmations", WEBHOOKS, "TCP", 443)}
    edges |= {(pod, dns, proto, 53) for pod in every_pod for dns in RESOLVERS[overlay] for proto in ("UDP", "TCP")}
    edges |= {(NODES[overlay], pod, "TCP", 8081) for pod in grpc_pods}
    edges |= {(scraper, pod, "TCP", 9464) for pod in grpc_pods}
    edges |= {(pod, COLLECTOR, "TCP", 4317) for pod in grpc_pods}  # spans to the collector
    if overlay == "dev":
        emulator_port = port_of("mainframe-emulator")
        edges |= {("mainframe-bridge", "mainframe-emulator", "TCP", emulator_port),
                  (NODES[overlay], "mainframe-emulator", "TCP", emulator_port)}
    else:
        address, port = PROD_MAINFRAME
        edges |= {("mainframe-bridge", f"ip[{address}/32]", "TCP", port)}
        edges |= {(client, DATABASE, "TCP", 5432) for client in DATABASE_CLIENTS}
        edges |= {(DATABASE, DATABASE, "TCP", 5432),  # replication
                  (CNPG_OPERATOR, DATABASE, "TCP", 8000), (CNPG_OPERATOR, DATABASE, "TCP", 5432),
                  (NODES[overlay], DATABASE, "TCP", 8000),  # kubelet's probes of the instance manager
                  (DATABASE, PROD_API_SERVER, "TCP", 443),
                  (DATABASE, WEBHOOKS, "TCP", 443)}  # WAL and backups to the object storage
        edges |= {(DATABASE, dns, proto, 53) for dns in RESOLVERS[overlay] for proto in ("UDP", "TCP")}
    return edges


def labels_text(selector: dict) -> str:
    assert set(selector) <= {"matchLabels"}, "matchExpressions are not used here (and not modelled)"
    return ",".join(f"{k}={v}" for k, v in sorted(selector.get("matchLabels", {}).items()))


def matches(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}
    return selector.get("matchLabels", {}).items() <= labels.items()


def database_pods(database: dict) -> dict:
    """The pod template of a CloudNativePG Cluster's instances, as the operator makes them: its labels
    (docs/src/labels_annotations.md: cnpg.io/cluster, cnpg.io/podRole; the inheritedMetadata) and the
    instance container's ports (docs/src/security.md, "Exposed Ports")."""
    labels = {"cnpg.io/cluster": database["metadata"]["name"], "cnpg.io/podRole": "instance",
              **database["spec"].get("inheritedMetadata", {}).get("labels", {})}
    ports = [{"name": "postgresql", "containerPort": 5432}, {"name": "metrics", "containerPort": 9187},
             {"name": "status", "containerPort": 8000}]
    return {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "postgres", "ports": ports}]}}


class Cluster:
    def __init__(self, objects):
        self.pods = {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(objects)}
        self.pods |= {d["metadata"]["name"]: database_pods(d) for d in of_kind(objects, "Cluster")}
        self.policies = of_kind(objects, "NetworkPolicy")

    def labels(self, pod):
        return self.pods[pod]["metadata"]["labels"]

    def selected(self, selector):
        return [p for p in self.pods if matches(selector, self.labels(p))]

    def resolve(self, port, pod):
        """A named port means the destination pod's container port of that name."""
        if isinstance(port, int) or pod is None:
            return port
        (container,) = self.pods[pod]["spec"]["containers"]
        found = [p["containerPort"] for p in container["ports"] if p["name"] == port]
        return found[0] if found else f"unresolved:{port}"

    def peers(self, rule_peers):
        """(in-namespace pod or None, external description) for each peer of a rule."""
        if rule_peers is None:
            return [(None, "ANYWHERE")]
        for peer in rule_peers:
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                except_ = f" except {','.join(sorted(block['except']))}" if block.get("except") else ""
                yield None, f"ip[{block['cidr']}{except_}]"
            elif "namespaceSelector" in peer:
                yield None, (f"ns[{labels_text(peer['namespaceSelector'])}] "
                             f"pods[{labels_text(peer.get('podSelector', {}))}]")
            else:
                for pod in self.selected(peer["podSelector"]):
                    yield pod, pod

    def allowed(self, direction: str):
        """Every (source, destination, protocol, port) one direction's rules allow."""
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        edges = set()
        for policy in self.policies:
            if direction not in policy["spec"]["policyTypes"]:
                continue
            for pod in self.selected(policy["spec"]["podSelector"]):
                for rule in policy["spec"].get(key, []):
                    for peer_pod, peer in self.peers(rule.get(peers_key)):
                        for port in rule.get("ports") or [{"port": "ALL"}]:
                            destination = pod if direction == "Ingress" else peer_pod
                            number = self.resolve(port["port"], destination)
                            pair = (peer, pod) if direction == "Ingress" else (pod, peer)
                            edges.add((*pair, port.get("protocol", "TCP"), number))
        return edges

    def graph(self):
        ingress, egress = self.allowed("Ingress"), self.allowed("Egress")
        internal = set(self.pods)
        both_internal = lambda e: e[0] in internal and e[1] in internal  # noqa: E731
        connections = {e for e in ingress & egress if both_internal(e)}
        connections |= {e for e in ingress if e[0] not in internal}
        connections |= {e for e in egress if e[1] not in internal}
        half_open = {e for e in ingress ^ egress if both_internal(e)}
        return connections, half_open


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_call_graph(overlay):
    connections, half_open = Cluster(render(overlay)).graph()
    assert half_open == set(), "an in-namespace rule allowed on one side only"
    assert sorted(connections - expected_graph(overlay)) == [], "allowed beyond the call graph"
    assert sorted(expected_graph(overlay) - connections) == [], "call graph edges not allowed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_else_is_denied_by_default(overlay):
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(render(overlay), "NetworkPolicy")}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_the_graph_check_bites():
    """Loosening one rule (the cores open to any pod of the namespace) is caught."""
    objects = [dict(o) for o in render("dev")]
    for i, obj in enumerate(objects):
        if obj["kind"] == "NetworkPolicy" and obj["metadata"]["name"] == "loan-cores":
            ingress = [{**obj["spec"]["ingress"][0], "from": [{"podSelector": {}}]}]
            objects[i] = {**obj, "spec": {**obj["spec"], "ingress": ingress}}
    connections, half_open = Cluster(objects).graph()
    assert ("confirmations", "core-cash", "TCP", 50061) in half_open
    assert connections == expected_graph("dev")  # no egress to the cores from elsewhere, so still closed


def _given_a_database_url(objects) -> set[str]:
    return {w["metadata"]["name"] for w in workloads(objects)
            if any(e["name"].endswith("_DATABASE_URL") for e in w["spec"]["template"]["spec"]["containers"][0]
                   .get("env", []))}


def _reaching_the_database(objects) -> set[str]:
    connections, _ = Cluster(objects).graph()
    return {src for src, dst, _, port in connections if dst == DATABASE and src != DATABASE
            and src != CNPG_OPERATOR and not src.startswith("ip[")}


def test_exactly_the_pods_given_a_database_url_reach_the_database():
    objects = render("prod")
    assert _given_a_database_url(objects) == set(DATABASE_CLIENTS)
    assert _reaching_the_database(objects) == set(DATABASE_CLIENTS)
    # And the check bites: a pod keeping the clients' label once its URL is gone (core-cash's) is seen.
    stripped = copy.deepcopy(objects)
    for obj in stripped:
        if obj["kind"] == "StatefulSet" and obj["metadata"]["name"] == "core-cash":
            container = obj["spec"]["template"]["spec"]["containers"][0]
            container["env"] = [e for e in container["env"] if not e["name"].endswith("_DATABASE_URL")]
    assert _reaching_the_database(stripped) - _given_a_database_url(stripped) == {"core-cash"}


def test_prod_api_server_address_is_the_sites():
    (policy,) = [p for p in of_kind(render("prod"), "NetworkPolicy") if p["metadata"]["name"] == "paymesh-db-egress"]
    assert {"ipBlock": {"cidr": PROD_API_SERVER[3:-1]}} in [peer for rule in policy["spec"]["egress"]
                                                            for peer in rule["to"]]


def test_prod_mainframe_egress_is_the_configured_address():
    (config_map,) = [c for c in of_kind(render("prod"), "ConfigMap")
                     if c["metadata"]["name"].startswith("paymesh-config")]
    address, port = config_map["data"]["PAYMESH_MAINFRAME_EMULATOR_ADDR"].rsplit(":", 1)
    assert (address, int(port)) == PROD_MAINFRAME


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_grpc_pod_exports_to_the_collector_the_policy_allows_and_nothing_else_does(overlay):
    objects = render(overlay)
    (config_map,) = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("paymesh-config")]
    settings = config_map["data"]
    assert settings["OTEL_EXPORTER_OTLP_ENDPOINT"] == OTLP_ENDPOINT
    assert settings["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert "PAYMESH_TRACE_EXPORTER" not in settings  # (it would win over the OTEL_* variables)
    cluster = Cluster(objects)
    to_collector = {(src, port) for src, dst, _, port in cluster.allowed("Egress") if dst == COLLECTOR}
    assert to_collector == {(pod, 4317) for pod in [*ROUTERS, *CALLEES]}
    # The client certificate the exporter presents is mounted where the variables say, in every gRPC pod.
    for workload in workloads(objects):
        template = workload["spec"]["template"]
        if template["metadata"]["labels"].get("paymesh.bank/grpc") != "true":
            continue
        (container,) = template["spec"]["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "otlp"]
        assert mount["readOnly"] and mount["mountPath"] == "/etc/paymesh/otlp"
        (volume,) = [v for v in template["spec"]["volumes"] if v["name"] == "otlp"]
        (source,) = volume["projected"]["sources"]
        files = {f"/etc/paymesh/otlp/{item['path']}" for item in source["secret"]["items"]}
        assert files == {settings[f"OTEL_EXPORTER_OTLP_{name}"] for name in ("CERTIFICATE", "CLIENT_KEY",
                                                                              "CLIENT_CERTIFICATE")}


def test_webhooks_reach_no_address_that_is_not_the_internet():
    (policy,) = [p for p in of_kind(render("prod"), "NetworkPolicy") if p["metadata"]["name"] == "confirmations"]
    (block,) = [peer["ipBlock"] for rule in policy["spec"]["egress"] for peer in rule["to"]]
    excluded = [ipaddress.ip_network(cidr) for cidr in block["except"]]
    for address in ("100.64.0.1", "100.127.255.254", "0.0.0.1", "198.18.0.1", "198.19.255.254", "169.254.169.254",
                    "10.1.2.3", "172.31.0.1", "192.168.1.1", "127.0.0.1", "224.0.0.251", "255.255.255.255"):
        assert any(ipaddress.ip_address(address) in net for net in excluded), address
    for public in ("8.8.8.8", "190.81.1.1", "100.63.255.255", "100.128.0.1", "198.20.0.1"):  # a bank's endpoints
        assert not any(ipaddress.ip_address(public) in net for net in excluded), public


def test_prod_dns_goes_to_kube_dns_node_local_dns_cache_and_cloud_dns_on_port_53_only():
    (policy,) = [p for p in of_kind(render("prod"), "NetworkPolicy") if p["metadata"]["name"] == "dns-egress"]
    (rule,) = policy["spec"]["egress"]
    assert {"ipBlock": {"cidr": "169.254.20.10/32"}} in rule["to"]  # NodeLocal DNSCache
    assert {"ipBlock": {"cidr": "169.254.169.254/32"}} in rule["to"]  # Cloud DNS (the metadata server's 53)
    assert any("podSelector" in peer for peer in rule["to"])  # kube-dns itself still
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


SCRAPED_BY_MANAGED_PROMETHEUS = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../overlays/prod]
components: [../components/scrape-from-managed-prometheus]
"""


def test_the_scrape_source_is_a_setting_and_the_rest_of_the_graph_stays():
    objects = build_variant("gmp", SCRAPED_BY_MANAGED_PROMETHEUS)
    collectors = "ns[kubernetes.io/metadata.name=gmp-system] pods[app.kubernetes.io/name=collector]"
    connections, half_open = Cluster(objects).graph()
    assert half_open == set()
    assert connections == expected_graph("prod", scraper=collectors)
    (scrape,) = of_kind(objects, "PodMonitoring")
    assert scrape["spec"]["selector"] == {"matchLabels": {"paymesh.bank/grpc": "true"}}
