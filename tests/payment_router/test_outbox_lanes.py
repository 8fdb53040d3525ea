"""The router's outbox lanes, on a real journal file: a day file's confirmations have their own
topic, so they never stand before an online one (on each backend); a correction (reversal, revision) goes behind
what it corrects while that still waits there, so a channel never hears of a reversal first."""

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmations_pb2
from bank.ledger.v1 import ledger_pb2
from bank.payments.v1 import payments_pb2
from payment_router.journal import Accepted, Journal
from payment_router.outbox import CONFIRMATIONS, CONFIRMATIONS_BATCH
from payment_router.router import Router
from paymesh.streams import BatchingStream


def unstarted(name: str) -> BatchingStream:
    """A peer stream that is never opened: these tests read what the journal's outbox holds."""
    return BatchingStream(name, open_call=lambda: None, to_request=list,  # type: ignore[arg-type, return-value]
                          results_of=lambda response: [], key_of=str)


def reversed_payment(payment_id: str) -> payments_pb2.Payment:
    return payments_pb2.Payment(payment_id=payment_id, channel=types_pb2.CHANNEL_STORE, loan_id="CSH-000001",
                                loan_type=types_pb2.LOAN_TYPE_CASH, status=types_pb2.PAYMENT_STATUS_REVERSED,
                                business_date="2026-11-27", reversal_business_date="2026-11-27")


async def topics_of(journal: Journal, *keys: str) -> dict[str, str]:
    rows = {}
    for topic in (CONFIRMATIONS, CONFIRMATIONS_BATCH):
        rows.update({key: topic for _, key, _, _ in await journal.outbox(topic, 0, 100)})
    return {key: rows.get(key, "") for key in keys}


async def test_a_reversal_goes_behind_its_day_file_confirmation_while_that_waits(journal):
    router = Router(journal, cores={}, bridge=unstarted("bridge"), confirmations=unstarted("confirmations"),
                    confirmations_batch=unstarted("confirmations.batch"), booking=None, bridge_stub=None)
    filed, online = reversed_payment("PAY-file"), reversed_payment("PAY-online")
    for payment in (filed, online):
        await journal.accept([Accepted(payment, "hash")])
    applied = confirmations_pb2.Confirmation(payment_id="PAY-file").SerializeToString()
    await journal.record(filed, [(CONFIRMATIONS_BATCH, "PAY-file", applied, "")],  # not yet sent
                         types_pb2.PRIORITY_BATCH)
    for payment in (filed, online):
        await router.record_reversal(payment, ledger_pb2.Posting(posting_id=f"REV-{payment.payment_id}"))
    assert await topics_of(journal, "PAY-file", "PAY-file:reversed", "PAY-online:reversed") == {
        "PAY-file": CONFIRMATIONS_BATCH, "PAY-file:reversed": CONFIRMATIONS_BATCH,
        "PAY-online:reversed": CONFIRMATIONS}
    batch_rows = [key for _, key, _, _ in await journal.outbox(CONFIRMATIONS_BATCH, 0, 100)]
    assert batch_rows == ["PAY-file", "PAY-file:reversed"], "in order: the payment, then its reversal"
