"""The confirmations server: the router publishes, each channel subscribes to its own."""

from bank.confirmations.v1 import confirmation_service_pb2, confirmation_service_pb2_grpc
from paymesh import server
from paymesh.authz import CallerPolicy
from paymesh.topology import CHANNEL_IDENTITIES, ROUTER

SERVICE = "confirmations"
_FULL_NAME = confirmation_service_pb2.DESCRIPTOR.services_by_name["ConfirmationService"].full_name
POLICY = CallerPolicy(
    default=CHANNEL_IDENTITIES,
    per_method={f"/{_FULL_NAME}/PublishConfirmations": frozenset([ROUTER])},
)


class ConfirmationService(confirmation_service_pb2_grpc.ConfirmationServiceServicer):
    """The log and its streams land with the confirmations issue; until then UNIMPLEMENTED."""


def register(grpc_server):
    confirmation_service_pb2_grpc.add_ConfirmationServiceServicer_to_server(ConfirmationService(), grpc_server)
    return [_FULL_NAME]


def main() -> None:
    server.main(SERVICE, register, POLICY)
