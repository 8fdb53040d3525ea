"""A load user's end-user token, apart from Locust: importing locust patches the whole process
for gevent, which a test of this alone must not do."""

import time
from collections.abc import Callable

TOKEN_REFRESH_SECONDS = 600  # dev tokens live 900 s


class EndUserToken:
    """A customer's token: minted on first use, and again once it is TOKEN_REFRESH_SECONDS old.
    "Never minted" is its own state, not a time: a monotonic clock starts near 0 at boot, so on a
    machine up less than ten minutes an initial time of 0.0 looked fresh and no token was sent."""

    def __init__(self, mint_token: Callable[[], str], clock: Callable[[], float] = time.monotonic):
        self._mint, self._clock = mint_token, clock
        self._token: str | None = None
        self._minted_at = 0.0

    def value(self) -> str:
        now = self._clock()
        if self._token is None or now - self._minted_at > TOKEN_REFRESH_SECONDS:
            self._token, self._minted_at = self._mint(), now
        return self._token
