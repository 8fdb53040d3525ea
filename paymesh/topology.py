"""Who is in the mesh: the services, the channels, and their certificate identities."""

from dataclasses import dataclass

from bank.common.v1 import types_pb2

TRUST_DOMAIN = "paymesh.bank"

# The five channels, by the name in their certificate's SPIFFE id.
CHANNELS = ("app", "internet-banking", "agent", "atm", "store")


@dataclass(frozen=True)
class Identity:
    """A peer as its certificate names it: spiffe://paymesh.bank/<kind>/<name>."""

    kind: str  # "channel", "service" or "ops"
    name: str

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/{self.kind}/{self.name}"

    @classmethod
    def parse(cls, uri: str) -> "Identity | None":
        prefix = f"spiffe://{TRUST_DOMAIN}/"
        if not uri.startswith(prefix):
            return None
        parts = uri[len(prefix):].split("/")
        if len(parts) != 2 or parts[0] not in ("channel", "service", "ops") or not parts[1]:
            return None
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return self.spiffe_id


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # the DNS-style name, also the certificate's service name
    module: str  # `python -m <module>` runs it
    default_port: int

    @property
    def identity(self) -> Identity:
        return Identity("service", self.name)

    @property
    def env_prefix(self) -> str:
        return "PAYMESH_" + self.name.upper().replace("-", "_")


# In start order: what a service calls is started before it.
SERVICES = {
    spec.name: spec
    for spec in (
        ServiceSpec("mainframe-emulator", "mainframe_bridge.emulator", 50090),
        ServiceSpec("core-cash", "core_cash", 50061),
        ServiceSpec("core-mortgage", "core_mortgage", 50062),
        ServiceSpec("core-vehicle", "core_vehicle", 50063),
        ServiceSpec("mainframe-bridge", "mainframe_bridge", 50071),
        ServiceSpec("confirmations", "confirmations", 50081),
        ServiceSpec("payment-router", "payment_router", 50051),
    )
}

CHANNEL_IDENTITIES = frozenset(Identity("channel", name) for name in CHANNELS)
ROUTER = SERVICES["payment-router"].identity
BRIDGE = SERVICES["mainframe-bridge"].identity
# The operators, each with only what its job needs (least privilege):
# the operator's command line: close a day, replay refused rows, reconcile, read loans; reflection.
OPERATOR = Identity("ops", "paymesh-cli")
# health checks only (`paymesh up`, `paymesh health`): no method of any service, no posting.
PROBE = Identity("ops", "paymesh-probe")
# the mainframe emulator's CONTROL records (tests and drills): nothing else.
EMULATOR_CONTROL = Identity("ops", "mainframe-control")
OPERATORS = (OPERATOR, PROBE, EMULATOR_CONTROL)

# A channel's certificate name and its bank.common.v1.Channel value.
CHANNEL_VALUES = {
    "app": types_pb2.CHANNEL_APP,
    "internet-banking": types_pb2.CHANNEL_INTERNET_BANKING,
    "agent": types_pb2.CHANNEL_AGENT,
    "atm": types_pb2.CHANNEL_ATM,
    "store": types_pb2.CHANNEL_STORE,
}
CHANNEL_NAMES = {value: name for name, value in CHANNEL_VALUES.items()}
