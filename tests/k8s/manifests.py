"""The overlays rendered with the real kubectl, and how the tests pick objects out of them."""

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from paymesh_tools.k8s_secrets import write_dev_secrets

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.37.0"


def kubectl() -> str:
    local = Path(sys.executable).parent / "kubectl"
    return str(local) if local.exists() else shutil.which("kubectl") or "kubectl"  # (missing: run says so)


@functools.cache
def work_copy() -> Path:
    """A copy of k8s/ with the dev overlay's TLS material written there by `paymesh k8s-secrets`
    from a fresh dev PKI, as a developer would."""
    work = Path(tempfile.mkdtemp(prefix="paymesh-k8s-"))
    atexit.register(shutil.rmtree, work, True)
    shutil.copytree(K8S, work / "k8s", ignore=shutil.ignore_patterns("pki"))
    write_dev_secrets(work / "pki", work / "k8s" / "overlays" / "dev" / "pki")
    return work / "k8s"


@functools.cache
def build(kustomization: str) -> tuple[dict, ...]:
    """`kubectl kustomize` of a folder under k8s/ (on the work copy)."""
    built = subprocess.run([kubectl(), "kustomize", str(work_copy() / kustomization)],
                           capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return tuple(yaml.safe_load_all(built.stdout))


def render(overlay: str) -> tuple[dict, ...]:
    """An overlay (dev, prod): the app's bundle, what `kubectl apply -k k8s/overlays/<overlay>` applies."""
    return build(f"overlays/{overlay}")


def build_variant(name: str, kustomization: str) -> tuple[dict, ...]:
    """A kustomization written for the test beside the overlays (k8s/test-<name>/), built: an
    overlay with a component a platform may add, as its team would write it."""
    folder = work_copy() / f"test-{name}"
    folder.mkdir(exist_ok=True)
    (folder / "kustomization.yaml").write_text(kustomization)
    return build(f"test-{name}")


def of_kind(objects, *kinds: str) -> list[dict]:
    return [o for o in objects if o["kind"] in kinds]


def workloads(objects) -> list[dict]:
    return of_kind(objects, "Deployment", "StatefulSet")


RUNTIME_DIRS = ("paymesh", "payment_router", "loan_core", "core_cash", "core_mortgage", "core_vehicle",
                "mainframe_bridge", "confirmations", "mainframe_emulator")
