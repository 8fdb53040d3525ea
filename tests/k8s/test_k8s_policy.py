"""The rules a platform team checks, asserted on every workload of every overlay:
probes, resources, the restricted security context, writable paths, graceful stop,
TLS material, Services that reach a real port, HPA/PDB per router bulkhead,
scrape annotations, and an environment made only of variables the code reads."""

import ast
import re
from pathlib import Path

import pytest

from paymesh_tools.dev_pki import service_dns_names
from paymesh.topology import ROUTER, ROUTER_BULKHEADS, SERVICES, Identity, router_identity
from tests.k8s.manifests import OVERLAYS, REPO, of_kind, render, workloads, RUNTIME_DIRS

SERVICE_OF_MODULE = {spec.module: spec.name for spec in SERVICES.values()}
ROUTER_GROUPS = tuple(ROUTER_BULKHEADS)
# Provided by the platform team in prod, documented in docs/kubernetes.md; nothing else may be missing.
# Published by others: the identity provider's key set (prod), the mesh CA's CRL (optional, both).
# prod's database: the service account key its WAL and backups are written to the bucket with.
EXTERNAL = {"prod": {("ConfigMap", "paymesh-jwt-issuer"), ("ConfigMap", "paymesh-crl"),
                     ("Secret", "paymesh-postgres-backup-credentials")},
            "dev": {("ConfigMap", "paymesh-crl")}}
FLUSH_MARGIN_SECONDS = 5  # after the grace: close stores, flush spans and metrics


def config(objects) -> dict[str, str]:
    (config_map,) = [c for c in of_kind(objects, "ConfigMap") if c["metadata"]["name"].startswith("paymesh-config")]
    return config_map["data"]


def pod(workload) -> dict:
    return workload["spec"]["template"]["spec"]


def container(workload) -> dict:
    (only,) = pod(workload)["containers"]
    return only


def service_of(workload) -> str:
    return SERVICE_OF_MODULE[container(workload)["args"][0]]


def identity_of(workload) -> Identity:
    """The identity the workload's process presents: a router bulkhead's own, or its service's."""
    env = {e["name"]: e.get("value") for e in container(workload).get("env", [])}
    if service_of(workload) == "payment-router":
        return router_identity(env.get("PAYMESH_ROUTER_BULKHEAD", ""))
    return SERVICES[service_of(workload)].identity


def database_url(workload) -> str | None:
    """The PostgreSQL URL the workload's service opens its store with (PAYMESH_<SERVICE>_DATABASE_URL,
    paymesh/postgres.py), or None: its store is SQLite under PAYMESH_DATA_DIR."""
    urls = [e["value"] for e in container(workload).get("env", []) if e["name"].endswith("_DATABASE_URL")]
    assert len(urls) <= 1
    return urls[0] if urls else None


def ports(workload) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container(workload)["ports"]}


def cases():
    return [pytest.param(overlay, w["metadata"]["name"], id=f"{overlay}-{w['metadata']['name']}")
            for overlay in OVERLAYS for w in workloads(render(overlay))]


def find(overlay, name) -> dict:
    return next(w for w in workloads(render(overlay)) if w["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay,name", cases())
def test_workload_runs_a_known_service_from_the_one_image(overlay, name):
    workload = find(overlay, name)
    assert container(workload)["args"][0] in SERVICE_OF_MODULE
    assert name == service_of(workload) or name.startswith(f"{service_of(workload)}-")
    images = {container(w)["image"] for w in workloads(render(overlay))}
    assert len(images) == 1
    assert re.search(r":[0-9a-z.]+$|@sha256:[0-9a-f]{64}$", image := images.pop()) and ":latest" not in image
    assert ports(workload)[("mainframe" if name == "mainframe-emulator" else "grpc")] == (
        SERVICES[service_of(workload)].default_port)


@pytest.mark.parametrize("overlay,name", cases())
def test_probes_resources_and_restricted_security(overlay, name):
    workload, settings = find(overlay, name), config(render(overlay))
    c, spec = container(workload), pod(workload)
    if name == "mainframe-emulator":  # TLS records, not gRPC: kubelet can only connect
        probes = [c["readinessProbe"], c["livenessProbe"]]
        assert all(p["tcpSocket"]["port"] == "mainframe" for p in probes)
    else:
        probes = [c["startupProbe"], c["readinessProbe"], c["livenessProbe"]]
        health_port = int(settings["PAYMESH_HEALTH_PORT"])
        assert all(p["grpc"]["port"] == health_port == ports(workload)["health"] for p in probes)
        # Ready means serving; alive means the process answers (a prod core waiting for its loans
        # to be imported is NOT_SERVING, and must not be restarted for it).
        assert [p["grpc"].get("service") for p in probes] == ["liveness", None, "liveness"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind]), kind
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["securityContext"] == {
        "runAsNonRoot": True, "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in v for v in spec["volumes"])


@pytest.mark.parametrize("overlay,name", cases())
def test_writable_paths_are_volumes_and_the_pki_is_read_only(overlay, name):
    workload, settings = find(overlay, name), config(render(overlay))
    mounts = {m["mountPath"]: m for m in container(workload)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod(workload)["volumes"]}
    claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
    for path in (settings["PAYMESH_HOME"], settings["PAYMESH_DATA_DIR"], "/tmp"):
        mount = mounts[path]
        assert not mount.get("readOnly")
        assert mount["name"] in claims or "emptyDir" in volumes[mount["name"]], path
    if database_url(workload) is None and name != "mainframe-emulator":  # SQLite lives on the claim
        assert workload["kind"] == "StatefulSet" and mounts[settings["PAYMESH_DATA_DIR"]]["name"] in claims
    elif database_url(workload):  # on PostgreSQL: nothing durable on the pod, so no claim
        assert not claims and "emptyDir" in volumes[mounts[settings["PAYMESH_DATA_DIR"]]["name"]]
    assert mounts[settings["PAYMESH_PKI_DIR"]]["readOnly"] is True


@pytest.mark.parametrize("overlay,name", cases())
def test_termination_grace_agrees_with_the_service_grace(overlay, name):
    workload, settings = find(overlay, name), config(render(overlay))
    pre_stop = container(workload)["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = float(settings["PAYMESH_GRACE_SECONDS"])
    needed = pre_stop + grace + FLUSH_MARGIN_SECONDS
    if service_of(workload) == "payment-router":
        # After the calls in flight (up to the grace: a channel's stream stays open until
        # cut), the router forwards its outbox for up to another grace (payment_router/server.py).
        needed += grace
    assert needed <= pod(workload)["terminationGracePeriodSeconds"] <= needed + 30


@pytest.mark.parametrize("overlay,name", cases())
def test_pki_volume_has_the_layout_paymesh_pki_reads(overlay, name):
    workload, objects = find(overlay, name), render(overlay)
    identity = identity_of(workload)
    (pki_volume,) = [v for v in pod(workload)["volumes"] if v["name"] == "pki"]
    (source,) = pki_volume["projected"]["sources"]
    paths = {item["key"]: item["path"] for item in source["secret"]["items"]}
    assert paths == {"ca.crt": "ca.crt", "tls.crt": f"service/{identity.name}.crt",
                     "tls.key": f"service/{identity.name}.key"}
    secret = source["secret"]["name"]
    if overlay == "prod":
        (certificate,) = [c for c in of_kind(objects, "Certificate") if c["spec"]["secretName"] == secret]
        assert certificate["spec"]["uris"] == [identity.spiffe_id]
        assert {"server auth", "client auth"} <= set(certificate["spec"]["usages"])
        wanted = set(service_dns_names(identity.name)) - {"localhost"}
        assert wanted <= set(certificate["spec"]["dnsNames"])
    else:
        (generated,) = [s for s in of_kind(objects, "Secret") if s["metadata"]["name"] == secret]
        assert set(generated["data"]) == {"ca.crt", "tls.crt", "tls.key"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_config_map_and_secret_exists(overlay):
    objects = render(overlay)
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    present |= {("Secret", c["spec"]["secretName"]) for c in of_kind(objects, "Certificate")}
    referenced = set()
    for workload in workloads(objects):
        for volume in pod(workload)["volumes"]:
            if "configMap" in volume:
                referenced.add(("ConfigMap", volume["configMap"]["name"]))
            for source in volume.get("projected", {}).get("sources", []):
                referenced.add(("Secret", source["secret"]["name"]))
        for env_from in container(workload).get("envFrom", []):
            referenced.add(("ConfigMap", env_from["configMapRef"]["name"]))
    for database in of_kind(objects, "Cluster"):  # CloudNativePG's: its TLS material
        referenced |= {("Secret", secret) for secret in database["spec"]["certificates"].values()}
    for store in of_kind(objects, "ObjectStore"):  # the Barman Cloud plugin's: the bucket's credentials
        credentials = store["spec"]["configuration"]["googleCredentials"]["applicationCredentials"]
        referenced.add(("Secret", credentials["name"]))
    assert referenced - present == EXTERNAL[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_targets_a_real_container_port(overlay):
    objects = render(overlay)
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        selected = [w for w in workloads(objects)
                    if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(selected) == 1, service["metadata"]["name"]
        assert service["spec"]["clusterIP"] == "None"  # headless: clients balance per call
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert target in ports(selected[0]) or target in ports(selected[0]).values(), port
        if selected[0]["kind"] == "StatefulSet":
            assert selected[0]["spec"]["serviceName"] == service["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_peer_addresses_name_real_services_and_ports(overlay):
    objects, settings = render(overlay), config(render(overlay))
    services = {s["metadata"]["name"]: s for s in of_kind(objects, "Service")}
    callees = [spec for spec in SERVICES.values() if spec.name != "payment-router"]  # channels are outside
    assert {name for name in settings if name.endswith("_ADDR")} == {f"{s.env_prefix}_ADDR" for s in callees}
    for spec in callees:
        host, port = settings[f"{spec.env_prefix}_ADDR"].rsplit(":", 1)
        if overlay == "prod" and spec.name == "mainframe-emulator":
            continue  # the real mainframe: test_k8s_network checks its egress rule
        assert host == f"{spec.name}.paymesh.svc.cluster.local"
        assert int(port) in {p["port"] for p in services[spec.name]["spec"]["ports"]}


@pytest.mark.parametrize("overlay,name", cases())
def test_every_grpc_server_reads_the_mesh_cas_revocation_list_where_it_is_published(overlay, name):
    workload, settings = find(overlay, name), config(render(overlay))
    if "paymesh.bank/grpc" not in workload["spec"]["template"]["metadata"]["labels"]:
        return  # the emulator (dev): no mesh server
    volumes = {v["name"]: v for v in pod(workload)["volumes"]}
    mounts = {m["mountPath"]: m for m in container(workload)["volumeMounts"]}
    crl = Path(settings["PAYMESH_CRL_FILE"])
    mount = mounts[str(crl.parent)]
    source = volumes[mount["name"]]["configMap"]
    assert source["name"] == "paymesh-crl" and source["optional"] is True  # none published: none revoked
    assert {"key": "crl.pem", "path": crl.name} in source["items"] and mount["readOnly"] is True
    assert "subPath" not in mount  # a subPath mount would never see the CRL change


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_router_bulkhead_runs_as_its_own_identity_for_its_channel_group_only(overlay):
    # One identity for every bulkhead would give each the rights of every channel's path.
    objects = render(overlay)
    secrets = set()
    for group in ROUTER_GROUPS:
        (router,) = [s for s in workloads(objects) if s["metadata"]["name"] == f"payment-router-{group}"]
        assert identity_of(router) == router_identity(group)
        assert router["spec"]["template"]["metadata"]["labels"]["paymesh.bank/channel-group"] == group
        (pki_volume,) = [v for v in pod(router)["volumes"] if v["name"] == "pki"]
        secrets.add(pki_volume["projected"]["sources"][0]["secret"]["name"])
    assert len(secrets) == len(ROUTER_GROUPS)
    assert not [c for c in of_kind(objects, "Certificate") if c["spec"].get("uris") == [ROUTER.spiffe_id]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_router_bulkhead_has_its_service_autoscaler_and_disruption_budget(overlay):
    objects = render(overlay)
    for group in ROUTER_GROUPS:
        name = f"payment-router-{group}"
        (router,) = [d for d in workloads(objects) if d["metadata"]["name"] == name]
        labels = router["spec"]["template"]["metadata"]["labels"]
        assert labels["paymesh.bank/channel-group"] == group
        (hpa,) = [h for h in of_kind(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
        assert hpa["spec"]["scaleTargetRef"]["kind"] == router["kind"]
        assert "replicas" not in router["spec"], "the autoscaler owns the count: an apply would reset it"
        assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        (pdb,) = [p for p in of_kind(objects, "PodDisruptionBudget") if p["metadata"]["name"] == name]
        assert pdb["spec"]["selector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
        assert pdb["spec"]["selector"]["matchLabels"]["paymesh.bank/channel-group"] == group
        assert any(s["metadata"]["name"] == name for s in of_kind(objects, "Service"))


def test_on_sqlite_each_router_keeps_its_journal_on_a_claim_of_its_own_that_outlives_the_pod():
    # dev: the journal holds what the router acknowledged and must still post and confirm: on an
    # emptyDir, a node lost with undelivered outbox rows would lose them.
    for group in ROUTER_GROUPS:
        name = f"payment-router-{group}"
        (router,) = [s for s in of_kind(render("dev"), "StatefulSet") if s["metadata"]["name"] == name]
        assert database_url(router) is None
        pod = router["spec"]["template"]["spec"]
        (data,) = [m["name"] for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/var/lib/paymesh"]
        assert data not in {v["name"] for v in pod["volumes"]}, "the journal must not be a pod volume"
        assert data in {c["metadata"]["name"] for c in router["spec"]["volumeClaimTemplates"]}
        retention = router["spec"]["persistentVolumeClaimRetentionPolicy"]
        assert retention == {"whenDeleted": "Retain", "whenScaled": "Retain"}
        assert router["spec"]["podManagementPolicy"] == "Parallel"  # a replica never waits for its sibling


def test_on_postgresql_each_router_bulkhead_is_a_deployment_on_a_journal_of_its_own():
    # prod: the journal is in PostgreSQL, shared by the bulkhead's replicas: any replica answers a
    # retry and delivers a stopped replica's outbox, so a pod holds nothing and needs no claim. One
    # database per bulkhead: each forwards every outbox row of its journal under its own identity,
    # and the bridge and confirmations refuse another group's payments from it.
    databases = set()
    for group in ROUTER_GROUPS:
        name = f"payment-router-{group}"
        (router,) = [d for d in of_kind(render("prod"), "Deployment") if d["metadata"]["name"] == name]
        url = database_url(router)
        assert url and "PAYMESH_PAYMENT_ROUTER_DATABASE_URL" in {e["name"] for e in container(router)["env"]}
        databases.add(url.split("/")[3].split("?")[0])
        assert "volumeClaimTemplates" not in router["spec"]
        assert router["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert databases == {f"payment_router_{group.replace('-', '_')}" for group in ROUTER_GROUPS}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_grpc_pods_are_annotated_for_scraping_on_the_metrics_port(overlay):
    objects = render(overlay)
    metrics_port = int(config(objects)["PAYMESH_METRICS_PORT"])
    for workload in workloads(objects):
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        if workload["metadata"]["name"] == "mainframe-emulator":
            assert "prometheus.io/scrape" not in annotations  # no metrics endpoint there
            continue
        assert annotations["prometheus.io/scrape"] == "true"
        assert int(annotations["prometheus.io/port"]) == metrics_port == ports(workload)["metrics"]


# --- the environment ----------------------------------------------------------------------------

PAYMESH_VAR = re.compile(r"^PAYMESH_[A-Z0-9_]*[A-Z0-9]$")


def variables_the_code_reads() -> set[str]:
    """PAYMESH_* names passed to a call (os.environ.get, _env, getenv, ...) or used as a subscript
    (os.environ[...]) anywhere in the runtime code, plus each service's _PORT and _ADDR, and the
    _DATABASE_URL of each service on the store seam (paymesh.postgres.database_url(prefix): the
    router's journal and the bridge's queue by their DATABASE_ENV_PREFIX, each core and confirmations by its
    service's env_prefix)."""
    from mainframe_bridge.server import DATABASE_ENV_PREFIX as BRIDGE_DATABASE_ENV_PREFIX
    from payment_router.journal import DATABASE_ENV_PREFIX

    names = {f"{spec.env_prefix}_{suffix}" for spec in SERVICES.values() for suffix in ("PORT", "ADDR")}
    names |= {f"{DATABASE_ENV_PREFIX}_DATABASE_URL", f"{BRIDGE_DATABASE_ENV_PREFIX}_DATABASE_URL",
              "PAYMESH_DATABASE_URL"}
    names |= {f"{SERVICES[service].env_prefix}_DATABASE_URL"
              for service in ("core-cash", "core-mortgage", "core-vehicle", "confirmations")}
    for folder in RUNTIME_DIRS:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                candidates = []
                if isinstance(node, ast.Call):
                    candidates = node.args
                elif isinstance(node, ast.Subscript):
                    candidates = [node.slice]
                names |= {c.value for c in candidates if isinstance(c, ast.Constant)
                          and isinstance(c.value, str) and PAYMESH_VAR.match(c.value)}
    return names


def test_the_code_scan_finds_what_config_reads():
    found = variables_the_code_reads()
    assert {"PAYMESH_HOME", "PAYMESH_GRACE_SECONDS", "PAYMESH_HEALTH_PORT", "PAYMESH_METRICS_PORT",
            "PAYMESH_CORE_CASH_ADDR"} <= found
    assert not {"PAYMESH_SURELY_NOT_READ", "PAYMESH_"} & found


def opentelemetry_variables() -> set[str]:
    """The OTEL_* variables the OpenTelemetry API and SDK define (and read themselves)."""
    from opentelemetry import environment_variables as api_variables
    from opentelemetry.sdk import environment_variables as sdk_variables

    return {value for module in (api_variables, sdk_variables) for name, value in vars(module).items()
            if name.startswith("OTEL_") and isinstance(value, str)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_one_the_code_reads(overlay):
    objects, readable = render(overlay), variables_the_code_reads() | opentelemetry_variables()
    given = set(config(objects))
    for workload in workloads(objects):
        given |= {e["name"] for e in container(workload).get("env", [])}
    assert given - readable == set()
    assert "OTEL_EXPORTER_OTLP_CLIENT_KEY" in readable and "OTEL_EXPORTER_OTLP_CLIENT_KEYS" not in readable
    assert {"PAYMESH_HEALTH_PORT", "PAYMESH_METRICS_PORT", "PAYMESH_BIND_HOST"} <= given
