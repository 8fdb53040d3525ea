"""`paymesh batch upload` as a subprocess (issue 23): every bad file is one line on stderr and its own
exit code, never a traceback; a UTF-8 file with a byte order mark goes through; the router's
refusals are `STATUS: message` with their exit code."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bank.common.v1 import types_pb2
from tests.channel_calls import AS_OF, open_loans

CLOSED_PORT = "127.0.0.1:9"


def paymesh_batch(file, tmp_path: Path, pki_dir=None, router=CLOSED_PORT, channel="agent"):
    """Runs the command; without pki_dir the certificates are absent, so nothing can reach the network."""
    env = dict(os.environ, PAYMESH_HOME=str(tmp_path / "home"), PAYMESH_PAYMENT_ROUTER_ADDR=router,
               PAYMESH_PKI_DIR=str(pki_dir or tmp_path / "no-pki"))
    return subprocess.run([sys.executable, "-m", "paymesh_tools.cli", "batch", "upload", str(file),
                           "--channel", channel],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)


def refused_with(result, code: int, *fragments: str) -> str:
    stderr = result.stderr
    assert "Traceback" not in stderr, stderr
    assert result.returncode == code, (result.returncode, stderr)
    lines = [line for line in stderr.splitlines() if line and not line.endswith("records sent")]  # progress bar
    assert len(lines) == 1, stderr  # one line
    message = lines[0]
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def day_file(*lines: str, bom=False, line_end="\n") -> bytes:
    return (b"\xef\xbb\xbf" if bom else b"") + "".join(line + line_end for line in lines).encode()


GOOD = ("H,file-1,2026-11-27", "D,1,CSH-000001,PEN,1500,,ref-1", "D,2,CSH-000002,USD,700,REDUCE_TERM,",
        "T,2,PEN=1500;USD=700")


def write(tmp_path: Path, content: bytes, name="day.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_file_that_does_not_exist(tmp_path):
    refused_with(paymesh_batch(tmp_path / "absent.csv", tmp_path), 3, "absent.csv: no such file")


def test_a_directory(tmp_path):
    (tmp_path / "a-dir").mkdir()
    refused_with(paymesh_batch(tmp_path / "a-dir", tmp_path), 4, "a-dir: is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_file_without_read_permission(tmp_path):
    path = write(tmp_path, day_file(*GOOD))
    path.chmod(0)
    refused_with(paymesh_batch(path, tmp_path), 5, "cannot be opened", "Permission denied")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="Linux's /proc")
def test_a_file_that_fails_to_read(tmp_path):
    # Opens fine, but reading its first bytes (address 0 of the process) is an I/O error.
    refused_with(paymesh_batch("/proc/self/mem", tmp_path), 5, "/proc/self/mem:1: cannot be read")


def test_a_latin1_file_names_the_line_and_the_byte(tmp_path):
    content = day_file(GOOD[0], "D,1,CSH-000001,PEN,1500,,cafe", "T,1,PEN=1500").replace(b"cafe", b"caf\xe9")
    message = refused_with(paymesh_batch(write(tmp_path, content), tmp_path), 6, "day.csv:2: not UTF-8", "0xe9")
    assert f"offset {content.index(0xE9)} in the file" in message


def test_a_field_over_128_kib(tmp_path):
    content = day_file(GOOD[0], "D,1,CSH-000001,PEN,1500,," + "x" * 140_000, "T,1,PEN=1500")
    refused_with(paymesh_batch(write(tmp_path, content), tmp_path), 7, "day.csv:2: line longer than 4096")


def test_a_line_over_the_limit(tmp_path):
    content = day_file(GOOD[0], "D,1,CSH-000001,PEN,1500,," + "x" * 5000, "T,1,PEN=1500")
    refused_with(paymesh_batch(write(tmp_path, content), tmp_path), 7, "day.csv:2: line longer than 4096")


def test_a_quoted_field_over_the_csv_limit(tmp_path):
    field = "\n".join(["x" * 4000] * 40)  # 160,000 characters over short lines
    content = day_file(GOOD[0], f'D,1,CSH-000001,PEN,1500,,"{field}"', "T,1,PEN=1500")
    refused_with(paymesh_batch(write(tmp_path, content), tmp_path), 7, "a quoted field longer than")


@pytest.mark.parametrize("bad_line, fragment", [
    ("X,1,2", "day.csv:2: unknown record type 'X'"),
    ("", "day.csv:2: empty line"),
    ("D,1,CSH-000001,PEN", "day.csv:2: D record with 4 fields, needs 6"),
    ("D,one,CSH-000001,PEN,1500,,", "day.csv:2: line_number must be an integer, not 'one'"),
    ("D,1,CSH-000001,PEN,15.00,,", "day.csv:2: amount_minor must be an integer, not '15.00'"),
    ("D,1,CSH-000001,PEN,99999999999999999999,,", "day.csv:2: amount_minor out of range"),
    ("D,1,CSH-000001,PEN,1500,REDUCE_EVERYTHING,", "day.csv:2: prepayment_mode must be REDUCE_TERM"),
])
def test_a_malformed_record_names_its_line(tmp_path, bad_line, fragment):
    content = day_file(GOOD[0], bad_line, "T,1,PEN=1500")
    refused_with(paymesh_batch(write(tmp_path, content), tmp_path), 8, fragment)


@pytest.mark.parametrize("trailer, fragment", [
    ("T,one,PEN=1500;USD=700", "day.csv:4: line_count must be an integer, not 'one'"),
    ("T,2,PEN:1500;USD=700", "day.csv:4: a control total is <currency>=<total_minor>, not 'PEN:1500'"),
    ("T,2,PEN=15.00", "day.csv:4: a control total must be an integer"),
    ("T,2", "day.csv:4: T record with 2 fields, needs 3"),
])
def test_a_malformed_trailer_names_its_line(tmp_path, trailer, fragment):
    refused_with(paymesh_batch(write(tmp_path, day_file(*GOOD[:-1], trailer)), tmp_path), 8, fragment)


@pytest.mark.parametrize("lines, fragment", [
    ((), "day.csv: empty file: no header"),
    (GOOD[1:], "day.csv:1: no header"),
    (GOOD[:-1], "day.csv: no trailer: the file ends (line 3)"),
    (GOOD[:2] + GOOD[:1] + GOOD[2:], "day.csv:3: a second header"),
    (GOOD + ("D,3,CSH-000003,PEN,1,,",), "day.csv:5: a D record after the trailer"),
])
def test_a_file_without_its_header_or_trailer(tmp_path, lines, fragment):
    refused_with(paymesh_batch(write(tmp_path, day_file(*lines)), tmp_path), 9, fragment)


def test_a_good_file_without_certificates(tmp_path):
    refused_with(paymesh_batch(write(tmp_path, day_file(*GOOD, bom=True)), tmp_path), 11, "TLS material missing")


def test_a_router_that_cannot_be_reached(tmp_path, pki_dir):
    result = paymesh_batch(write(tmp_path, day_file(*GOOD)), tmp_path, pki_dir=pki_dir, router=CLOSED_PORT)
    refused_with(result, 10, "batch refused: UNAVAILABLE: ")


def lines_of(loans: list[str], amounts: list[int]) -> list[str]:
    return [f"D,{n},{loan},PEN,{amount},,ref-{n}" for n, (loan, amount) in enumerate(zip(loans, amounts), 1)]


@pytest.mark.parametrize("line_end", ["\n", "\r\n"])
def test_a_utf8_file_with_a_byte_order_mark_is_uploaded(mesh, pki_dir, tmp_path, line_end):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[:3]
    batch_id = f"cli-bom-{len(line_end)}"
    content = day_file(f"H,{batch_id},{AS_OF}", *lines_of(loans, [1100, 1200, 1300]), "T,3,PEN=3600",
                       bom=True, line_end=line_end)
    result = paymesh_batch(write(tmp_path, content), tmp_path, pki_dir, mesh["payment-router"].address)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    summary = result.stdout.split("\n")
    assert any(row.split()[:4] == [batch_id, "3", "3", "0"] for row in summary), result.stdout  # 3 lines applied


def test_a_file_the_router_refuses_is_status_and_message(mesh, pki_dir, tmp_path):
    loans = open_loans(types_pb2.LOAN_TYPE_CASH)[3:5]
    content = day_file(f"H,cli-bad-total,{AS_OF}", *lines_of(loans, [1000, 1000]), "T,2,PEN=2001")
    result = paymesh_batch(write(tmp_path, content), tmp_path, pki_dir, mesh["payment-router"].address)
    refused_with(result, 10, "batch refused: INVALID_ARGUMENT: the trailer does not match the file")
