"""The kustomize overlays build with the real kubectl and every object validates
against the Kubernetes schemas offline, custom resources (cert-manager's Certificates,
CloudNativePG's Cluster, ...) against their real CRDs' schemas, unknown fields refused as the API
server's strict field validation refuses them. Other test_k8s_* modules use render()."""

import subprocess

import jsonschema
import kubernetes_validate
import pytest

from tests.k8s import crd_schemas
from tests.k8s.manifests import REPO, OVERLAYS, KUBERNETES_VERSION, render, of_kind, workloads


def validate(obj: dict) -> None:
    if crd_schemas.is_custom(obj):  # a custom resource: its CRD's schema, vendored (tests/k8s/crd_schemas.py)
        crd_schemas.validate(obj)
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_every_object_validates(overlay):
    objects = render(overlay)
    assert len(objects) > 20
    for obj in objects:
        validate(obj)
    assert all(o["metadata"].get("namespace") == "paymesh" for o in objects if o["kind"] != "Namespace")


def test_the_validation_bites():
    deployment = next(o for o in render("dev") if o["kind"] == "Deployment")
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "three"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    unknown_field = {**deployment, "spec": {**deployment["spec"], "replica": 3}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(unknown_field)
    certificate = of_kind(render("prod"), "Certificate")[0]
    with pytest.raises(jsonschema.ValidationError):
        validate({**certificate, "spec": {**certificate["spec"], "usages": ["server-auth"]}})
    with pytest.raises(jsonschema.ValidationError, match="'uri' was unexpected"):  # a field the CRD lacks
        validate({**certificate, "spec": {**certificate["spec"], "uri": certificate["spec"]["uris"]}})
    private_key = {**certificate["spec"]["privateKey"], "rotation": "Always"}  # and deeper down
    with pytest.raises(jsonschema.ValidationError, match="'rotation' was unexpected"):
        validate({**certificate, "spec": {**certificate["spec"], "privateKey": private_key}})


def test_dev_overlay_has_the_emulator_and_prod_has_not():
    def names(overlay):
        return {w["metadata"]["name"] for w in workloads(render(overlay))}
    routers = {"payment-router-digital", "payment-router-atm", "payment-router-agent-store"}
    stateful = {"core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations"}
    assert names("dev") == routers | stateful | {"mainframe-emulator"}
    assert names("prod") == routers | stateful
    # dev: every store on SQLite, so each router replica on a claim of its own (StatefulSets); prod: the
    # routers' journals in PostgreSQL (Deployments), the cores and the bridge there too, two processes each.
    assert {s["metadata"]["name"] for s in of_kind(render("dev"), "StatefulSet")} == stateful | routers
    assert {s["metadata"]["name"] for s in of_kind(render("prod"), "StatefulSet")} == stateful
    assert {d["metadata"]["name"] for d in of_kind(render("prod"), "Deployment")} == routers
    dev_replicas = {w["spec"]["replicas"] for w in workloads(render("dev")) if w["metadata"]["name"] not in routers}
    assert dev_replicas == {1}
    prod_replicas = {w["metadata"]["name"]: w["spec"]["replicas"] for w in workloads(render("prod"))
                     if w["metadata"]["name"] not in routers}
    assert prod_replicas == {"core-cash": 2, "core-mortgage": 2, "core-vehicle": 2, "mainframe-bridge": 2,
                             "confirmations": 2}
    for overlay, least in (("dev", 1), ("prod", 3)):  # the routers' count is their autoscaler's
        autoscalers = of_kind(render(overlay), "HorizontalPodAutoscaler")
        assert sorted(h["spec"]["scaleTargetRef"]["name"] for h in autoscalers) == sorted(routers)
        assert {h["spec"]["minReplicas"] for h in autoscalers} == {least}


def test_no_secret_material_is_committed_under_k8s():
    tracked = subprocess.run(["git", "ls-files", "k8s"], cwd=REPO, capture_output=True, text=True).stdout.split()
    assert tracked
    for path in tracked:
        text = (REPO / path).read_text(errors="replace")
        assert "PRIVATE KEY" not in text and "BEGIN CERTIFICATE" not in text, path
    assert not of_kind(render("prod"), "Secret"), "prod Secrets are cert-manager's, never in the manifests"
