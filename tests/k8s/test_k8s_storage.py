"""The ledgers survive an uninstall: the Namespace and the StorageClass are applied once, outside
the app's bundle; every prod claim names the Retain class (the database's too); each SQLite store has
an hourly backup on a claim of its own, run as the services run (restricted, no network, no token);
a store in PostgreSQL has none (CloudNativePG's backups instead: test_k8s_postgres.py)."""

import pytest

from tests.k8s.test_k8s_build import validate
from tests.k8s.manifests import OVERLAYS, build, of_kind, render

STORES = ("core-cash", "core-mortgage", "core-vehicle", "mainframe-bridge", "confirmations")
# The stores still on SQLite in each overlay (prod: none; every store is in PostgreSQL, CloudNativePG
# backs them up).
SQLITE_STORES: dict[str, tuple[str, ...]] = {"dev": STORES, "prod": ()}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_app_bundle_holds_no_namespace_and_no_cluster_object(overlay):
    # `kubectl delete -k k8s/overlays/<overlay>` deletes what the bundle holds: with the Namespace in
    # it, the namespace went, and every claim, disk and Secret in it.
    kinds = {o["kind"] for o in render(overlay)}
    assert not kinds & {"Namespace", "StorageClass", "PersistentVolume", "ClusterRole", "ClusterRoleBinding"}


def test_the_namespace_is_applied_on_its_own_restricted():
    for folder in ("namespace", "overlays/prod/foundation"):
        (namespace,) = of_kind(build(folder), "Namespace")
        validate(namespace)
        assert namespace["metadata"]["name"] == "paymesh"
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        # The app's objects carry it, and `kubectl apply --prune -l` on it prunes Namespaces too.
        assert "app.kubernetes.io/part-of" not in namespace["metadata"]["labels"]


def test_every_prod_claim_is_on_the_retain_class_of_the_foundation():
    foundation = build("overlays/prod/foundation")
    for obj in foundation:
        validate(obj)
    classes = {c["metadata"]["name"]: c for c in of_kind(foundation, "StorageClass")}
    objects = render("prod")
    claims = [t["spec"] for s in of_kind(objects, "StatefulSet") for t in s["spec"].get("volumeClaimTemplates", [])]
    claims += [c["spec"] for c in of_kind(objects, "PersistentVolumeClaim")]
    assert len(claims) == 2 * len(SQLITE_STORES["prod"])  # each SQLite store's data and its backups
    (database,) = of_kind(objects, "Cluster")  # and the database's instances, their data and their WAL
    claims += [database["spec"]["storage"] | {"storageClassName": database["spec"]["storage"]["storageClass"]},
               database["spec"]["walStorage"] | {"storageClassName": database["spec"]["walStorage"]["storageClass"]}]
    for claim in claims:
        storage_class = classes[claim["storageClassName"]]
        assert storage_class["reclaimPolicy"] == "Retain"
        assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    for statefulset in of_kind(objects, "StatefulSet"):  # and the claims outlive their StatefulSet
        if "volumeClaimTemplates" not in statefulset["spec"]:
            continue  # a core on PostgreSQL
        assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                                               "whenScaled": "Retain"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_store_has_an_hourly_consistent_backup_on_the_node_of_its_pod(overlay):
    objects = render(overlay)
    claims = {c["metadata"]["name"] for c in of_kind(objects, "PersistentVolumeClaim")}
    statefulsets = {s["metadata"]["name"]: s for s in of_kind(objects, "StatefulSet")}
    jobs = {j["metadata"]["name"]: j for j in of_kind(objects, "CronJob")}
    assert sorted(jobs) == sorted(f"backup-{store}" for store in SQLITE_STORES[overlay])
    for store in SQLITE_STORES[overlay]:
        cron = jobs[f"backup-{store}"]["spec"]
        assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"] == "America/Lima"
        pod = cron["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][:2] == ["paymesh_tools.store_backup", "backup"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        args = dict(zip(container["args"][2::2], container["args"][3::2]))
        # The data claim the StatefulSet's pod 0 gets, and the backups on a claim of their own.
        template = statefulsets[store]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
        data_claim = volumes[mounts[args["--data-dir"]]]["persistentVolumeClaim"]["claimName"]
        assert data_claim == f"{template}-{store}-0"
        backup_claim = volumes[mounts[args["--to"]]]["persistentVolumeClaim"]["claimName"]
        assert backup_claim in claims and backup_claim != data_claim
        (affinity,) = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert affinity["topologyKey"] == "kubernetes.io/hostname"  # ReadWriteOnce: on that node only
        assert affinity["labelSelector"]["matchLabels"] == statefulsets[store]["spec"]["selector"]["matchLabels"]
        # As restricted as the services' pods.
        assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
