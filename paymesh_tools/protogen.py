"""Generates the Python stubs in gen/ from the .proto files in protos/.

Run `python -m paymesh_tools.protogen` (or `make protos`) after changing a .proto file;
tests/test_contracts.py fails while the committed stubs are stale.
"""

import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"
GEN_ROOT = REPO / "gen"


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(out_dir: Path) -> None:
    """Writes _pb2, _pb2.pyi and _pb2_grpc modules for every .proto into out_dir."""
    from grpc_tools import protoc  # a build tool, not a runtime dependency

    well_known = importlib.resources.files("grpc_tools") / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p.relative_to(PROTO_ROOT)) for p in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed; see its message above")
    # Regular packages (not namespace ones) so setuptools and pytest find them plainly.
    for folder in [out_dir / "bank", *(out_dir / "bank").rglob("*")]:
        if folder.is_dir():
            (folder / "__init__.py").touch()


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        shutil.rmtree(GEN_ROOT / "bank", ignore_errors=True)
        shutil.copytree(Path(tmp) / "bank", GEN_ROOT / "bank")
    print(f"generated stubs for {len(proto_files())} .proto files into {GEN_ROOT / 'bank'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
