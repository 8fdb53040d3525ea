"""The bridge's gRPC server. Only the payment router posts to the ledger."""

from bank.ledger.v1 import mainframe_bridge_service_pb2, mainframe_bridge_service_pb2_grpc
from paymesh import server
from paymesh.authz import CallerPolicy
from paymesh.topology import ROUTER

SERVICE = "mainframe-bridge"
POLICY = CallerPolicy.only([ROUTER])


class MainframeBridgeService(mainframe_bridge_service_pb2_grpc.MainframeBridgeServiceServicer):
    """Postings land with the bridge issue; until then every method answers UNIMPLEMENTED."""


def register(grpc_server):
    mainframe_bridge_service_pb2_grpc.add_MainframeBridgeServiceServicer_to_server(
        MainframeBridgeService(), grpc_server
    )
    return [mainframe_bridge_service_pb2.DESCRIPTOR.services_by_name["MainframeBridgeService"].full_name]


def main() -> None:
    server.main(SERVICE, register, POLICY)
