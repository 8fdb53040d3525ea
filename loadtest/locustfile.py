"""The bank's five channels as Locust users against the payment router (mTLS, JWT for
the digital channels), in the business day's mix: the app, internet banking and ATMs
pay online; agents and stores mostly upload day files, with some online payments.
Some presses are repeated (the same idempotency key: the same payment back) and some
requests are bad on purpose (reported as "<method> [bad request]", a success when
refused with the expected status).

    locust -f loadtest/locustfile.py --host 127.0.0.1:50051   # or: python -m loadtest (starts a mesh)

PAYMESH_PKI_DIR holds the channels' certificates (and the dev token issuer's key);
PAYMESH_PORTFOLIO_SIZE says how many loans each core holds (the loan numbers customers bring);
every payment is preceded by the debt inquiry, as a channel asks before it takes the money;
the day files' date is today in the bank's calendar (PAYMESH_CLOCK_START moves it).
"""

from gevent import monkey  # noqa: I001 - before grpc: Locust's users are gevent greenlets

monkey.patch_all()
import grpc.experimental.gevent as grpc_gevent  # noqa: E402

grpc_gevent.init_gevent()

import os  # noqa: E402
import random  # noqa: E402

import grpc  # noqa: E402
from locust import between, events, task  # noqa: E402

from bank.payments.v1 import payment_service_pb2 as api  # noqa: E402
from loadtest.grpc_user import ChannelUser  # noqa: E402
from loadtest.orders import LOAN_IDS, bad_order, batch_file, good_order  # noqa: E402

# A customer pressing "pay" twice, a terminal resending after a timeout; orders that are bad on purpose.
RETRY_SHARE = float(os.environ.get("PAYMESH_LOAD_RETRY_SHARE") or 0.05)
BAD_SHARE = float(os.environ.get("PAYMESH_LOAD_BAD_SHARE") or 0.03)
# Think times are people's and terminals'; a scale below 1 makes a short run busier.
THINK_SCALE = float(os.environ.get("PAYMESH_LOAD_THINK_SCALE") or 1.0)


def think(low: float, high: float):
    return between(low * THINK_SCALE, high * THINK_SCALE)
REFUSALS = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION)
BATCH_LINES = {"agent": 0, "store": 0}  # lines applied by day files, printed at the end


class OnlineChannel(ChannelUser):
    """Pays online, now and then presses twice, looks a payment up, and sends a bad order."""

    abstract = True

    def on_start(self) -> None:
        super().on_start()
        self.paid: list[str] = []

    @task(20)
    def pay(self) -> None:
        debt = self.owed()
        order = good_order(self.channel, debt) if debt is not None else None
        if order is None:
            return  # nothing owed (or more than this channel takes): the customer goes away
        if random.random() < BAD_SHARE:
            return self.bad_request(order)
        request = api.SubmitPaymentRequest(payment=order)
        answer = self.call("SubmitPayment", self.stub.SubmitPayment, request)
        if answer is None:
            return
        self.paid = (self.paid + [answer.payment.payment_id])[-20:]
        if random.random() < RETRY_SHARE:
            again = self.call("SubmitPayment (same key again)", self.stub.SubmitPayment, request)
            if again is not None and again.payment.payment_id != answer.payment.payment_id:
                raise AssertionError("a retry with the same key named another payment")

    @task(4)
    def look_up(self) -> None:
        if self.paid:
            self.call("GetPayment", self.stub.GetPayment, api.GetPaymentRequest(payment_id=random.choice(self.paid)))

    def bad_request(self, order) -> None:
        self.call("SubmitPayment", self.stub.SubmitPayment, api.SubmitPaymentRequest(payment=bad_order(order)),
                  refused_with=REFUSALS)


class AppUser(OnlineChannel):
    """A customer in the mobile app: a few taps between payments."""

    channel, weight = "app", 25
    wait_time = think(1, 4)


class InternetBankingUser(OnlineChannel):
    channel, weight = "internet-banking", 15
    wait_time = think(1, 4)


class AtmUser(OnlineChannel):
    """One ATM: a customer every few seconds, cash limits."""

    channel, weight = "atm", 20
    wait_time = think(1, 3)


class FileChannel(ChannelUser):
    """An agent network or a store chain: uploads day files, sometimes the same file again, and
    takes some payments online at the counter."""

    abstract = True
    wait_time = think(3, 8)

    def on_start(self) -> None:
        super().on_start()
        self.uploaded: list[api.UploadBatchRequest] = []
        self.upload()  # a branch coming online first sends the file it holds

    def taken_at_the_counter(self, customers: int) -> list:
        """The orders of a day at the counter: each customer's loan asked about first, then paid."""
        debts = [self.owed() for _ in range(customers)]
        orders = [good_order(self.channel, debt) for debt in debts if debt is not None]
        return [order for order in orders if order is not None]

    @task(6)
    def upload(self) -> None:
        orders = self.taken_at_the_counter(random.randint(50, 300))
        if not orders:
            return
        requests = batch_file(self.channel, orders)
        answer = self.call("UploadBatch", self.stub.UploadBatch, iter(requests), timeout=120)
        if answer is not None:
            BATCH_LINES[self.channel] += answer.summary.applied_count
            self.uploaded = requests

    @task(1)
    def upload_again(self) -> None:
        if self.uploaded:  # a file sent again (the branch's connection dropped): nothing applied twice
            answer = self.call("UploadBatch (same file again)", self.stub.UploadBatch, iter(self.uploaded), timeout=120)
            if answer is not None and answer.summary.replayed_count != answer.summary.line_count:
                raise AssertionError("a file uploaded again applied some lines twice")

    @task(3)
    def pay_at_the_counter(self) -> None:
        debt = self.owed()
        order = good_order(self.channel, debt) if debt is not None else None
        if order is None:
            return
        if random.random() < BAD_SHARE:
            self.call("SubmitPayment", self.stub.SubmitPayment,
                      api.SubmitPaymentRequest(payment=bad_order(order)), refused_with=REFUSALS)
        else:
            self.call("SubmitPayment", self.stub.SubmitPayment, api.SubmitPaymentRequest(payment=order))


class AgentUser(FileChannel):
    channel, weight = "agent", 3


class StoreUser(FileChannel):
    channel, weight = "store", 2


@events.test_start.add_listener
def _announce(environment, **_) -> None:
    print(f"customers bring {len(LOAN_IDS)} loan numbers to {environment.host}; each is asked about first",
          flush=True)


@events.quitting.add_listener
def _batch_lines(environment, **_) -> None:
    print("batch lines applied: " + ", ".join(f"{c} {n}" for c, n in BATCH_LINES.items()), flush=True)
