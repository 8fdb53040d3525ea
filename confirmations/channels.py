"""A caller's channel, from its certificate only (never from a request field).

The name <-> bank.common.v1.Channel mapping itself is paymesh.topology.CHANNEL_VALUES,
shared with the router.
"""

from paymesh.topology import CHANNEL_NAMES, CHANNEL_VALUES, Identity

__all__ = ["CHANNEL_NAMES", "CHANNEL_VALUES", "channel_of"]


def channel_of(identity: Identity | None) -> int | None:
    """The Channel value of a channel identity; None for anyone else."""
    if identity is None or identity.kind != "channel":
        return None
    return CHANNEL_VALUES.get(identity.name)
