"""The .proto files are the source of truth: buf lint clean, committed stubs current."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from paymesh_tools import protogen


def _files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_committed_stubs_match_the_protos(tmp_path):
    protogen.generate(tmp_path)
    fresh, committed = _files(tmp_path / "bank"), _files(protogen.GEN_ROOT / "bank")
    assert sorted(fresh) == sorted(committed), "stub files differ from the .proto files: run `make protos`"
    stale = [name for name in fresh if not filecmp.cmp(fresh[name], committed[name], shallow=False)]
    assert not stale, f"stale stubs {stale}: run `make protos`"


def test_buf_lint_is_clean():
    buf = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    assert buf, "buf (PyPI buf-bin) is a dev dependency; install '.[dev]'"
    result = subprocess.run([buf, "lint"], cwd=protogen.PROTO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
