"""The outbox forwarders on a journal of their own (SQLite) against a real confirmations service:
what the router records is sent as it commits, without reading it back from the journal; rows
journaled before the start (a restart), or more than the forwarders hold, are read from the table,
and every confirmation goes out once, in the order it was recorded."""

import asyncio

import pytest

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2_grpc, confirmations_pb2
from bank.payments.v1 import payments_pb2
from payment_router import outbox as outbox_module
from payment_router.journal import CONFIRMATIONS, Accepted, Journal
from payment_router.outbox import Outbox
from payment_router.router import BATCH, ONLINE, confirmations_stream
from paymesh.streams import BatchingStream
from paymesh.topology import ROUTER
from tests.channel_calls import ENV
from tests.harness import channel, start_mesh, stop_mesh

DAY = ENV["PAYMESH_PORTFOLIO_AS_OF"]


@pytest.fixture(scope="module")
def confirmations(tmp_path_factory, pki_dir):
    services = start_mesh(tmp_path_factory.mktemp("mesh"), pki_dir, only=("confirmations",), **ENV)
    yield services["confirmations"]
    stop_mesh(services)


def never_opened(name: str) -> BatchingStream:
    """The bridge's stream, not opened: these tests follow the confirmations."""
    return BatchingStream(name, open_call=lambda: None, to_request=list,  # type: ignore[arg-type, return-value]
                          results_of=lambda response: [], key_of=str)


async def record(journal: Journal, payment_id: str) -> None:
    payment = payments_pb2.Payment(payment_id=payment_id, channel=types_pb2.CHANNEL_ATM, loan_id="CSH-000001",
                                   loan_type=types_pb2.LOAN_TYPE_CASH, status=types_pb2.PAYMENT_STATUS_APPLIED,
                                   business_date=DAY, amount=types_pb2.Money(currency_code="PEN", amount_minor=100))
    await journal.accept([Accepted(payment, "hash")])
    confirmation = confirmations_pb2.Confirmation(
        payment_id=payment_id, channel=payment.channel, loan_id=payment.loan_id, loan_type=payment.loan_type,
        status=payment.status, business_date=DAY, amount=payment.amount)
    await journal.record(payment, [(CONFIRMATIONS, payment_id, confirmation.SerializeToString(), "")])


@pytest.fixture
async def forwarding(tmp_path, pki_dir, confirmations):
    """(journal, start, reads, held): a SQLite journal, what starts its forwarders (an Outbox) over real
    streams to the confirmations service, the topics of its reads of the outbox (one per read), and where a
    test puts an event that the next read of the confirmations waits for before it answers."""
    journal = Journal(tmp_path / "payment-router.db")
    reads: list[str] = []
    held_reads: list[asyncio.Event] = []
    read_outbox = journal.outbox

    async def counted(topic: str, after_id: int, limit: int):
        reads.append(topic)
        rows = await read_outbox(topic, after_id, limit)
        if topic == CONFIRMATIONS and held_reads:  # the read made; its answer held until the test lets it go
            await held_reads.pop().wait()
        return rows

    journal.outbox = counted
    async with channel(confirmations.address, pki_dir, ROUTER) as ch:
        stub = confirmation_service_pb2_grpc.ConfirmationServiceStub(ch)
        streams = [confirmations_stream(stub, ONLINE), confirmations_stream(stub, BATCH)]
        for stream in streams:
            stream.start()
        started: list[Outbox] = []

        async def start() -> Outbox:
            started.append(Outbox(journal, never_opened("mainframe-bridge"), *streams))
            await started[-1].start()
            return started[-1]

        yield journal, start, reads, held_reads
        for outbox in started:
            await outbox.stop()
        for stream in streams:
            await stream.close()
    await journal.close()


async def sequences(outbox: Outbox, payment_ids: list[str]) -> list[int]:
    return list(await asyncio.gather(*(outbox.confirmation_sequence(p, 10.0) for p in payment_ids)))


async def test_what_is_recorded_goes_out_without_being_read_back(forwarding):
    journal, start, reads, _ = forwarding
    before = [f"PAY-restart-{n}" for n in range(3)]
    for payment_id in before:  # journaled by the router before it stopped
        await record(journal, payment_id)
    outbox = await start()
    assert all(await sequences(outbox, before)), "the rows left in the journal are read and sent"
    reads_at_start = reads.count(CONFIRMATIONS)
    assert reads_at_start >= 1
    after = [f"PAY-online-{n}" for n in range(40)]
    for payment_id in after:
        await record(journal, payment_id)
        outbox.wake(CONFIRMATIONS)
    got = await sequences(outbox, after)
    assert all(got) and got == sorted(got), f"each confirmed once, in the order recorded: {got}"
    assert reads.count(CONFIRMATIONS) == reads_at_start, "nothing read back once caught up"
    await asyncio.sleep(1.2)  # the forwarders' once-a-second look finds nothing new, and reads nothing
    assert reads.count(CONFIRMATIONS) == reads_at_start
    assert await outbox.undelivered() == 0


async def test_more_rows_than_the_forwarder_holds_are_read_from_the_table(forwarding, monkeypatch):
    monkeypatch.setattr(outbox_module, "WRITTEN_ROWS_HELD", 5)
    journal, start, reads, _ = forwarding
    outbox = await start()
    await record(journal, "PAY-first")
    outbox.wake(CONFIRMATIONS)
    assert await sequences(outbox, ["PAY-first"])
    reads_before = reads.count(CONFIRMATIONS)
    burst = [f"PAY-burst-{n:02d}" for n in range(20)]
    await asyncio.gather(*(record(journal, payment_id) for payment_id in burst))  # past what is held
    outbox.wake(CONFIRMATIONS)
    got = await sequences(outbox, burst)
    assert all(got) and len(set(got)) == len(burst), got
    assert reads.count(CONFIRMATIONS) > reads_before, "the rows it forgot were read from the table"
    assert await outbox.undelivered() == 0


async def test_rows_forgotten_while_a_read_was_on_its_way_are_read_again(forwarding, monkeypatch):
    """The read that would have caught up began before the rows were forgotten: it is not the one."""
    monkeypatch.setattr(outbox_module, "WRITTEN_ROWS_HELD", 5)
    journal, start, reads, held = forwarding
    answer = asyncio.Event()
    held.append(answer)
    outbox = await start()  # its first read, of an empty table, is made and its answer held
    while not reads:
        await asyncio.sleep(0.01)
    burst = [f"PAY-during-{n:02d}" for n in range(12)]
    await asyncio.gather(*(record(journal, payment_id) for payment_id in burst))  # past what is held
    answer.set()
    outbox.wake(CONFIRMATIONS)
    got = await sequences(outbox, burst)
    assert all(got) and len(set(got)) == len(burst), f"none left behind in the table: {got}"
    assert await outbox.undelivered() == 0
