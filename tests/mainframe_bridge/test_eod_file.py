"""The end-of-day file as the mainframe team expects it (dataset name, creation time,
sequence, record counts, hash total), and the bridge's delivery of it to a real
emulator: the sequence it gives, the same bytes again on a retried close, the
mainframe's refusal of another file for a day it closed."""

import asyncio
import hashlib
import sqlite3
from datetime import datetime, UTC

import grpc
import pytest

from bank.common.v1 import errors_pb2
from mainframe_bridge import end_of_day, eod_file, queue_store, records
from mainframe_bridge.codec import CODEC
from mainframe_bridge.framing import encode_frame, read_frame
from mainframe_bridge.link import client_context, open_link
from paymesh.errors import Refused
from paymesh.postgres import PostgresStore, ensure_day_partitions_cached
from paymesh.sqlite import Store
from paymesh.topology import BRIDGE
from tests.mainframe_bridge.support import DATE, posting, start_emulator

DAY = 20261128
CREATED = datetime(2026, 11, 29, 3, 4, 5, tzinfo=UTC)  # 22:04:05 of the 28th in Lima (UTC-5)


def details(count: int = 3) -> list[eod_file.Detail]:
    rows = []
    for n in range(count):
        rows.append(eod_file.Detail(f"p{n}", records.Entry(f"p{n}:1", "110504", "D", "PEN", 100 + n), 4, 1))
        rows.append(eod_file.Detail(f"p{n}", records.Entry(f"p{n}:2", "140101", "C", "PEN", 100 + n), 4, 1))
    return rows


def test_the_dataset_name_keeps_each_qualifier_within_8_characters():
    assert eod_file.file_name(20261128) == "GLPOST.D261128"
    assert eod_file.file_name(20300105) == "GLPOST.D300105"
    assert all(len(q) <= 8 for q in eod_file.file_name(20261128).split("."))


def test_the_header_says_when_in_lima_and_which_file_of_the_sequence():
    data = eod_file.build(DAY, details(), CREATED, 42)
    header = data[:eod_file.LRECL]
    # EH-CREATION-DATE 9(8), EH-CREATION-TIME 9(6), EH-FILE-SEQUENCE 9(6) follow type, date and name.
    assert header[56:76] == "20261128220405000042".encode(CODEC)
    parsed = eod_file.read(data)
    assert parsed.file_name == "GLPOST.D261128" and parsed.sequence == 42
    assert parsed.created == CREATED and parsed.created.utcoffset().total_seconds() == -5 * 3600


def test_the_same_inputs_give_the_same_bytes():
    assert eod_file.build(DAY, details(), CREATED, 7) == eod_file.build(DAY, details(), CREATED, 7)
    assert eod_file.build(DAY, details(), CREATED, 7) != eod_file.build(DAY, details(), CREATED, 8)
    with pytest.raises(ValueError, match="time zone"):
        eod_file.build(DAY, details(), datetime(2026, 11, 28, 22, 4, 5), 7)


def test_the_trailer_counts_each_record_type_and_carries_the_hash_total():
    rows = details(3)
    parsed = eod_file.read(eod_file.build(DAY, rows, CREATED, 1))
    assert (parsed.header_count, parsed.detail_count, parsed.trailer_count, parsed.record_count) == (1, 6, 1, 8)
    assert parsed.hash_total == 3 * (110504 + 140101)
    assert parsed.totals == {"PEN": (303, 303)}
    assert eod_file.check_totals(parsed) == (records.RC_OK, "control totals agree")


def test_the_hash_total_keeps_its_10_low_order_digits_as_ach_does():
    big = [eod_file.Detail("p", records.Entry(f"p:{n}", "9999999999", "D", "PEN", 1), 1, 1) for n in range(3)]
    assert eod_file.hash_total(big) == 29999999997 % 10 ** 10 == 9999999997
    assert eod_file.hash_total(
        [eod_file.Detail("p", records.Entry("p:1", "GL-1105-04", "D", "PEN", 1), 1, 1)]) == 110504
    assert eod_file.read(eod_file.build(DAY, big, CREATED, 1)).hash_total == 9999999997


def _with_trailer(data: bytes, values: dict) -> bytes:
    trailer = records.EOD_TRAILER.decode(data, len(data) - eod_file.LRECL)
    return data[:-eod_file.LRECL] + records.EOD_TRAILER.encode({**trailer, **values})


@pytest.mark.parametrize("lie, code, complaint", [
    ({"ET-DETAIL-COUNT": 5}, records.RC_RECORD_COUNTS, "counts 5 details"),
    ({"ET-RECORD-COUNT": 6}, records.RC_RECORD_COUNTS, "counts 6 records"),
    ({"ET-HEADER-COUNT": 2}, records.RC_RECORD_COUNTS, "2 headers"),
    ({"ET-HASH-TOTAL": 1}, records.RC_HASH_TOTAL, "hash total 1"),
    ({"ET-TOTALS": [{"ET-CURRENCY": "PEN", "ET-DEBIT-TOTAL": 1, "ET-CREDIT-TOTAL": 1}]},
     records.RC_CONTROL_TOTALS, "control totals do not match"),
])
def test_a_trailer_that_lies_is_refused_with_its_own_return_code(lie, code, complaint):
    parsed = eod_file.read(_with_trailer(eod_file.build(DAY, details(), CREATED, 1), lie))
    return_code, message = eod_file.check_totals(parsed)
    assert return_code == code and complaint in message


def test_a_detail_whose_account_changed_is_caught_by_the_hash_total_not_the_control_totals():
    good = eod_file.build(DAY, details(), CREATED, 1)
    changed = details()
    changed[1] = eod_file.Detail("p0", records.Entry("p0:2", "140102", "C", "PEN", 100), 4, 1)
    forged = eod_file.build(DAY, changed, CREATED, 1)[:-eod_file.LRECL] + good[-eod_file.LRECL:]
    assert eod_file.check_totals(eod_file.read(forged))[0] == records.RC_HASH_TOTAL


def test_an_unbalanced_file_is_refused():
    rows = details()[:-1]  # a debit without its credit
    assert eod_file.check_totals(eod_file.read(eod_file.build(DAY, rows, CREATED, 1))) == (
        records.RC_CONTROL_TOTALS, "debits 303 and credits 201 differ in PEN")


def _accepted_files(home) -> list[tuple[int, str, int, bytes]]:
    connection = sqlite3.connect(home / "data" / "mainframe-emulator.db")
    try:
        return connection.execute("SELECT business_date, file_name, return_code, digest FROM eod_files"
                                  " ORDER BY received_seq").fetchall()
    finally:
        connection.close()


async def _posted_on_both_sides(emulator, pki_dir, store: Store | PostgresStore, postings) -> list[eod_file.Detail]:
    """The postings posted at the emulator and POSTED in the bridge's queue, as the forwarder leaves
    them; the file's details they make."""
    frames = [records.encode_posting(records.record_of(p)) for p in postings]
    reader, writer = await open_link(emulator.address, client_context(pki_dir, BRIDGE))
    try:
        writer.write(b"".join(map(encode_frame, frames)))
        await writer.drain()
        for _ in frames:
            assert records.decode_reply(await read_frame(reader)).return_code == records.RC_OK
    finally:
        writer.close()
    def posted(connection) -> None:
        ensure_day_partitions_cached(connection, "postings", {p.business_date for p in postings})  # on PostgreSQL
        connection.executemany(
            "INSERT INTO postings (posting_id, business_date, channel, loan_type, reversal, currency, amount, digest,"
            " frame, status, queued_at) VALUES (?, ?, ?, ?, 0, 'PEN', 0, ?, ?, ?, 0)",
            [(p.posting_id, p.business_date, p.channel, p.loan_type, b"\x00", frame, queue_store.POSTED)
             for p, frame in zip(postings, frames)])

    await store.transaction(posted)
    return [eod_file.Detail(p.posting_id, e, p.channel, p.loan_type)
            for p in map(records.record_of, postings) for e in p.entries]


async def test_a_close_retried_after_the_mainframe_did_not_answer_sends_the_same_bytes(
        tmp_path, pki_dir, bridge_store):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        rows = await _posted_on_both_sides(emulator, pki_dir, bridge_store, [posting(n) for n in range(5)])
        # Two days closed before this one: it is the third file.
        await bridge_store.run(lambda c: c.executemany(
            "INSERT INTO business_days (business_date, state) VALUES (?, ?)",
            [("2025-03-27", queue_store.CLOSED), ("2025-03-28", queue_store.CLOSED), (DATE, queue_store.CLOSING)]))
        context, eod_dir = client_context(pki_dir, BRIDGE), tmp_path / "eod"
        emulator.kill()  # the mainframe does not answer
        with pytest.raises(Refused) as unavailable:
            await end_of_day.send_day_file(bridge_store, eod_dir, emulator.address, context, DATE)
        assert unavailable.value.code == grpc.StatusCode.UNAVAILABLE
        written = (eod_dir / "GLPOST.D250331").read_bytes()
        first = eod_file.read(written)
        assert first.sequence == 3 and first.details == rows
        await asyncio.sleep(1.1)  # a file built again would carry another creation time
        emulator = emulator.restart()
        closed = await end_of_day.send_day_file(bridge_store, eod_dir, emulator.address, context, DATE)
        assert closed.accepted_by_mainframe and closed.file_name == "GLPOST.D250331" and closed.record_count == 15
        assert (closed.file_sequence, closed.hash_total) == (3, first.hash_total) and first.hash_total > 0
        assert (eod_dir / "GLPOST.D250331").read_bytes() == written
        # The lease taken over by a standby with a folder of its own: it builds the same bytes again.
        standby_dir = tmp_path / "standby-eod"
        assert await end_of_day.send_day_file(bridge_store, standby_dir, emulator.address, context, DATE) == closed
        assert (standby_dir / "GLPOST.D250331").read_bytes() == written
        assert _accepted_files(tmp_path) == [(20250331, "GLPOST.D250331", 0, hashlib.sha256(written).digest())]
        # The answer lost again: the same file again gets the same answer, and the mainframe records nothing new.
        assert await end_of_day.send_day_file(bridge_store, eod_dir, emulator.address, context, DATE) == closed
        assert len(_accepted_files(tmp_path)) == 1
    finally:
        emulator.kill()


async def test_a_day_the_mainframe_closed_with_another_file_is_refused_as_closed(tmp_path, pki_dir, bridge_store):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        rows = await _posted_on_both_sides(emulator, pki_dir, bridge_store, [posting(n) for n in range(3)])
        # The day was closed at the mainframe with a file of the same details the bridge did not write.
        reader, writer = await open_link(emulator.address, client_context(pki_dir, BRIDGE))
        try:
            writer.write(encode_frame(eod_file.build(20250331, rows, CREATED, 9)))
            await writer.drain()
            assert records.EOD_REPLY.decode(await read_frame(reader))["ER-RETURN-CODE"] == records.RC_OK
        finally:
            writer.close()
        with pytest.raises(Refused) as refused:
            await end_of_day.send_day_file(bridge_store, tmp_path / "eod", emulator.address,
                                           client_context(pki_dir, BRIDGE), DATE)
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert refused.value.reason == errors_pb2.ERROR_REASON_BUSINESS_DAY_CLOSED
        assert "already closed 2025-03-31 with another file" in str(refused.value)
    finally:
        emulator.kill()
