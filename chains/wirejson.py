"""Bounded JSON parsing for every network entry point: a size cap, a nesting-depth cap, one error type.

Why: importing ``py_ecc`` (through web3 / eth-account) runs ``sys.setrecursionlimit(100000)``, after which
``json.loads`` of ~80,000 nested brackets overflows the C stack and the whole process dies with SIGSEGV -- no
exception, no ``finally``.  Any JSON that arrives over a socket therefore goes through :func:`loads`::

    from chains import wirejson
    try:
        msg = wirejson.loads(body, max_bytes=1 << 20)          # max_depth=DEFAULT_MAX_DEPTH (128)
    except wirejson.WireJsonError as exc:                      # a ValueError
        count(exc.reason)                                      # "too_large" | "too_deep" | "malformed"

Design (stdlib only; the result is exactly what ``json.loads`` returns -- big integers exact, duplicate keys
"last wins", lone ``\\uD800`` escapes kept):

1. **Size.** ``len`` of the UTF-8 bytes against ``max_bytes`` (callers also cap the *read*:
   :func:`read_capped` for aiohttp replies, ``client_max_size`` on servers, ``max_size`` on websockets).
2. **Depth, before any recursion.** A C-speed skeleton pass: escaped backslashes and escaped quotes are removed
   (``bytes.replace``), every byte but ``[]{}"`` is deleted (``bytes.translate``), the parts inside strings are
   dropped (``split(b'"')[::2]``).  If the skeleton has at most ``max_depth`` opening brackets nothing can be
   deeper; otherwise a run of ``max_depth + 1`` openers is searched (the usual attack), and last the exact
   running depth is taken with ``itertools.accumulate`` (C iterators, no Python loop).  For any input --
   valid or not -- the skeleton agrees with ``json``'s own scanner on every string boundary up to the point
   where the scanner stops, so the scanner never nests deeper than the measured depth.  Only UTF-8 is
   accepted (RFC 8259 §8.1): in UTF-16/32 the skeleton would not see escaped quotes.
3. **Parse** with the stdlib decoder (``RecursionError`` is reported as ``too_deep`` should a caller run
   near the recursion limit).  ``NaN`` / ``Infinity`` / ``-Infinity`` are refused (not JSON; ``json.loads``
   would accept them); integers longer than Python's 4300-digit limit are ``malformed``; ``1e400`` is
   ``inf``, as with ``json.loads``.

orjson (installed, fast) was not chosen: it silently turns integers above 2**64 into floats (wei amounts!),
and its depth limit (1024) is fixed.

Cost (2-core dev box, loaded): the pre-check is ~1 ns per input byte (one ``translate`` pass; the rest works on
the few quotes and brackets left), i.e. ~0.1 ms for a full 300 kB bundle request, ~11 ms for an 11.5 MB
``eth_getLogs`` reply (json.loads itself: ~63 ms), ~1 µs for a small reply; the 200 kB ``[[[[…`` payload is
refused in ~0.3 ms.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # stdlib only at run time: any module may use this one
    import aiohttp

__all__ = ["DEFAULT_MAX_DEPTH", "WireJsonError", "load_file", "loads", "read_capped"]

DEFAULT_MAX_DEPTH = 128

Reason = Literal["too_large", "too_deep", "malformed"]

_DELETE = bytes(b for b in range(256) if b not in b'[]{}"')  # keep quotes and brackets only
_NORMALIZE = bytes.maketrans(b"{}", b"[]")
_STEP = bytes.maketrans(b"[]", b"\x02\x00")  # an opener adds 2, a closer 0: depth_i = prefix_sum_i - i


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


class WireJsonError(ValueError):
    """Refused JSON.  ``reason``: ``"too_large"``, ``"too_deep"`` or ``"malformed"``; the message is one line."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


def _deeper_than(data: bytes, limit: int) -> bool:
    """Whether arrays/objects (outside strings) nest deeper than ``limit`` anywhere in ``data`` (UTF-8)."""
    if b"\\" in data:  # escapes: "\\" first, so that the backslash of \\" does not hide a real closing quote
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skel = data.translate(None, _DELETE)
    if b'"' in skel:
        # Two adjacent quotes (a string without brackets, or the end of one and the start of the next) change
        # no other byte's inside/outside parity: drop them first (most strings), then split what is left.
        skel = skel.replace(b'""', b"")
        if b'"' in skel:
            skel = b"".join(skel.split(b'"')[::2])
    skel = skel.translate(_NORMALIZE)
    if skel.count(b"[") <= limit:
        return False
    if b"[" * (limit + 1) in skel:
        return True
    deepest: int = max(map(operator.sub, itertools.accumulate(skel.translate(_STEP)), itertools.count(1)))
    return deepest > limit


def loads(data: bytes | bytearray | str, *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``json.loads(data)`` if ``data`` is at most ``max_bytes`` (UTF-8) long and nests at most ``max_depth``
    arrays/objects deep; else :class:`WireJsonError`.  Bytes must be UTF-8 (a BOM is tolerated)."""
    if isinstance(data, str):
        if len(data) > max_bytes:  # at least as many bytes as characters: no need to encode it
            raise WireJsonError(
                "too_large", f"JSON of {len(data)} characters exceeds the limit of {max_bytes} bytes"
            )
        raw = data.encode("utf-8", "surrogatepass")
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        raise TypeError(f"JSON must be str, bytes or bytearray, not {type(data).__name__}")
    if len(raw) > max_bytes:
        raise WireJsonError("too_large", f"JSON of {len(raw)} bytes exceeds the limit of {max_bytes} bytes")
    if _deeper_than(raw, max_depth):
        raise WireJsonError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        if isinstance(data, str):
            text = data
        else:
            encoding = json.detect_encoding(raw)
            if encoding not in ("utf-8", "utf-8-sig"):
                raise ValueError(f"JSON must be UTF-8 (this looks like {encoding})")
            text = raw.decode(encoding, "surrogatepass")
        return _DECODER.decode(text)
    except RecursionError:
        raise WireJsonError(
            "too_deep", "JSON nested too deep for the interpreter's recursion limit"
        ) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN, over-long integers
        raise WireJsonError("malformed", f"not valid JSON: {_one_line(str(exc))}") from None


def load_file(path: str | os.PathLike[str], *, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """:func:`loads` of the file at ``path``, reading no more than ``max_bytes + 1`` bytes of it (a larger file is
    ``too_large`` without being read whole).  ``OSError`` if it cannot be read."""
    with open(path, "rb") as fh:
        raw = fh.read(max_bytes + 1)
    return loads(raw, max_bytes=max_bytes, max_depth=max_depth)


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The body of ``resp``, refused (:class:`WireJsonError` ``too_large``) as soon as it passes ``max_bytes``:
    a declared ``Content-Length`` above the cap is refused before reading, a chunked body while reading."""
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise WireJsonError("too_large", f"reply of {declared} bytes exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > max_bytes:
            raise WireJsonError("too_large", f"reply exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
