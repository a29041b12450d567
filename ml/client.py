"""Clients of the signal service with one interface: ``await client.signal(symbol)``, ``await client.health()``.

:class:`SignalClient` calls a :class:`ml.serve.SignalService` in-process (no HTTP, no JSON); :class:`HttpSignalClient`
talks to ``ml serve`` over HTTP. Both return the same dicts for the same service state and both raise
:class:`ml.serve.SignalError` (``status`` + ``payload``, the JSON error body) for an error answer.

:class:`HttpSignalClient` reads a response up to ``max_response_bytes`` and parses it with
:func:`chains.wirejson.loads` (nesting depth ``max_json_depth``); a response over either limit, or a 200 that is
not JSON, raises :class:`SignalError` with status 502 and is counted in ``bad_responses``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import aiohttp
from aiohttp import web

from chains.wirejson import DEFAULT_MAX_DEPTH, WireJsonError, read_capped
from chains.wirejson import loads as wire_loads
from ml.serve import SERVICE_KEY, SignalError, SignalService

__all__ = ["MAX_RESPONSE_BYTES", "HttpSignalClient", "SignalClient", "SignalError"]

MAX_RESPONSE_BYTES = 1 * 2**20  # a signal or health answer is well under 1 kB


class SignalClient:
    """In-process client of a :class:`~ml.serve.SignalService` (or of the service inside a :func:`make_app` app)."""

    def __init__(self, service: SignalService | web.Application) -> None:
        self.service = service[SERVICE_KEY] if isinstance(service, web.Application) else service

    async def signal(self, symbol: str) -> dict[str, Any]:
        """Same dict as ``GET /signal?symbol=…``; :class:`SignalError` for an error answer."""
        return await self.service.signal(symbol)

    async def health(self) -> dict[str, Any]:
        """Same dict as ``GET /health``."""
        return self.service.health()

    async def close(self) -> None:
        """Nothing to release (the service belongs to its owner)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class HttpSignalClient:
    """HTTP client of ``ml serve`` at ``base_url`` (e.g. ``http://127.0.0.1:8081``).

    Uses ``session`` when given (not closed by :meth:`close`), else its own session created on first use.
    """

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        max_json_depth: int = DEFAULT_MAX_DEPTH,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._own = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self.max_response_bytes = max_response_bytes
        self.max_json_depth = max_json_depth
        self.bad_responses = 0  # responses refused (too large / too deep / a 200 that is not JSON)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own = True
        return self._session

    async def _get(self, path: str, params: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self._http().get(f"{self.base_url}{path}", params=params) as resp:
            try:
                raw = await read_capped(resp, self.max_response_bytes)
                body = wire_loads(raw, max_bytes=self.max_response_bytes, max_depth=self.max_json_depth)
            except WireJsonError as exc:
                if exc.reason == "malformed" and resp.status != 200:  # e.g. a proxy's HTML error page
                    text = raw.decode(errors="replace").strip()
                    body = {"error": text[:200] or resp.reason or "bad response", "status": resp.status}
                else:
                    self.bad_responses += 1
                    raise SignalError(
                        502,
                        f"response from {self.base_url}{path} refused: {exc}",
                        reason=exc.reason,
                        upstream_status=resp.status,
                    ) from None
            if not isinstance(body, dict):
                body = {"error": f"unexpected response {body!r:.200}", "status": resp.status}
            return resp.status, body

    async def signal(self, symbol: str) -> dict[str, Any]:
        """``GET /signal?symbol=…``; :class:`SignalError` for a non-200 answer."""
        status, body = await self._get("/signal", {"symbol": symbol} if symbol else None)
        if status != 200:
            extra = {k: v for k, v in body.items() if k not in ("error", "status")}
            raise SignalError(status, str(body.get("error", f"HTTP {status}")), **extra)
        return body

    async def health(self) -> dict[str, Any]:
        """``GET /health`` body (also when the service answers 503 because no model is loaded yet)."""
        _, body = await self._get("/health")
        return body

    async def close(self) -> None:
        """Close the session this client created."""
        if self._own and self._session is not None and not self._session.closed:
            await self._session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
