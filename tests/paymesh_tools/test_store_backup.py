"""paymesh store backup / restore: a consistent copy of a store that a real process keeps
writing (WAL, synchronous=FULL, as every service's), and its restore on a copy."""

import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from paymesh.sqlite import Store

LEGS = "CREATE TABLE legs (payment INTEGER, amount_minor INTEGER, filler TEXT);"

# A writer as a service is one: its own process, paymesh.sqlite's pragmas, one transaction per
# "payment" of two legs that sum to zero. A copy taken in the middle of a transaction would show
# a payment with one leg.
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from paymesh.sqlite import connect
    connection = connect(Path(sys.argv[1]))
    connection.execute("CREATE TABLE IF NOT EXISTS legs (payment INTEGER, amount_minor INTEGER, filler TEXT)")
    stop, deadline, payment = Path(sys.argv[2]), time.monotonic() + 30, 0
    while not stop.exists() and time.monotonic() < deadline:
        payment += 1
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO legs VALUES (?, ?, ?)", (payment, 1250, "x" * 200))
        connection.execute("INSERT INTO legs VALUES (?, ?, ?)", (payment, -1250, "y" * 200))
        connection.execute("COMMIT")
    print(payment)
""")


def store_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paymesh_tools.store_backup", *args],
                          capture_output=True, text=True, timeout=60)


def payments(path: Path) -> dict[int, list[int]]:
    connection = sqlite3.connect(path)
    try:
        legs: dict[int, list[int]] = {}
        for payment, amount in connection.execute("SELECT payment, amount_minor FROM legs"):
            legs.setdefault(payment, []).append(amount)
        return legs
    finally:
        connection.close()


def rows_of(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT count(*) FROM legs").fetchone()[0]
    except sqlite3.OperationalError:  # the writer has not made its table yet
        return 0
    finally:
        connection.close()


def test_a_live_store_is_backed_up_consistently_and_restored_on_a_copy(tmp_path):
    data, backups, stop = tmp_path / "data", tmp_path / "backups", tmp_path / "stop"
    data.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data / "core-cash.db"), str(stop)],
                              stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while not (data / "core-cash.db").exists() or rows_of(data / "core-cash.db") < 200:
            assert time.monotonic() < deadline and writer.poll() is None, "the writer did not start"
            time.sleep(0.05)
        taken = []
        for _ in range(3):  # as the CronJob runs it, while the writer writes
            done = store_command("backup", "--data-dir", str(data), "--to", str(backups), "--keep", "2")
            assert done.returncode == 0, done.stderr
            taken.append(done.stdout)
            time.sleep(1.1)  # the stamps are to the second
        assert writer.poll() is None, "the writer must still be writing after the last backup"
    finally:
        stop.touch()
        written = int(writer.communicate(timeout=30)[0])

    kept = sorted(p for p in backups.iterdir())
    assert [p.name.endswith("Z") for p in kept] == [True, True], kept  # --keep 2; no .partial left
    newest = kept[-1]
    assert sorted(p.name for p in newest.iterdir()) == ["MANIFEST.json", "core-cash.db"]  # one file, no -wal
    manifest = json.loads((newest / "MANIFEST.json").read_text())
    assert manifest["files"]["core-cash.db"]["bytes"] == (newest / "core-cash.db").stat().st_size
    copied = payments(newest / "core-cash.db")
    assert 100 <= len(copied) < written  # taken while the writer went on
    assert all(sorted(legs) == [-1250, 1250] for legs in copied.values()), "a payment with one leg"
    assert sorted(copied) == list(range(1, len(copied) + 1))  # every commit up to one, none after

    # The rehearsal: restore on a copy of the data directory, open it as a service would, write to it.
    copy = tmp_path / "restored"
    done = store_command("restore", "--from", str(newest), "--data-dir", str(copy))
    assert done.returncode == 0, done.stderr
    assert payments(copy / "core-cash.db") == copied
    reopened = Store(copy / "core-cash.db")
    try:
        reopened.connection.execute("INSERT INTO legs VALUES (0, 0, 'after the restore')")
    finally:
        reopened.close()
    assert rows_of(copy / "core-cash.db") == 2 * len(copied) + 1


def test_restore_never_overwrites_silently_and_moves_a_stale_wal_aside(tmp_path):
    data, backups = tmp_path / "data", tmp_path / "backups"
    original = Store(data / "confirmations.db", LEGS)
    original.connection.execute("INSERT INTO legs VALUES (1, 100, 'a'), (1, -100, 'b')")
    original.close()
    assert store_command("backup", "--data-dir", str(data), "--to", str(backups)).returncode == 0
    (taken,) = backups.iterdir()

    target = tmp_path / "target"
    later = Store(target / "confirmations.db", LEGS)
    later.connection.execute("INSERT INTO legs VALUES (2, 5, 'newer')")
    later.close()
    refused = store_command("restore", "--from", str(taken), "--data-dir", str(target))
    assert refused.returncode == 1 and "--replace" in refused.stderr
    assert payments(target / "confirmations.db") == {2: [5]}  # untouched
    (target / "confirmations.db-wal").write_bytes(b"left by a killed process")

    done = store_command("restore", "--from", str(taken), "--data-dir", str(target), "--replace")
    assert done.returncode == 0, done.stderr
    assert payments(target / "confirmations.db") == {1: [100, -100]}
    assert not (target / "confirmations.db-wal").exists()
    (aside,) = target.glob("replaced-*")
    assert sorted(p.name for p in aside.iterdir()) == ["confirmations.db", "confirmations.db-wal"]
    assert payments(aside / "confirmations.db") == {2: [5]}


def test_a_damaged_or_unfinished_backup_is_refused_before_anything_is_written(tmp_path):
    data, backups = tmp_path / "data", tmp_path / "backups"
    store = Store(data / "mainframe-bridge.db", LEGS)
    store.connection.execute("INSERT INTO legs VALUES (1, 7, 'z')")
    store.close()
    assert store_command("backup", "--data-dir", str(data), "--to", str(backups)).returncode == 0
    (taken,) = backups.iterdir()
    damaged = bytearray((taken / "mainframe-bridge.db").read_bytes())
    damaged[-100] ^= 0xFF
    (taken / "mainframe-bridge.db").write_bytes(bytes(damaged))
    refused = store_command("restore", "--from", str(taken), "--data-dir", str(tmp_path / "target"))
    assert refused.returncode == 1 and "SHA-256" in refused.stderr
    assert not list((tmp_path / "target").glob("*.db"))

    unfinished = backups / "20261202T000000Z.partial"
    unfinished.mkdir()
    refused = store_command("restore", "--from", str(unfinished), "--data-dir", str(tmp_path / "target"))
    assert refused.returncode == 1 and "not a whole backup" in refused.stderr
    empty = store_command("backup", "--data-dir", str(tmp_path / "nothing"), "--to", str(backups))
    assert empty.returncode == 1 and "no store" in empty.stderr
    assert unfinished.exists()  # the empty run stopped before touching the backups
    time.sleep(1.1)  # one backup a second at most
    assert store_command("backup", "--data-dir", str(data), "--to", str(backups)).returncode == 0
    assert not unfinished.exists()  # the next whole run clears what an interrupted one left
