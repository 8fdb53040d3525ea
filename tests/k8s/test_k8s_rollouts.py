"""Rollouts and scaling that keep the mesh up: the autoscalers own the routers' count and give
it back one pod per 5 minutes; a configuration or image change cannot restart the five
single-replica services together; routers and stores spread over the zones; connections to a
router are recycled within minutes, so a new replica takes its share. On PostgreSQL (prod) a
core's active and standby sit in different zones."""

import pytest

from paymesh.tls import SERVER_OPTIONS
from tests.k8s.manifests import OVERLAYS, of_kind, render

ZONE = "topology.kubernetes.io/zone"


def statefulsets(overlay, routers: bool) -> list[dict]:
    """The router bulkheads (StatefulSets on SQLite, Deployments on PostgreSQL), or the stores' StatefulSets."""
    return [s for s in of_kind(render(overlay), "StatefulSet", "Deployment")
            if (s["metadata"]["labels"]["app.kubernetes.io/component"] == "router") == routers
            and (routers or s["kind"] == "StatefulSet")]


def update_strategy(workload) -> str:
    return workload["spec"]["updateStrategy" if workload["kind"] == "StatefulSet" else "strategy"]["type"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_replicas_where_an_autoscaler_owns_them(overlay):
    objects = render(overlay)
    owned = {(h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"])
             for h in of_kind(objects, "HorizontalPodAutoscaler")}
    assert len(owned) == 3
    for workload in of_kind(objects, "StatefulSet", "Deployment"):
        if (workload["kind"], workload["metadata"]["name"]) in owned:
            assert "replicas" not in workload["spec"], workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routers_scale_down_one_pod_per_five_minutes_at_most(overlay):
    for hpa in of_kind(render(overlay), "HorizontalPodAutoscaler"):
        down = hpa["spec"]["behavior"]["scaleDown"]
        assert down["stabilizationWindowSeconds"] >= 300
        assert down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
        assert down.get("selectPolicy", "Max") != "Disabled"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_change_restarts_the_single_replica_services_one_at_a_time(overlay):
    # They share the hash-named paymesh-config and the image: with RollingUpdate one apply would
    # restart all five at once. OnDelete: each restarts when the ordered rollout deletes its pod.
    # A core, the bridge or confirmations on PostgreSQL runs two (active, standby): OnDelete too, the
    # standby's pod first (a RollingUpdate would wait for the new standby to be ready, which it never is).
    single = statefulsets(overlay, routers=False)
    assert len(single) == 5 and all(s["kind"] == "StatefulSet" for s in single)
    replicas = {s["metadata"]["name"]: s["spec"]["replicas"] for s in single}
    on_lease = 2 if overlay == "prod" else 1
    assert replicas == {"core-cash": on_lease, "core-mortgage": on_lease, "core-vehicle": on_lease,
                        "mainframe-bridge": on_lease, "confirmations": on_lease}
    assert {update_strategy(s) for s in single} == {"OnDelete"}
    routers = statefulsets(overlay, routers=True)
    assert {update_strategy(s) for s in routers} == {"RollingUpdate"}  # several replicas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_routers_and_the_single_replica_services_spread_over_the_zones(overlay):
    for router in statefulsets(overlay, routers=True):
        pod = router["spec"]["template"]
        spread = {c["topologyKey"]: c for c in pod["spec"]["topologySpreadConstraints"]}
        assert spread[ZONE]["maxSkew"] == 1
        # each bulkhead counts its own pods: its selector is the StatefulSet's
        assert spread[ZONE]["labelSelector"]["matchLabels"] == router["spec"]["selector"]["matchLabels"]
    single = statefulsets(overlay, routers=False)
    one_replica = [s["metadata"]["name"] for s in single if s["spec"]["replicas"] == 1]
    assert len(one_replica) == (0 if overlay == "prod" else 5)  # prod: every store's service is two
    for statefulset in single:
        (spread,) = statefulset["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert spread["topologyKey"] == ZONE and spread["maxSkew"] == 1
        selected = [s["metadata"]["name"] for s in single
                    if spread["labelSelector"]["matchLabels"].items()
                    <= s["spec"]["template"]["metadata"]["labels"].items()]
        if statefulset["spec"]["replicas"] == 1:
            assert sorted(selected) == sorted(one_replica)  # spread against each other, not each alone
        else:  # an active and its standby: never in one zone (a zone lost leaves one of them)
            assert selected == [statefulset["metadata"]["name"]]
            assert spread["whenUnsatisfiable"] == "DoNotSchedule"


def test_connections_are_recycled_within_minutes_with_a_grace():
    options = dict(SERVER_OPTIONS)
    assert 60_000 <= options["grpc.max_connection_age_ms"] <= 10 * 60_000
    assert 10_000 <= options["grpc.max_connection_age_grace_ms"] <= options["grpc.max_connection_age_ms"]
