"""The router's gRPC server. Channels only: each is known by its client certificate."""

from bank.payments.v1 import payment_service_pb2, payment_service_pb2_grpc
from paymesh import server
from paymesh.authz import CallerPolicy
from paymesh.topology import CHANNEL_IDENTITIES

SERVICE = "payment-router"
POLICY = CallerPolicy.only(CHANNEL_IDENTITIES)


class PaymentService(payment_service_pb2_grpc.PaymentServiceServicer):
    """Payments land with the router issue; until then every method answers UNIMPLEMENTED."""


def register(grpc_server):
    payment_service_pb2_grpc.add_PaymentServiceServicer_to_server(PaymentService(), grpc_server)
    return [payment_service_pb2.DESCRIPTOR.services_by_name["PaymentService"].full_name]


def main() -> None:
    server.main(SERVICE, register, POLICY)
