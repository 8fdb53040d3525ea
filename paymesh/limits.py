"""What a caller may hold open at once: streams, uploads, subscriptions, each against a limit per
caller. Rate limits bound calls per second; these bound what stays open (OWASP API4): a call over
its limit is refused before it holds any memory, with a QuotaFailure naming the limit, a log line
and a metric."""

import logging
from collections import Counter
from collections.abc import Callable

from bank.common.v1 import errors_pb2
from paymesh import telemetry
from paymesh.errors import Refused

log = logging.getLogger(__name__)


class OpenCalls:
    """How many calls of each kind each caller holds open now (one event loop: no lock needed)."""

    def __init__(self) -> None:
        self._open: Counter[tuple[str, str]] = Counter()

    def count(self, kind: str, caller: str) -> int:
        return self._open[(kind, caller)]

    def take(self, kind: str, caller: str, limit: int, logged_as: str | None = None) -> Callable[[], None]:
        """One more open call of kind for caller; raises Refused over limit. Returns its release.
        logged_as: who the log line names, when caller holds what a log must not (a customer's id)."""
        key = (kind, caller)
        if self._open[key] >= limit:
            log.warning("over a limit of open calls",
                        extra={"kind": kind, "caller": logged_as or caller, "limit": limit})
            telemetry.count_quota_refusal(kind)
            raise Refused(errors_pb2.ERROR_REASON_QUOTA_EXCEEDED,
                          f"{caller} already holds {limit} open {kind} calls, the most it may; close one first",
                          quota=(caller, f"at most {limit} open {kind} calls at once"))
        self._open[key] += 1

        def release() -> None:
            self._open[key] -= 1
            if not self._open[key]:
                del self._open[key]

        return release
