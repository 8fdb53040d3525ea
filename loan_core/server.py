"""The LoanCoreService server every core runs. Only the payment router may call a core."""

from bank.loans.v1 import loan_core_service_pb2, loan_core_service_pb2_grpc
from paymesh import server
from paymesh.authz import CallerPolicy
from paymesh.topology import ROUTER

POLICY = CallerPolicy.only([ROUTER])


class LoanCoreService(loan_core_service_pb2_grpc.LoanCoreServiceServicer):
    """The loan engine lands with the cores issue; until then every method answers UNIMPLEMENTED."""


def register(grpc_server):
    loan_core_service_pb2_grpc.add_LoanCoreServiceServicer_to_server(LoanCoreService(), grpc_server)
    return [loan_core_service_pb2.DESCRIPTOR.services_by_name["LoanCoreService"].full_name]


def main(service: str) -> None:
    server.main(service, register, POLICY)
