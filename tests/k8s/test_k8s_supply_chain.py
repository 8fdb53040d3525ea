"""The supply chain: every dependency locked with its files' hashes (make lock), the image built and
CI installed from the locks with --require-hashes, the base image and the prod image by digest, and
a CycloneDX SBOM of what the image runs."""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.k8s.manifests import REPO, render, workloads
from tests.k8s.test_k8s_dockerfile import DOCKERFILE, instructions

LOCKS = ("requirements.lock", "requirements-dev.lock", "requirements-sbom.lock")
PINNED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked(name: str) -> dict[str, tuple[str, list[str]]]:
    """package -> (version, its hashes), from a pip-compile --generate-hashes file."""
    packages: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in (REPO / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if match := PINNED.match(stripped):
            current = canonicalize_name(match[1])
            packages[current] = (match[2], [])
        elif stripped.startswith("--hash=sha256:"):
            packages[current][1].append(stripped.removeprefix("--hash=").rstrip(" \\"))
        else:
            raise AssertionError(f"{name}: not a pinned requirement or its hash: {line!r}")
    return packages


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_lock_pins_every_package_with_its_hashes():
    for name in LOCKS:
        packages = locked(name)
        assert packages, name
        for package, (_version, hashes) in packages.items():
            assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (name, package)
        text = (REPO / name).read_text()
        assert "--index-url" not in text and "--find-links" not in text and "file://" not in text, name


def test_the_locks_hold_what_pyproject_asks_at_versions_it_allows():
    # Fails when a dependency is added to pyproject.toml without `make lock`.
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    wanted = [(Requirement(r), ("requirements.lock", runtime)) for r in project()["dependencies"]]
    wanted += [(Requirement(r), ("requirements-dev.lock", dev)) for r in project()["optional-dependencies"]["dev"]]
    for requirement, (lock_name, packages) in wanted:
        name = canonicalize_name(requirement.name)
        assert name in packages, f"{requirement} is not in {lock_name}: run make lock"
        assert requirement.specifier.contains(packages[name][0], prereleases=True), (requirement, packages[name])
    for lock_name in ("requirements.lock", "requirements-sbom.lock"):  # one version of each package
        for name, (version, _) in locked(lock_name).items():
            assert dev[name][0] == version, (lock_name, name, version, dev[name][0])
    assert "cyclonedx-bom" in locked("requirements-sbom.lock")


def test_the_image_and_ci_install_only_from_the_locks_with_hashes_required():
    installs = [args for kind, args in instructions(DOCKERFILE) if kind == "RUN" and "pip install" in args]
    assert installs
    for run in installs:
        for command in run.split("&&"):
            if "pip install" in command:
                assert "--require-hashes" in command and re.search(r"-r requirements(-sbom)?\.lock\b", command)
    copied = [a for kind, args in instructions(DOCKERFILE) if kind == "COPY" for a in args.split()]
    assert "requirements.lock" in copied and "requirements-sbom.lock" in copied
    makefile = (REPO / "Makefile").read_text()
    stamp = makefile[makefile.index("$(STAMP):"):].split("\n\n")[0]
    pip_installs = [line.strip() for line in stamp.splitlines() if "pip install" in line]
    assert pip_installs == ["$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-dev.lock",
                            "$(BIN)/pip install --quiet --no-deps --no-build-isolation -e ."]
    assert "requirements-dev.lock" in stamp.splitlines()[0]  # a new lock rebuilds the venv
    assert "\nlock:" in makefile and "--generate-hashes" in makefile
    assert "make lint\nmake test" in (REPO / ".ci" / "run").read_text()  # CI goes through that recipe


def test_prod_runs_its_image_by_digest():
    images = {c["image"] for w in workloads(render("prod")) for c in w["spec"]["template"]["spec"]["containers"]}
    (image,) = images
    assert re.fullmatch(r"[a-z0-9.-]+/[a-z0-9/_-]+@sha256:[0-9a-f]{64}", image), image  # no tag at all


def test_the_sbom_is_cyclonedx_and_lists_every_locked_runtime_package(tmp_path):
    # What `make sbom` and the image's sbom stage run (cyclonedx-py environment), on this venv,
    # which holds the same versions (requirements-dev.lock).
    output = tmp_path / "sbom.json"
    made = subprocess.run([str(Path(sys.executable).parent / "cyclonedx-py"), "environment", "--output-reproducible",
                           "--of", "JSON", "--mc-type", "application", "--pyproject", str(REPO / "pyproject.toml"),
                           "-o", str(output), sys.executable], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    sbom = json.loads(output.read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["metadata"]["component"]["name"] == "paymesh"
    components = {canonicalize_name(c["name"]): c for c in sbom["components"]}
    for name, (version, _) in locked("requirements.lock").items():
        assert components[name]["version"] == version, name
        assert components[name]["purl"] == f"pkg:pypi/{name}@{version}", components[name]["purl"]
