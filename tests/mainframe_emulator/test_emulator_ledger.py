"""The mainframe emulator on its own, spoken to over TLS with records as the bridge
and the operator speak them: replays, refusals, control, the end-of-day file, a
closed day, the book read page by page."""

import asyncio
import hashlib
import sqlite3
from datetime import datetime, UTC

import pytest

from mainframe_bridge import book, eod_file, records
from mainframe_bridge.book import read_book
from mainframe_bridge.codec import CODEC
from mainframe_bridge.framing import MAX_FRAME, encode_frame, read_frame
from mainframe_bridge.link import client_context, open_link, set_emulator_mode
from paymesh.topology import BRIDGE, OPERATOR, Identity
from tests.mainframe_bridge.support import emulator_book, start_emulator

DAY = 20250331
CREATED = datetime(2025, 3, 31, 23, 30, tzinfo=UTC)


def record(n: int, debit: int = 500, credit: int = 500, account: str = "140101") -> records.PostingRecord:
    return records.PostingRecord(f"e-{n}", DAY, f"pay-{n}", 4, 1, (
        records.Entry(f"e-{n}:1", "110504", "D", "PEN", debit),
        records.Entry(f"e-{n}:2", account, "C", "PEN", credit)))


async def exchange(address, pki_dir, frames: list[bytes], identity=BRIDGE, answers: int | None = None) -> list[bytes]:
    reader, writer = await open_link(address, client_context(pki_dir, identity))
    try:
        for frame in frames:
            writer.write(encode_frame(frame))
        await writer.drain()
        return [await asyncio.wait_for(read_frame(reader), 5) for _ in range(answers or len(frames))]
    finally:
        writer.close()


async def test_postings_are_answered_in_order_refusals_say_why_and_a_replay_answers_as_the_first_time(
        tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        sent = [record(1), record(2, credit=499), record(3, account="999999"), record(4)]
        first = [records.decode_reply(f) for f in
                 await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in sent])]
        assert [r.posting_id for r in first] == ["e-1", "e-2", "e-3", "e-4"]
        assert [r.return_code for r in first] == [records.RC_OK, records.RC_UNBALANCED, records.RC_UNKNOWN_ACCOUNT,
                                                  records.RC_OK]
        assert "differ by 1 in PEN" in first[1].message and "999999" in first[2].message
        assert first[0].reference != first[3].reference
        replayed = [records.decode_reply(f) for f in
                    await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in sent])]
        assert replayed == first
        assert emulator_book(tmp_path) == [("e-1", 0), ("e-2", 8), ("e-3", 12), ("e-4", 0)]
    finally:
        emulator.kill()


async def test_only_the_operator_controls_the_emulator(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        [answer] = await exchange(emulator.address, pki_dir, [records.encode_control("DOWN")])
        assert records.CONTROL_REPLY.decode(answer)["CA-MESSAGE"].startswith("refused")
        assert await set_emulator_mode(emulator.address, pki_dir, "SIDEWAYS") == "NORMAL: unknown mode; one of " \
            "NORMAL, DOWN, SLOW, GARBAGE, TRUNCATE"
        assert await set_emulator_mode(emulator.address, pki_dir, "GARBAGE") == "GARBAGE: mode set"
        [garbage] = await exchange(emulator.address, pki_dir, [records.encode_posting(record(9))])
        assert garbage != records.encode_reply(records.Reply("e-9", 0, "", ""))
    finally:
        emulator.kill()


async def deliver(address, pki_dir, data: bytes) -> bytes:
    """An end-of-day file as the bridge sends it (frames of whole records); the EOD-REPLY's bytes."""
    frames = [data[i:i + 4 * eod_file.LRECL] for i in range(0, len(data), 4 * eod_file.LRECL)]
    [reply] = await exchange(address, pki_dir, frames, answers=1)
    return reply


def eod_rows(home) -> list[tuple]:
    connection = sqlite3.connect(home / "data" / "mainframe-emulator.db")
    try:
        return connection.execute("SELECT business_date, return_code, digest FROM eod_files ORDER BY received_seq"
                                  ).fetchall()
    finally:
        connection.close()


async def test_the_end_of_day_file_is_checked_against_its_trailer_and_the_ledger(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        posted = [record(n) for n in range(1, 4)]
        await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in posted])
        details = [eod_file.Detail(p.posting_id, e, p.channel, p.loan_type) for p in posted for e in p.entries]

        async def answer(data: bytes) -> dict:
            return records.EOD_REPLY.decode(await deliver(emulator.address, pki_dir, data))

        good = eod_file.build(DAY, details, CREATED, 1)
        # A trailer that counts two details fewer than the file has.
        lying = good[:-eod_file.LRECL] + eod_file.build(DAY, details[:-2], CREATED, 1)[-eod_file.LRECL:]
        refused = await answer(lying)
        assert refused["ER-RETURN-CODE"] == records.RC_RECORD_COUNTS and "counts 4 details" in refused["ER-MESSAGE"]
        # A detail's account changed on the way: the control totals agree, the hash total does not.
        forged = [eod_file.Detail(d.posting_id, d.entry._replace(account="140102"), d.channel, d.loan_type)
                  if d.entry.account == "140101" else d for d in details]
        changed = eod_file.build(DAY, forged, CREATED, 1)[:-eod_file.LRECL] + good[-eod_file.LRECL:]
        assert (await answer(changed))["ER-RETURN-CODE"] == records.RC_HASH_TOTAL
        # Self-consistent but unbalanced.
        unbalanced = await answer(eod_file.build(DAY, details[:-1], CREATED, 1))
        assert unbalanced["ER-RETURN-CODE"] == records.RC_CONTROL_TOTALS and "differ in PEN" in unbalanced["ER-MESSAGE"]
        # Balanced and self-consistent, but not what the ledger posted that day.
        missing_one = await answer(eod_file.build(DAY, details[:-2], CREATED, 1))
        assert missing_one["ER-RETURN-CODE"] == records.RC_LEDGER_MISMATCH
        accepted = await answer(good)
        assert (accepted["ER-RETURN-CODE"], accepted["ER-RECORD-COUNT"]) == (records.RC_OK, 6)
        assert [row[1] for row in eod_rows(tmp_path)] == [records.RC_RECORD_COUNTS, records.RC_HASH_TOTAL,
                                                          records.RC_CONTROL_TOTALS, records.RC_LEDGER_MISMATCH, 0]
    finally:
        emulator.kill()


async def test_a_closed_day_answers_its_file_again_refuses_another_and_takes_no_new_postings(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        posted = [record(n) for n in range(1, 4)]
        [first_reply, *_] = await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in posted])
        details = [eod_file.Detail(p.posting_id, e, p.channel, p.loan_type) for p in posted for e in p.entries]
        data = eod_file.build(DAY, details, CREATED, 1)
        accepted = await deliver(emulator.address, pki_dir, data)
        assert records.EOD_REPLY.decode(accepted)["ER-RETURN-CODE"] == records.RC_OK
        # The bridge got no answer and sends the same file: the same answer, nothing recorded.
        assert await deliver(emulator.address, pki_dir, data) == accepted
        assert eod_rows(tmp_path) == [(DAY, 0, hashlib.sha256(data).digest())]
        # The same details built again (another creation time) are another file.
        other = records.EOD_REPLY.decode(await deliver(emulator.address, pki_dir,
                                                       eod_file.build(DAY, details, CREATED, 2)))
        assert other["ER-RETURN-CODE"] == records.RC_DAY_CLOSED
        assert "already closed with another file" in other["ER-MESSAGE"]
        assert await deliver(emulator.address, pki_dir, data) == accepted  # still the first answer
        # A new posting for the closed day is refused; a replay still gets its first reply; other days post.
        tomorrow = record(5)._replace(business_date=DAY + 1)
        late, replay, next_day = [records.decode_reply(f) for f in await exchange(
            emulator.address, pki_dir, [records.encode_posting(p) for p in (record(4), posted[0], tomorrow)])]
        assert (late.return_code, late.reference) == (records.RC_DAY_CLOSED, "")
        assert "2025-03-31 is closed" in late.message
        assert replay == records.decode_reply(first_reply) and replay.return_code == records.RC_OK
        assert next_day.return_code == records.RC_OK
        assert (await read_book(emulator.address, client_context(pki_dir, BRIDGE),
                                "2025-03-31"))[-1].posting_id == "e-3"
    finally:
        emulator.kill()


async def test_an_emulator_book_made_before_file_digests_were_kept_still_opens(tmp_path, pki_dir):
    (tmp_path / "data").mkdir()
    old = sqlite3.connect(tmp_path / "data" / "mainframe-emulator.db")
    old.executescript("""
        CREATE TABLE eod_files (business_date INTEGER NOT NULL, file_name TEXT NOT NULL,
            record_count INTEGER NOT NULL, return_code INTEGER NOT NULL, message TEXT NOT NULL,
            received_seq INTEGER PRIMARY KEY AUTOINCREMENT);
        INSERT INTO eod_files (business_date, file_name, record_count, return_code, message)
            VALUES (20250330, 'GLPOST.D20250330', 0, 0, 'accepted');
    """)
    old.close()
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        data = eod_file.build(DAY, [], CREATED, 2)
        reply = await deliver(emulator.address, pki_dir, data)
        assert records.EOD_REPLY.decode(reply)["ER-RETURN-CODE"] == records.RC_OK
        assert eod_rows(tmp_path) == [(20250330, 0, None), (DAY, 0, hashlib.sha256(data).digest())]
        # The day accepted before digests were kept is closed: it takes no file it cannot prove is its own.
        again = await deliver(emulator.address, pki_dir, eod_file.build(20250330, [], CREATED, 1))
        assert records.EOD_REPLY.decode(again)["ER-RETURN-CODE"] == records.RC_DAY_CLOSED
    finally:
        emulator.kill()


def many_entries(n: int, count: int, date: int = DAY) -> records.PostingRecord:
    """A balanced posting of count entries: one debit against count - 1 credits of 100."""
    credits = tuple(records.Entry(f"m-{n}:{i}", "140101", "C", "PEN", 100) for i in range(2, count + 1))
    return records.PostingRecord(f"m-{n}", date, f"pay-m-{n}", 2, 3,
                                 (records.Entry(f"m-{n}:1", "110504", "D", "PEN", 100 * (count - 1)),) + credits)


async def test_the_book_of_a_day_is_read_page_by_page(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        # Two full pages and more: a posting larger than a page, many small ones, refused ones, another day.
        big = many_entries(1, records.BOOK_ITEMS_PER_PAGE + 80)
        small = [record(n) for n in range(1, 200)]
        sent = [small[0], big, record(900, credit=1), *small[1:], many_entries(2, 3, DAY + 1)]
        replies = [records.decode_reply(f) for f in
                   await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in sent])]
        assert [r.return_code for r in replies].count(records.RC_OK) == len(sent) - 1
        expected = [book.BookPosting(p.posting_id, p.payment_id, p.channel, p.loan_type, p.entries)
                    for p in [small[0], big, *small[1:]]]
        assert await read_book(emulator.address, client_context(pki_dir, BRIDGE), "2025-03-31") == expected
        with pytest.raises(book.BookUnavailable):  # the operator asks the bridge (ListMainframeBook), not the mainframe
            await read_book(emulator.address, client_context(pki_dir, OPERATOR), "2025-03-31")
        assert await read_book(emulator.address, client_context(pki_dir, BRIDGE), "2025-03-30") == []

        # Each answer is one frame: whole items, then the BOOK-END that says where to go on.
        pages = []
        position = (0, 0)
        while True:
            [frame] = await exchange(emulator.address, pki_dir, [records.encode_book_inquiry(DAY, *position)])
            assert len(frame) <= MAX_FRAME
            page = records.decode_book_page(frame)
            pages.append(page)
            position = (page.last_seq, page.last_line)
            if not page.more:
                break
        full, rest = divmod(len(big.entries) + 2 * len(small), records.BOOK_ITEMS_PER_PAGE)
        assert [len(p.items) for p in pages] == [records.BOOK_ITEMS_PER_PAGE] * full + [rest]
        # The big posting runs over into the second page, which starts inside it.
        assert [(i.posting_id, i.line) for i in pages[0].items[2:3]] == [("m-1", 1)]
        assert (pages[1].items[0].posting_id, pages[1].items[0].line) == ("m-1", records.BOOK_ITEMS_PER_PAGE - 1)
        [bad] = await exchange(emulator.address, pki_dir, ["BKQY".encode(CODEC) + b"\x00" * 25])
        assert records.decode_book_page(bad).return_code == records.RC_MALFORMED
    finally:
        emulator.kill()


async def test_a_book_that_cannot_be_read_says_so(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir, PAYMESH_EMULATOR_MODE="DOWN")
    try:
        with pytest.raises(book.BookUnavailable, match="link to the mainframe failed"):
            await read_book(emulator.address, client_context(pki_dir, BRIDGE), "2025-03-31")
        with pytest.raises(book.BookUnavailable, match="link to the mainframe failed"):
            await read_book(emulator.address, client_context(pki_dir, Identity("channel", "atm")), "2025-03-31")
    finally:
        emulator.kill()
    with pytest.raises(book.BookUnavailable, match="cannot reach the mainframe"):
        await read_book(emulator.address, client_context(pki_dir, BRIDGE), "2025-03-31")
