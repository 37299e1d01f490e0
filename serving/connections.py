"""A deadline for request headers: a slow (slowloris) client is answered 408 and dropped.

uvicorn times out idle keep-alive connections, but nothing else: a client that
opens a connection and sends nothing, or trickles its headers a byte at a time,
holds the connection (and a file descriptor) forever, and enough of them starve
the server. The ASGI app never sees such a request (it starts once the headers
are complete), so the deadline has to live in the HTTP protocol: this subclass
of uvicorn's own protocol class (httptools when installed, else h11; passed as
uvicorn's public ``http`` option) arms a timer when a connection opens and when
a new request starts arriving, and answers 408 and closes the connection if the
request's headers are still incomplete when it fires. The body's deadline is
the ASGI guard's (:class:`serving.rest.RequestGuard`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from mlops.core.settings import HEADER_TIMEOUT_SECONDS_VAR
from serving import metrics


def header_deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """Uvicorn's HTTP protocol with a ``timeout``-second deadline on every request's headers."""
    body = orjson.dumps(
        {
            "error": f"request headers not received within {timeout:g} s ({HEADER_TIMEOUT_SECONDS_VAR})"
        }
    )
    response = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )

    class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        """Closes a connection whose request headers do not arrive within the deadline."""

        def connection_made(self, transport: Any) -> None:
            self._deadline: asyncio.TimerHandle | None = None
            self._deadline_for: Any = None
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            # Between requests (no cycle yet, or the last one answered) a new request starts
            # arriving: its headers get their own deadline.
            cycle = self.cycle
            if (cycle is None or cycle.response_complete) and self._deadline_for is not cycle:
                self._arm()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline_for = self.cycle
            self._deadline = self.loop.call_later(timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if self.cycle is not self._deadline_for or self.transport.is_closing():
                return  # the headers arrived: that request has its own cycle
            metrics.REQUEST_TIMEOUTS.labels("headers").inc()
            self.transport.write(response)
            self.transport.close()

    return HeaderDeadlineProtocol
