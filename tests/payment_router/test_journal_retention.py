"""Dropping an archived day from the router's journal, on each backend (a SQLite file, a PostgreSQL
database): the day's payments go and the store's size in use falls (PostgreSQL: the day's partition
dropped), their keys stay (the same key is answered PAYMENT_ARCHIVED, another body refused, never
journaled again), a payment reversed on a later day stays until that day is dropped too, and a day with
work still pending is refused whole."""

import pytest

from bank.common.v1 import errors_pb2, types_pb2
from bank.ledger.v1 import ledger_pb2
from bank.payments.v1 import payments_pb2
from payment_router.journal import CONFIRMATIONS, POSTINGS, Accepted, Journal
from payment_router.service import _check_replay
from paymesh.errors import Refused

DAY, NEXT_DAY = "2026-11-27", "2026-11-30"


def payment(payment_id: str, day: str = DAY, status=types_pb2.PAYMENT_STATUS_APPLIED, reversed_on: str = ""):
    return payments_pb2.Payment(payment_id=payment_id, channel=types_pb2.CHANNEL_ATM, idempotency_key=payment_id,
                                loan_id="CSH-000001", loan_type=types_pb2.LOAN_TYPE_CASH, status=status,
                                amount=types_pb2.Money(currency_code="PEN", amount_minor=10_000),
                                business_date=day, value_date=day, reversal_business_date=reversed_on)


async def journaled(journal: Journal, *payments: payments_pb2.Payment) -> None:
    for p in payments:
        accepted = payments_pb2.Payment()
        accepted.CopyFrom(p)
        accepted.status = types_pb2.PAYMENT_STATUS_ACCEPTED
        await journal.accept([Accepted(accepted, f"hash-{p.payment_id}", batch_id="FILE-1")])
        await journal.record(p, [])


async def test_a_dropped_day_keeps_its_keys_and_a_later_reversal_keeps_its_payment(journal):
    await journaled(journal, *(payment(f"PAY-{n}") for n in range(200)),
                    payment("PAY-reversed", status=types_pb2.PAYMENT_STATUS_REVERSED, reversed_on=NEXT_DAY),
                    payment("PAY-next", day=NEXT_DAY))
    await journal.record_batch_lines(types_pb2.CHANNEL_ATM, "FILE-1", [(1, payment("PAY-0"), True),
                                                                       (2, payment("PAY-next"), True)])

    # A retry after the close is booked on the next day: still the one payment, on its own day.
    (retry,) = await journal.accept([Accepted(payment("PAY-3", day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED),
                                              "hash-PAY-3")])
    assert not retry.new and (retry.payment.business_date, retry.payment.status) == (
        DAY, types_pb2.PAYMENT_STATUS_APPLIED)
    assert "PAY-3" not in {p.payment_id for p in await journal.day_payments(NEXT_DAY)}

    dropped = await journal.drop_day(DAY, keys_kept_from="2026-08-29")
    assert (dropped.dropped_count, dropped.kept_key_count, dropped.forgotten_key_count) == (200, 200, 0)
    # (On PostgreSQL a DELETE left the rows' space to a vacuum: the size did not fall.)
    assert dropped.store_bytes_after < dropped.store_bytes_before, "the day's space is given back"
    assert await journal.get("PAY-0") is None
    # Reversed on a day not dropped yet: that day's reconciliation still lists it.
    assert {p.payment_id for p in await journal.day_payments(NEXT_DAY)} == {"PAY-reversed", "PAY-next"}
    # The file spans both days: its lines stay, the dropped one answered by its key's day and status.
    lines = dict(await journal.batch_results(types_pb2.CHANNEL_ATM, "FILE-1", 0, 10))
    assert (lines[1].payment_id, lines[1].business_date, lines[1].status) == (
        "PAY-0", DAY, types_pb2.PAYMENT_STATUS_APPLIED)

    # The same key again: answered from its kept key, not journaled as new; another body: refused.
    again_sent = Accepted(payment("PAY-7", day=NEXT_DAY, status=types_pb2.PAYMENT_STATUS_ACCEPTED), "hash-PAY-7")
    (outcome,) = await journal.accept([again_sent])
    assert outcome.archived and not outcome.new
    assert (outcome.payment.business_date, outcome.payment.status) == (DAY, types_pb2.PAYMENT_STATUS_APPLIED)
    with pytest.raises(Refused) as archived:
        _check_replay(again_sent, outcome)
    assert archived.value.reason == errors_pb2.ERROR_REASON_PAYMENT_ARCHIVED
    other_body = Accepted(again_sent.payment, "hash-of-another-body")
    (outcome,) = await journal.accept([other_body])
    with pytest.raises(Refused) as reused:
        _check_replay(other_body, outcome)
    assert reused.value.reason == errors_pb2.ERROR_REASON_IDEMPOTENCY_KEY_REUSED
    assert await journal.get("PAY-7") is None
    assert {p.payment_id for p in await journal.day_payments(NEXT_DAY)} == {"PAY-reversed", "PAY-next"}

    again = await journal.drop_day(DAY, keys_kept_from="2026-08-29")
    assert again.dropped_count == 0
    later = await journal.drop_day(NEXT_DAY, keys_kept_from=NEXT_DAY)  # a retention that keeps only that day
    assert later.dropped_count == 2 and later.forgotten_key_count == 201  # the reversed one was booked on DAY
    assert await journal.batch_results(types_pb2.CHANNEL_ATM, "FILE-1", 0, 10) == []
    (forgotten,) = await journal.accept([Accepted(payment("PAY-7", day=NEXT_DAY,
                                                          status=types_pb2.PAYMENT_STATUS_ACCEPTED), "hash-PAY-7")])
    assert forgotten.new, "after the retention the key is forgotten"


@pytest.mark.parametrize("pending", ["unanswered", "posting", "confirmation"])
async def test_a_day_with_work_pending_is_not_dropped_at_all(journal, pending):
    await journaled(journal, payment("PAY-1"), payment("PAY-2"))
    if pending == "unanswered":
        await journal.accept([Accepted(payment("PAY-3", status=types_pb2.PAYMENT_STATUS_ACCEPTED), "h")])
    elif pending == "posting":
        posting = ledger_pb2.Posting(posting_id="MOV-2", payment_id="PAY-2")
        await journal.record(payment("PAY-2"), [(POSTINGS, "MOV-2", posting.SerializeToString(), "")])
    else:
        await journal.record(payment("PAY-2"), [(CONFIRMATIONS, "PAY-2", b"", "")])
    with pytest.raises(Refused) as refused:
        await journal.drop_day(DAY, keys_kept_from="2026-08-29")
    assert refused.value.reason == errors_pb2.ERROR_REASON_BUSINESS_DAY_NOT_FINAL
    assert {p.payment_id for p in await journal.day_payments(DAY)} >= {"PAY-1", "PAY-2"}, "nothing dropped"
