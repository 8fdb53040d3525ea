"""Who is in the mesh: the services, the channels, and their certificate identities."""

import re
from dataclasses import dataclass, field

from bank.common.v1 import types_pb2

TRUST_DOMAIN = "paymesh.bank"

# The five channels, by the name in their certificate's SPIFFE id.
CHANNELS = ("app", "internet-banking", "agent", "atm", "store")
# Channels whose devices may each have a certificate of their own (channel/atm/ATM-0042).
DEVICE_CHANNELS = ("atm", "agent")
DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")


@dataclass(frozen=True)
class Identity:
    """A peer as its certificate names it: spiffe://paymesh.bank/<kind>/<name>, or for one device
    of a channel that has them, spiffe://paymesh.bank/channel/<name>/<device>. A device has its
    channel's rights (equality and policies ignore the device); its own certificate lets one lost
    ATM be revoked without touching the others, and names the device on its payments."""

    kind: str  # "channel", "service" or "ops"
    name: str
    device: str = field(default="", compare=False)

    @property
    def spiffe_id(self) -> str:
        device = f"/{self.device}" if self.device else ""
        return f"spiffe://{TRUST_DOMAIN}/{self.kind}/{self.name}{device}"

    @classmethod
    def parse(cls, uri: str) -> "Identity | None":
        prefix = f"spiffe://{TRUST_DOMAIN}/"
        if not uri.startswith(prefix):
            return None
        parts = uri[len(prefix):].split("/")
        if len(parts) == 3 and parts[0] == "channel" and parts[1] in DEVICE_CHANNELS and DEVICE_ID.fullmatch(parts[2]):
            return cls(parts[0], parts[1], parts[2])
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
