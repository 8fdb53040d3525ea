"""The five channels: certificate name <-> bank.common.v1.Channel.

A caller's channel comes only from its certificate (paymesh.tls.peer_identity);
the router imports CHANNEL_BY_NAME too, to stamp a payment's channel.
"""

from bank.common.v1 import types_pb2
from paymesh.topology import CHANNELS, Identity

CHANNEL_BY_NAME = {
    "app": types_pb2.CHANNEL_APP,
    "internet-banking": types_pb2.CHANNEL_INTERNET_BANKING,
    "agent": types_pb2.CHANNEL_AGENT,
    "atm": types_pb2.CHANNEL_ATM,
    "store": types_pb2.CHANNEL_STORE,
}
NAME_BY_CHANNEL = {value: name for name, value in CHANNEL_BY_NAME.items()}
assert set(CHANNEL_BY_NAME) == set(CHANNELS), "topology.CHANNELS and this mapping must agree"


def channel_of(identity: Identity | None) -> int | None:
    """The Channel value of a channel identity; None for anyone else."""
    if identity is None or identity.kind != "channel":
        return None
    return CHANNEL_BY_NAME.get(identity.name)
