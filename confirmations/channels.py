"""A caller's channel, from its certificate only (never from a request field).

The name <-> bank.common.v1.Channel mapping itself is paymesh.topology.CHANNEL_VALUES,
shared with the router.
"""

from typing import cast

from bank.common.v1 import types_pb2
from paymesh.topology import CHANNEL_NAMES, CHANNEL_VALUES, Identity

__all__ = ["CHANNEL_NAMES", "CHANNEL_VALUES", "channel_name", "channel_of", "quota_subject"]


def channel_name(channel: int) -> str:
    """The channel's name (atm, app...), as metrics label it."""
    return CHANNEL_NAMES[cast(types_pb2.Channel, channel)]


def quota_subject(channel: int) -> str:
    """Who a QuotaFailure names: the channel as its certificate does (channel atm), not its number."""
    return f"channel {CHANNEL_NAMES[cast(types_pb2.Channel, channel)]}"


def channel_of(identity: Identity | None) -> int | None:
    """The Channel value of a channel identity; None for anyone else."""
    if identity is None or identity.kind != "channel":
        return None
    return CHANNEL_VALUES.get(identity.name)
