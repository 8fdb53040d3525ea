"""A Locust user that is one channel of the bank: an mTLS gRPC channel with that
channel's certificate, an end-user JWT where the channel needs one, and every call
timed and reported to Locust's statistics (request_type "grpc", name = method).

Locust runs users as gevent greenlets, so the calls use grpc's synchronous API
with grpc's gevent integration (switched on in locustfile.py before any channel).
"""

import random
import time
from collections.abc import Callable, Iterable

import grpc
from locust import User

from bank.payments.v1 import payment_service_pb2 as api, payment_service_pb2_grpc as api_grpc
from paymesh_tools.dev_tokens import mint
from paymesh import pki, tls
from paymesh.config import Settings, address_of
from paymesh.errors import error_info
from loadtest.orders import some_customer, some_loan_id
from loadtest.tokens import EndUserToken
from paymesh.topology import Identity

DIGITAL_CHANNELS = ("app", "internet-banking")
BAD_REQUEST = " [bad request]"  # the name suffix of calls that are meant to be refused


class GrpcFailure(Exception):
    """A call that ended with a status it should not have: the code and ErrorInfo reason,
    so Locust's failure table groups alike failures together."""

    def __init__(self, error: grpc.RpcError | None, wanted: str = ""):
        if error is None:
            super().__init__(f"accepted, but expected a refusal {wanted}".strip())
        else:
            info = error_info(error)
            super().__init__(f"{error.code().name} {info.reason if info else ''}".strip())


class ChannelUser(User):
    """Subclasses set channel (the certificate's channel name); Locust's --host is the router."""

    abstract = True
    channel: str = ""

    def on_start(self) -> None:
        self.pki_dir = Settings.from_env().pki_dir
        material = pki.load(self.pki_dir, Identity("channel", self.channel))
        self.grpc_channel = grpc.secure_channel(self.host or address_of("payment-router"),
                                                tls.channel_credentials(material), options=tls.CHANNEL_OPTIONS)
        self.stub = api_grpc.PaymentServiceStub(self.grpc_channel)
        self.customer_id = some_customer()  # who logs in, on a digital channel
        self.token = EndUserToken(lambda: mint(self.pki_dir, self.customer_id, self.channel))

    def on_stop(self) -> None:
        self.grpc_channel.close()

    def metadata(self) -> tuple | None:
        if self.channel not in DIGITAL_CHANNELS:
            return None
        return (("authorization", "Bearer " + self.token.value()),)

    def owed(self) -> api.LoanDebt | None:
        """A loan the customer pays and what it owes, asked first as the channel does: a digital
        customer's own loans (their app lists them), else the loan number the customer brings."""
        if self.channel in DIGITAL_CHANNELS:
            listed = self.call("ListCustomerLoans", self.stub.ListCustomerLoans, api.ListCustomerLoansRequest())
            owing = [debt for debt in listed.loans if debt.amount_due.amount_minor > 0] if listed else []
            return random.choice(owing) if owing else None
        answer = self.call("GetLoanDebt", self.stub.GetLoanDebt, api.GetLoanDebtRequest(loan_id=some_loan_id()))
        return answer.debt if answer is not None else None

    def call(self, name: str, method: Callable, request, refused_with: Iterable[grpc.StatusCode] = (),
             timeout: float = 30.0):
        """Calls method, reports it to Locust, returns the answer (None when it failed or was refused).

        A request meant to be refused (refused_with set) is reported as "<name> [bad request]": a
        success when refused with one of those codes, a failure when accepted or refused otherwise."""
        refused_with = frozenset(refused_with)
        reported = name + BAD_REQUEST if refused_with else name
        started = time.perf_counter()
        answer, failure = None, None
        try:
            answer = method(request, metadata=self.metadata(), timeout=timeout)
            if refused_with:
                failure = GrpcFailure(None, "/".join(sorted(c.name for c in refused_with)))
        except grpc.RpcError as error:
            if error.code() not in refused_with:
                failure = GrpcFailure(error)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.environment.events.request.fire(
            request_type="grpc", name=reported, response_time=elapsed_ms,
            response_length=answer.ByteSize() if answer is not None else 0,
            exception=failure, context={"channel": self.channel},
        )
        return answer if failure is None and not refused_with else None
