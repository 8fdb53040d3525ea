"""Consistent online backups of the services' SQLite stores, and their restore.

    paymesh store backup  --data-dir /var/lib/paymesh --to /backup [--keep 48]
    paymesh store restore --from /backup/20261202T153000Z --data-dir /var/lib/paymesh [--replace]

In a pod (the image has no `paymesh` script): `python -m paymesh_tools.store_backup backup ...`
(the CronJobs of k8s/base/backup). docs/kubernetes.md has the restore steps.

A backup copies each `<service>.db` of the data directory with SQLite's online backup API
(sqlite3.Connection.backup, in one step): one read transaction, so the copy is the store as
of one commit, while the service keeps writing (WAL: a reader does not block the writer).
Each copy is checked (PRAGMA integrity_check) and turned into one self-contained file
(journal_mode=DELETE), a MANIFEST.json records each file's size and SHA-256, and the folder
is renamed from `<stamp>.partial` to `<stamp>` only when all of it is on disk: a folder
without `.partial` is a whole backup. The newest --keep backups are kept.

A restore checks the manifest and each file's integrity first, then puts the files in the
data directory (the service stopped). What was there is moved aside to
`replaced-<stamp>/`, never deleted, with its -wal and -shm files: a -wal left beside a
restored file would be replayed into it.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path

MANIFEST = "MANIFEST.json"
PARTIAL = ".partial"
SIDE_FILES = ("-wal", "-shm", "-journal")


class BackupError(Exception):
    """A backup or restore that must not go on: the message says why."""


def stamp(now: datetime.datetime | None = None) -> str:
    # A backup is named by the instant it was taken, in UTC: no business date is involved.
    return (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%SZ")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_integrity(path: Path) -> None:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        result = connection.execute("PRAGMA integrity_check").fetchall()
    finally:
        connection.close()
    if result != [("ok",)]:
        raise BackupError(f"{path.name}: integrity check failed: {result[:5]}")


def fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def copy_store(source_path: Path, target_path: Path) -> None:
    """The store as of one commit, into one file (no -wal beside it)."""
    # mode=rw: a missing file is an error, never a new empty store.
    source = sqlite3.connect(f"file:{source_path}?mode=rw", uri=True)
    source.execute("PRAGMA busy_timeout=5000")
    target = sqlite3.connect(target_path)
    try:
        source.backup(target)  # pages=-1: the whole file in one step, one read transaction
        target.execute("PRAGMA journal_mode=DELETE")
    finally:
        target.close()
        source.close()
    fsync_path(target_path)


def backup(data_dir: Path, to: Path, keep: int, now: datetime.datetime | None = None) -> Path:
    stores = sorted(data_dir.glob("*.db"))
    if not stores:
        raise BackupError(f"no store (*.db) in {data_dir}")
    to.mkdir(parents=True, exist_ok=True)
    for left in to.glob(f"*{PARTIAL}"):  # an earlier run that did not finish
        shutil.rmtree(left)
    name = stamp(now)
    if (to / name).exists():
        raise BackupError(f"{to / name} exists already (one backup a second at most)")
    partial = to / f"{name}{PARTIAL}"
    partial.mkdir()
    files = {}
    for store in stores:
        copy = partial / store.name
        copy_store(store, copy)
        check_integrity(copy)
        files[store.name] = {"bytes": copy.stat().st_size, "sha256": sha256_of(copy)}
    manifest = partial / MANIFEST
    manifest.write_text(json.dumps({"taken_at": name, "source": str(data_dir), "files": files}, indent=2) + "\n")
    fsync_path(manifest)
    fsync_path(partial)
    final = to / name
    partial.rename(final)
    fsync_path(to)
    for old in complete_backups(to)[:-keep]:
        shutil.rmtree(old)
    return final


def complete_backups(to: Path) -> list[Path]:
    """Whole backups, oldest first (the stamps sort as times)."""
    return sorted(p for p in to.iterdir() if p.is_dir() and not p.name.endswith(PARTIAL) and (p / MANIFEST).exists())


def verify(backup_dir: Path) -> dict[str, dict]:
    """The manifest's files, each present with its size and hash and intact; else BackupError."""
    manifest_path = backup_dir / MANIFEST
    if backup_dir.name.endswith(PARTIAL) or not manifest_path.exists():
        raise BackupError(f"{backup_dir} is not a whole backup (no {MANIFEST})")
    files = json.loads(manifest_path.read_text())["files"]
    for name, expected in files.items():
        path = backup_dir / name
        if not path.exists():
            raise BackupError(f"{name}: in the manifest, missing from {backup_dir}")
        if sha256_of(path) != expected["sha256"]:
            raise BackupError(f"{name}: SHA-256 differs from the manifest's")
        check_integrity(path)
    return files


def restore(backup_dir: Path, data_dir: Path, replace: bool) -> list[str]:
    files = verify(backup_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    present = [data_dir / f"{name}{side}" for name in files for side in ("", *SIDE_FILES)
               if (data_dir / f"{name}{side}").exists()]
    if present and not replace:
        raise BackupError(f"{data_dir} already holds {', '.join(p.name for p in present)}: "
                          "stop the service and pass --replace (they are moved aside, not deleted)")
    if present:
        aside = data_dir / f"replaced-{stamp()}"
        aside.mkdir()
        for path in present:
            path.rename(aside / path.name)
    for name in files:
        incoming = data_dir / f"{name}.restoring"
        shutil.copyfile(backup_dir / name, incoming)
        fsync_path(incoming)
        incoming.rename(data_dir / name)
    fsync_path(data_dir)
    return sorted(files)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    take = actions.add_parser("backup", help="copy every store of a data directory, consistently, while it runs")
    take.add_argument("--data-dir", type=Path, required=True, help="the service's PAYMESH_DATA_DIR")
    take.add_argument("--to", type=Path, required=True, help="the folder that holds the backups")
    take.add_argument("--keep", type=int, default=48, help="how many backups to keep (default 48)")
    back = actions.add_parser("restore", help="check a backup, then put its stores in a data directory")
    back.add_argument("--from", dest="source", type=Path, required=True, help="one backup folder (<stamp>)")
    back.add_argument("--data-dir", type=Path, required=True, help="the stopped service's PAYMESH_DATA_DIR")
    back.add_argument("--replace", action="store_true", help="move the stores there aside first")


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "backup":
            if args.keep < 1:
                raise BackupError("--keep must be 1 or more")
            made = backup(args.data_dir, args.to, args.keep)
            files = json.loads((made / MANIFEST).read_text())["files"]
            print(f"backup {made}: " + ", ".join(f"{name} ({entry['bytes']} bytes)" for name, entry in files.items()))
        else:
            restored = restore(args.source, args.data_dir, args.replace)
            print(f"restored {', '.join(restored)} from {args.source} into {args.data_dir}")
    except (BackupError, sqlite3.Error, OSError) as error:
        print(f"paymesh store {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paymesh_tools.store_backup", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
