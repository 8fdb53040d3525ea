"""The mainframe emulator on its own, spoken to over TLS with records as the bridge
and the operator speak them: replays, refusals, control, the end-of-day file."""

import asyncio

from mainframe_bridge import eod_file, records
from mainframe_bridge.framing import encode_frame, read_frame
from mainframe_bridge.link import client_context, open_link, set_emulator_mode
from paymesh.topology import BRIDGE
from tests.bridge_support import emulator_book, start_emulator

DAY = 20250331


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


async def test_the_end_of_day_file_is_checked_against_its_trailer_and_the_ledger(tmp_path, pki_dir):
    emulator = start_emulator(tmp_path, pki_dir)
    try:
        posted = [record(n) for n in range(1, 4)]
        await exchange(emulator.address, pki_dir, [records.encode_posting(p) for p in posted])
        details = [eod_file.Detail(p.posting_id, e, p.channel, p.loan_type) for p in posted for e in p.entries]

        async def deliver(data: bytes) -> dict:
            frames = [data[i:i + 4 * eod_file.LRECL] for i in range(0, len(data), 4 * eod_file.LRECL)]
            [reply] = await exchange(emulator.address, pki_dir, frames, answers=1)
            return records.EOD_REPLY.decode(reply)

        accepted = await deliver(eod_file.build(DAY, details))
        assert (accepted["ER-RETURN-CODE"], accepted["ER-RECORD-COUNT"]) == (records.RC_OK, 6)
        # A trailer whose totals are not its details'.
        good = eod_file.build(DAY, details)
        lying = good[:-eod_file.LRECL] + eod_file.build(DAY, details[:-2])[-eod_file.LRECL:]
        refused = await deliver(lying)
        assert refused["ER-RETURN-CODE"] == records.RC_CONTROL_TOTALS and "trailer counts 4" in refused["ER-MESSAGE"]
        # Balanced and self-consistent, but not what the ledger posted that day.
        missing_one = await deliver(eod_file.build(DAY, details[:-2]))
        assert missing_one["ER-RETURN-CODE"] == records.RC_LEDGER_MISMATCH
    finally:
        emulator.kill()
