"""A lazily connected, cached Temporal client, so the API starts while Temporal is down."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client

import temporal_client
from payload_codec import PayloadKeyError
from settings import Settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0


class TemporalUnavailable(Exception):  # noqa: N818  (a condition, mapped to 503)
    """Temporal could not be reached; the client should retry later."""


class TemporalConnector:
    """Connects on first use and caches the client; a failed attempt is retried next time."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._lock: asyncio.Lock | None = None

    @property
    def cached(self) -> Client | None:
        return self._client

    def use(self, client: Client) -> None:
        """Install an already connected client (tests, embedding)."""
        self._client = client

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        # The lock is created lazily: it must belong to the running event loop.
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        temporal_client.connect(self._settings), CONNECT_TIMEOUT_S
                    )
                except PayloadKeyError:
                    raise  # a configuration error, not an outage: no "try again later"
                except Exception as exc:  # connection refused, DNS, TLS, timeout...
                    log.warning("Temporal at %s unreachable: %s",
                                self._settings.temporal_address, exc)
                    raise TemporalUnavailable(
                        f"Temporal at {self._settings.temporal_address} is unreachable"
                    ) from exc
            return self._client
