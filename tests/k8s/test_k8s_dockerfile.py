"""The image definition, checked statically (no Docker engine here): multi-stage,
base images pinned, the final stage runs as the non-root user the manifests
expect, has no build tools, copies no secret, and carries every service."""

import json
import re
import sys

import pytest

from paymesh.topology import SERVICES
from tests.k8s.manifests import REPO, of_kind, render, workloads, RUNTIME_DIRS

PINNED = re.compile(r"^[\w./-]+(:\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$")
BUILD_TOOLS = re.compile(r"apt-get install|apk add|yum install|gcc|g\+\+|make |build-essential|pip install")
SECRET_PATHS = re.compile(r"\.paymesh|pki|\.key\b|\.pem\b|\.env\b|id_rsa|\.p12\b")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(raw for raw in text.splitlines() if not raw.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
            for line in joined.splitlines() if line.strip()]


def stages(text: str) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            result.append([])
        result[-1].append(instruction)
    return result


DOCKERFILE = (REPO / "Dockerfile").read_text()


def stage_names(all_stages) -> list[str]:
    return [stage[0][1].split()[-1] if " AS " in stage[0][1].upper() else "" for stage in all_stages]


def test_multi_stage_with_base_images_by_digest():
    all_stages = stages(DOCKERFILE)
    assert len(all_stages) >= 2
    earlier: list[str] = []
    for stage, name in zip(all_stages, stage_names(all_stages)):
        image = stage[0][1].split()[0]
        if image not in earlier and image != "scratch":  # an image from a registry: by its digest
            assert PINNED.match(image) and re.search(r"@sha256:[0-9a-f]{64}$", image), image
            assert ":" in image.split("@")[0].split("/")[-1], "the tag too, for the reader"
        earlier.append(name)
    final = all_stages[-1][0][1].split()[0]
    assert "@sha256:" in final, "the image that runs starts from a digest"


def test_final_stage_runs_as_the_non_root_user_the_manifests_expect():
    final = stages(DOCKERFILE)[-1]
    users = [args for kind, args in final if kind == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0)
    kinds = [kind for kind, _ in final]
    assert all(kind != "RUN" for kind in kinds[kinds.index("USER"):]), "RUN after USER runs as the user anyway"
    for overlay in ("dev", "prod"):
        for workload in workloads(render(overlay)):
            assert workload["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(uid)


def test_no_build_tools_in_the_final_image():
    final = stages(DOCKERFILE)[-1]
    for kind, args in final:
        if kind == "RUN":
            assert not BUILD_TOOLS.search(args), args
        if kind == "COPY" and "--from=" in args:  # the virtualenv, and the SBOM made of it
            assert args.split()[1:] in (["/opt/paymesh", "/opt/paymesh"],
                                        ["/sbom/paymesh.cdx.json", "/opt/paymesh/sbom.cdx.json"]), args


@pytest.mark.parametrize("kind", ["COPY", "ADD"])
def test_no_secret_is_copied(kind):
    for stage in stages(DOCKERFILE):
        for instruction, args in stage:
            if instruction != kind:
                continue
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            assert sources and not any(s in (".", "./", "*") for s in sources), "the whole context is copied"
            assert not any(SECRET_PATHS.search(s) for s in sources), args
    for instruction, args in instructions(DOCKERFILE):
        if instruction in ("ARG", "ENV"):
            assert not re.search(r"SECRET|PASSWORD|TOKEN|PRIVATE", args, re.I), args
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    for must in (".paymesh", ".git", ".venv", "**/*.key", "**/*.pem", "k8s/overlays/dev/pki"):
        assert must in ignored, must


def test_the_image_carries_every_service_and_runs_it_by_command():
    final = stages(DOCKERFILE)[-1]
    copied = {args.split()[-1].strip("/") for kind, args in final if kind == "COPY" and "--from=" not in args}
    assert set(RUNTIME_DIRS) | {"gen"} <= copied
    assert {spec.module.split(".")[0] for spec in SERVICES.values()} <= copied
    (entrypoint,) = [json.loads(args) for kind, args in final if kind == "ENTRYPOINT"]
    assert entrypoint == ["python", "-m"]


def test_the_image_carries_the_tool_the_backup_jobs_run_and_only_its_imports():
    final = stages(DOCKERFILE)[-1]
    copied = [a for kind, args in final if kind == "COPY" and "--from=" not in args for a in args.split()[:-1]]
    modules = {job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
               for overlay in ("dev", "prod") for job in of_kind(render(overlay), "CronJob")}
    assert modules == {"paymesh_tools.store_backup"}
    for module in modules:
        path = module.replace(".", "/") + ".py"
        assert path in copied and "paymesh_tools/__init__.py" in copied
        imported = re.findall(r"^(?:from|import) ([\w.]+)", (REPO / path).read_text(), re.M)
        assert all(name.split(".")[0] in sys.stdlib_module_names for name in imported), imported
