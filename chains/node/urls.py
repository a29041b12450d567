"""RPC URLs without their secrets: hosted endpoints carry API keys in the user info, the path (``/v3/<key>``) or the
query, and none of it may reach a log, an error, a metric label or a process list.

Light on purpose (standard library only): the CLI, the config errors and the anvil wrapper use it without loading
the RPC client.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

__all__ = ["URL_IN_TEXT", "redact_url", "url_secret_parts"]

# A path segment shown as is: a version tag (v3) or a short lowercase word (eth, rpc, ws, eth-mainnet).  Anything
# else — digits, upper case, long or odd characters — may be a key (Infura /v3/<key>, QuickNode /<token>/).
_PLAIN_SEGMENT = re.compile(r"v\d{1,3}|[a-z]{1,15}(?:-[a-z]{1,15}){0,2}")


def redact_url(url: str) -> str:
    """The URL with credentials and key-like path/query parts masked, safe for logs, errors and metric labels.

    Hosted RPC URLs carry API keys in the user info, the path (``/v3/<key>``) or the query; none of them may end up
    in logs.  Only the scheme, host, port and plain path words survive; an unparseable URL becomes ``<redacted URL>``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<redacted URL>"
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username or parts.password or "@" in parts.netloc:
        netloc = f"***@{netloc}"
    path = "/".join(
        seg if not seg or (len(seg) < 16 and _PLAIN_SEGMENT.fullmatch(seg)) else "***"
        for seg in parts.path.split("/")
    )
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))


URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s()<>'\"`,]+")


def url_secret_parts(url: str) -> list[str]:
    """Pieces of ``url`` that may carry a key (the URL itself, user info, password, key-like path segments, the
    query and its values), longest first: replace each with ``***`` in any text that may quote the URL."""
    shown = redact_url(url)
    if shown == url:
        return []  # nothing in it is secret (http://127.0.0.1:8545)
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = {url, url.rstrip("/")}
    if "@" in parts.netloc:
        pieces.add(parts.netloc.rpartition("@")[0] + "@")  # user:password@
    if parts.query:
        pieces.add(parts.query)
    # Standalone tokens only when long enough to be a key, not a word that also appears elsewhere in the output.
    tokens = {parts.password or "", unquote(parts.password or "")}
    tokens |= {v for _, v in parse_qsl(parts.query)}
    shown_segments = set(shown.split("?")[0].split("/"))
    tokens |= {seg for seg in parts.path.split("/") if seg not in shown_segments}
    pieces |= {t for t in tokens if len(t) >= 6}
    return sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True)
