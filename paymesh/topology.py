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
        ServiceSpec("mainframe-emulator", "mainframe_emulator", 50090),
        ServiceSpec("core-cash", "core_cash", 50061),
        ServiceSpec("core-mortgage", "core_mortgage", 50062),
        ServiceSpec("core-vehicle", "core_vehicle", 50063),
        ServiceSpec("mainframe-bridge", "mainframe_bridge", 50071),
        ServiceSpec("confirmations", "confirmations", 50081),
        ServiceSpec("payment-router", "payment_router", 50051),
    )
}

# The services with a store of their own (SQLite, or a PostgreSQL database each): all but the emulator.
STORE_SERVICES = tuple(name for name in SERVICES if name != "mainframe-emulator")

CHANNEL_IDENTITIES = frozenset(Identity("channel", name) for name in CHANNELS)
# The local mesh's one router, for every channel.
ROUTER = SERVICES["payment-router"].identity
# On Kubernetes the router runs in bulkheads (PAYMESH_ROUTER_BULKHEAD), one per channel group, each
# with an identity of its own that carries only its channels' payments: the cores, the bridge and
# confirmations refuse another group's items from it, so a bulkhead taken over cannot move, post
# or confirm another group's money.
ROUTER_BULKHEADS = {"digital": ("app", "internet-banking"), "atm": ("atm",), "agent-store": ("agent", "store")}
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
# Where the customer hands over cash: the money is in the bank's hands before the payment is applied.
CASH_CHANNELS = frozenset([types_pb2.CHANNEL_AGENT, types_pb2.CHANNEL_ATM, types_pb2.CHANNEL_STORE])


@dataclass(frozen=True)
class LoanProduct:
    """A product of the bank and where it lives: the one table the router routes by, loan ids
    are written by and the general ledger's accounts are numbered by."""

    loan_type: types_pb2.LoanType
    core: str  # the core service holding its loans
    id_prefix: str  # its loan ids: CSH-000123
    ledger_suffix: str  # the last two digits of its general-ledger accounts: 510101 is cash loans' interest


PRODUCTS = (
    LoanProduct(types_pb2.LOAN_TYPE_CASH, "core-cash", "CSH", "01"),
    LoanProduct(types_pb2.LOAN_TYPE_MORTGAGE, "core-mortgage", "MTG", "02"),
    LoanProduct(types_pb2.LOAN_TYPE_VEHICLE, "core-vehicle", "VEH", "03"),
)
PRODUCT_OF_TYPE = {product.loan_type: product for product in PRODUCTS}
CORE_OF = {product.loan_type: product.core for product in PRODUCTS}  # loan type -> core service


def router_identity(bulkhead: str = "") -> Identity:
    """The router's identity: the bulkhead's (service/payment-router-atm), or the local mesh's one router."""
    if not bulkhead:
        return ROUTER
    if bulkhead not in ROUTER_BULKHEADS:
        raise ValueError(f"no router bulkhead {bulkhead!r}; the bulkheads are {', '.join(ROUTER_BULKHEADS)}")
    return Identity("service", f"{ROUTER.name}-{bulkhead}")


def channels_of_router(bulkhead: str = "") -> tuple[str, ...]:
    return ROUTER_BULKHEADS[bulkhead] if bulkhead else CHANNELS


# Every router identity, with the channels (bank.common.v1.Channel values) whose items it may hand over.
ROUTER_CHANNELS = {router_identity(b): frozenset(CHANNEL_VALUES[c] for c in channels_of_router(b))
                   for b in ("", *ROUTER_BULKHEADS)}
ROUTERS = frozenset(ROUTER_CHANNELS)
