"""The router's process: channels only may call it; it reaches the cores, the
bridge and confirmations over long-lived mTLS streams as the payment router."""

import os
from pathlib import Path

from bank.common.v1 import types_pb2
from bank.confirmations.v1 import confirmation_service_pb2_grpc
from bank.ledger.v1 import mainframe_bridge_service_pb2_grpc
from bank.loans.v1 import loan_core_service_pb2_grpc
from bank.payments.v1 import payment_operations_service_pb2_grpc, payment_service_pb2, payment_service_pb2_grpc
from payment_router.booking import Booking
from payment_router.channel_policy import load_policies
from payment_router.journal import Journal, open_store
from payment_router.orders import PaymentIds
from payment_router.operations import FULL_NAME as OPERATIONS_NAME, PaymentOperationsService
from payment_router.router import CoreLanes, Router, bridge_stream, confirmations_stream
from payment_router.service import PaymentService
from payment_router.tokens import TokenVerifier
from paymesh import pki, server, tls
from paymesh.business_calendar import bank_calendar
from paymesh.authz import CallerPolicy
from paymesh.config import Settings, address_of
from paymesh.topology import CORE_OF, OPERATOR, Identity, channels_of_router, router_identity

SERVICE = "payment-router"
OPERATOR_METHODS = ("SummarizePayments", "ListPayments", "ListRefusedDeliveries", "ReplayRefusedDeliveries",
                    "DropBusinessDay")


def policy(bulkhead: str = "") -> CallerPolicy:
    """The bulkhead's channels (every channel for the local mesh's one router); the operator's reads."""
    return CallerPolicy(
        default=frozenset(Identity("channel", name) for name in channels_of_router(bulkhead)),
        per_method={f"/{OPERATIONS_NAME}/{name}": frozenset([OPERATOR]) for name in OPERATOR_METHODS},
    )



class RouterService:
    """The router's process: the channels' PaymentService and the operator's PaymentOperationsService
    on one Router, its journal and its streams to the cores, the bridge and confirmations."""

    def __init__(self, settings: Settings, ids: PaymentIds):
        self.settings = settings
        self.router, core_stubs = build_router(settings)
        self.payments = PaymentService(self.router, load_policies(), TokenVerifier.from_env(settings), core_stubs,
                                       ids)
        self.operations = PaymentOperationsService(self.router)

    def add_to(self, grpc_server) -> list[str]:
        payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(self.payments, grpc_server)
        payment_operations_service_pb2_grpc.add_PaymentOperationsServiceServicer_to_server(self.operations,
                                                                                         grpc_server)
        return [payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name, OPERATIONS_NAME]

    async def start(self) -> None:
        await self.router.start()  # recovery first: what was journaled and not answered goes out again

    async def stop(self, grace: float) -> None:
        # What is in flight is answered and the outbox delivered: a replica scaled away leaves nothing.
        await self.router.drain(grace)
        await self.router.stop()
        await self.router.journal.close()


def build_router(settings: Settings) -> tuple[Router, dict]:
    identity = router_identity(settings.router_bulkhead)

    def channel(peer: str):
        # No tracing interceptor: these streams live for hours and carry thousands of payments,
        # so each payment's trace context travels beside it in the messages instead.
        return tls.channel_for(address_of(peer), settings.pki_dir, identity)

    core_stubs = {t: loan_core_service_pb2_grpc.LoanCoreServiceStub(channel(name)) for t, name in CORE_OF.items()}
    bridge_stub = mainframe_bridge_service_pb2_grpc.MainframeBridgeServiceStub(channel("mainframe-bridge"))
    confirmations_stub = confirmation_service_pb2_grpc.ConfirmationServiceStub(channel("confirmations"))
    router = Router(
        Journal(open_store(settings.data_dir)),
        cores={t: CoreLanes(CORE_OF[t], stub) for t, stub in core_stubs.items()},
        bridge=bridge_stream(bridge_stub),
        confirmations=confirmations_stream(confirmations_stub, types_pb2.PRIORITY_ONLINE),
        confirmations_batch=confirmations_stream(confirmations_stub, types_pb2.PRIORITY_BATCH),
        booking=Booking(bank_calendar()),
        bridge_stub=bridge_stub,
    )
    return router, core_stubs


def main() -> None:
    settings = Settings.from_env()
    try:
        identity = router_identity(settings.router_bulkhead)
    except ValueError as unknown:  # PAYMESH_ROUTER_BULKHEAD names no bulkhead: say so, no traceback
        raise SystemExit(f"{SERVICE}: {unknown}") from None
    # Every replica keys payment ids with the same secret: refuse to start without it.
    ids = PaymentIds.from_file(Path(os.environ.get("PAYMESH_PAYMENT_ID_SECRET_FILE")
                                    or pki.payment_id_secret_path(settings.pki_dir)))
    server.main(SERVICE, policy(settings.router_bulkhead), lambda settings: RouterService(settings, ids), identity)
