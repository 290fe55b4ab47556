"""A per-client-IP limit on the password endpoints (login, token, session, password change).

`limits` (the library behind Flask-Limiter and SlowAPI) does the counting: a moving window,
so a burst at a window's edge cannot double the rate, and a storage named by URI, so one
process keeps it in memory (the default) and several share it through e.g. redis:// without
code changes. We use it directly rather than through SlowAPI, whose decorators do not fit
FastAPI dependencies and which answers its own error format, not problem+json.

The client IP is the socket peer. Behind a reverse proxy, run uvicorn with --proxy-headers
and --forwarded-allow-ips set to the proxy, so that the peer is the real client.
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from api.problems import Problem

_NAMESPACE = "baton-login"


class LoginRateLimiter:
    def __init__(self, limit: str, storage_uri: str = "memory://") -> None:
        try:
            self.item: RateLimitItem = parse(limit)
        except ValueError as exc:
            raise ValueError(f"BATON_LOGIN_RATE_LIMIT={limit!r} is not a rate such as "
                             "'10/minute' or '100/hour'") from exc
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, client: str) -> int | None:
        """Count one attempt; None if allowed, else the seconds until the next is."""
        if self.limiter.hit(self.item, _NAMESPACE, client):
            return None
        reset_at, _remaining = self.limiter.get_window_stats(self.item, _NAMESPACE, client)
        return max(1, math.ceil(reset_at - time.time()))


def client_ip(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def limit_login_attempts(request: Request) -> None:
    """Dependency of the password endpoints; 429 with Retry-After over the limit."""
    limiter: LoginRateLimiter = request.app.state.login_limiter
    ip = client_ip(request)
    retry_after = limiter.hit(ip)
    if retry_after is not None:
        raise Problem(429, "rate-limited", "Too many login attempts",
                      f"Too many login attempts from your address ({ip}): the limit is "
                      f"{limiter.item}. Wait "
                      f"{retry_after} seconds (Retry-After) and try again.",
                      headers={"Retry-After": str(retry_after)})
