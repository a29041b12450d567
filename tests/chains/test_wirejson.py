"""chains.wirejson: bounded JSON for network entry points -- depth, size, exact json.loads semantics, malformed
input, the bounded read of aiohttp replies, and (in a subprocess, after py_ecc raised the recursion limit) the
80k-bracket payload that used to kill the process with SIGSEGV."""

from __future__ import annotations

import functools
import http.server
import json
import resource
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from chains import wirejson
from chains.devnet.txbatch import JsonRpc
from chains.node.anvil import RpcCallError
from chains.sim.fork import ForkSim, SimError
from chains.wirejson import DEFAULT_MAX_DEPTH, WireJsonError, loads, read_capped
from ml.client import HttpSignalClient, SignalError

ROOT = Path(__file__).resolve().parents[2]
NESTED_LISTS = b"[" * 100_000 + b"]" * 100_000
NESTED_OBJECTS = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
BIG = 1 << 20


def nested(depth: int, kind: str = "list") -> bytes:
    if kind == "list":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


def reason(data: bytes | str, **kw: Any) -> str:
    with pytest.raises(WireJsonError) as info:
        loads(data, max_bytes=kw.pop("max_bytes", BIG), **kw)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)
    return info.value.reason


# ---------------------------------------------------------------------------------------------------- depth
@pytest.mark.parametrize("kind", ["list", "object"])
def test_depth_limit_is_exact(kind: str) -> None:
    assert loads(nested(DEFAULT_MAX_DEPTH, kind), max_bytes=BIG) is not None
    assert reason(nested(DEFAULT_MAX_DEPTH + 1, kind)) == "too_deep"
    assert loads(nested(5, kind), max_bytes=BIG, max_depth=5) is not None
    assert reason(nested(6, kind), max_depth=5) == "too_deep"


@pytest.mark.parametrize("payload", [NESTED_LISTS, NESTED_OBJECTS], ids=["lists", "objects"])
def test_the_hostile_payload_is_refused_as_too_deep(payload: bytes) -> None:
    assert reason(payload) == "too_deep"
    assert reason(payload.decode()) == "too_deep"  # str input too
    assert reason(payload, max_bytes=1000) == "too_large"  # size is checked first


def test_depth_counts_only_structure_outside_strings() -> None:
    inside = json.dumps(["[" * 5000, "{" * 5000, '\\"[[[[', "\\\\"]).encode()
    assert loads(inside, max_bytes=BIG, max_depth=1) == ["[" * 5000, "{" * 5000, '\\"[[[[', "\\\\"]
    # a string ending in an escaped backslash, then real nesting: it counts
    tricky = b'["x\\\\", ' + nested(10) + b"]"
    assert loads(tricky, max_bytes=BIG, max_depth=11)[0] == "x\\"
    assert reason(tricky, max_depth=10) == "too_deep"
    # an escaped quote does not end the string: the brackets after it are inside
    assert loads(b'["\\"' + b"[" * 300 + b'"]', max_bytes=BIG, max_depth=1) == ['"' + "[" * 300]
    # many shallow containers: more openers than the limit, but never deeper
    wide = b"[" + b",".join([b'{"a":[1,{"b":[]}]}'] * 5000) + b"]"
    assert len(loads(wide, max_bytes=BIG, max_depth=5)) == 5000
    assert reason(wide, max_depth=4) == "too_deep"


def _depth(v: Any) -> int:
    if isinstance(v, list):
        return 1 + max((_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((_depth(x) for x in v.values()), default=0)
    return 0


_text = st.text(alphabet=st.sampled_from('[]{}"\\ab:,\u00e9\u20ac'), max_size=8)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**300), max_value=2**300) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300)
@given(value=_json, as_str=st.booleans(), indent=st.sampled_from([None, 1]))
def test_same_result_as_json_loads_and_exact_depth(value: Any, as_str: bool, indent: int | None) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    data: bytes | str = text if as_str else text.encode()
    d = _depth(value)
    assert loads(data, max_bytes=BIG, max_depth=max(d, 1)) == json.loads(text)
    if d > 1:
        assert reason(data, max_depth=d - 1) == "too_deep"


# Soundness input: a valid document with tricky strings (quotes, backslashes, brackets inside), cut anywhere
# and followed by a junk token -- a valid JSON *prefix* is what lets the scanner nest deep before it fails.
_token = st.sampled_from(["", "[", "{", "]", "}", ",", "1", ":", '"', "\\", '\\"', " ", "[[[[[[[[[[[["])
_deep = st.recursive(
    _text | st.integers(),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=2) | st.dictionaries(_text, inner, min_size=1, max_size=2)
    ),
    max_leaves=30,
)


@st.composite
def _cut_documents(draw: st.DrawFn) -> str:
    doc = json.dumps(draw(_deep))
    cut = draw(st.integers(min_value=0, max_value=len(doc)))
    return doc[:cut] + draw(_token) + draw(_token)


def _loads_with_headroom(text: str, headroom: int) -> None:
    """``json.loads(text)`` with only ``headroom`` levels of recursion left (the C scanner takes one per
    nesting level); ValueError is swallowed, RecursionError is not."""
    depth, f = 0, sys._getframe()
    while f is not None:
        depth += 1
        f = f.f_back  # type: ignore[assignment]
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + headroom)
    try:
        json.loads(text)
    except RecursionError:
        raise
    except ValueError:
        pass
    finally:
        sys.setrecursionlimit(old)


@functools.cache
def _headroom(limit: int) -> int:
    """The least headroom in which an error found at nesting ``limit`` is still reported (raising it from C
    takes a few levels too), plus a little slack."""
    for room in range(limit, limit + 64):
        try:
            _loads_with_headroom("[" * limit + "}", room)
            _loads_with_headroom("[" * limit + '"\\x"', room)
            return room + 2
        except RecursionError:
            continue
    raise AssertionError("no headroom found")


def _measured(data: bytes) -> int:
    k = 0
    while wirejson._deeper_than(data, k):
        k += 1
    return k


@settings(max_examples=500)
@given(junk=_cut_documents())
def test_the_parser_never_nests_deeper_than_the_precheck_measures(junk: str) -> None:
    """Soundness on arbitrary (mostly invalid) input: the C scanner never recurses deeper than the pre-check's
    measure -- json.loads runs with just enough recursion headroom for that many levels."""
    _loads_with_headroom(junk, _headroom(_measured(junk.encode())))


def test_the_headroom_of_the_soundness_test_has_teeth() -> None:
    limit = 3
    room = _headroom(limit)
    _loads_with_headroom("[" * limit + "]" * limit, room)
    with pytest.raises(RecursionError):
        _loads_with_headroom("[" * (limit + 8) + "]" * (limit + 8), room)


# ---------------------------------------------------------------------------------------------------- size
def test_size_limit_in_utf8_bytes() -> None:
    assert loads(b'"' + b"a" * 98 + b'"', max_bytes=100) == "a" * 98
    assert reason(b'"' + b"a" * 99 + b'"', max_bytes=100) == "too_large"
    assert reason('"' + "\u20ac" * 40 + '"', max_bytes=100) == "too_large"  # 122 UTF-8 bytes, 42 chars


# ---------------------------------------------------------------------------------------------------- semantics
def test_big_integers_stay_exact() -> None:
    for n in (2**64, 2**64 + 1, 2**256 - 1, -(2**255), 10**77):
        assert loads(str(n), max_bytes=BIG) == n
        assert loads(json.dumps({"wei": n}).encode(), max_bytes=BIG)["wei"] == n
    assert reason("1" * 5000) == "malformed"  # past Python's int-string limit: refused, not slow


def test_json_loads_semantics_callers_rely_on() -> None:
    assert loads(b'{"a":1,"a":2}', max_bytes=BIG) == {"a": 2}  # duplicate keys: the last wins
    assert loads(b'"\\ud800"', max_bytes=BIG) == "\ud800"  # a lone surrogate escape is kept, as json does
    assert loads(b"\xef\xbb\xbf[1]", max_bytes=BIG) == [1]  # a UTF-8 BOM is tolerated
    assert loads(bytearray(b"[1.5, true, null]"), max_bytes=BIG) == [1.5, True, None]
    assert loads(' {"x": "\u20ac"} ', max_bytes=BIG) == {"x": "\u20ac"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"{not json",
        b"[1,]",
        b"[1] x",
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b'"\xff"',
        b'"\xed\xa0"',
        b'"\x00"',
        "[1]".encode("utf-16"),
        "[1]".encode("utf-32-le"),
        b"[" * 10,  # unbalanced, shallow
    ],
)
def test_malformed_input(data: bytes) -> None:
    assert reason(data) == "malformed"


def test_wrong_input_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        loads(memoryview(b"[]"), max_bytes=10)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------- bounded read
async def test_read_capped_refuses_declared_and_streamed_oversize() -> None:
    async def declared(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * 5000 + b"1]")

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b" " * 1000)
        return resp

    app = web.Application()
    app.router.add_get("/declared", declared)
    app.router.add_get("/chunked", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/declared") as resp:
                assert resp.content_length is not None and resp.content_length > 1000
                with pytest.raises(WireJsonError) as info:
                    await read_capped(resp, 1000)
                assert info.value.reason == "too_large" and str(resp.content_length) in str(info.value)
            async with http.get(f"http://127.0.0.1:{port}/chunked") as resp:
                assert resp.content_length is None
                with pytest.raises(WireJsonError) as info:
                    await read_capped(resp, 10_000)
                assert info.value.reason == "too_large"
            async with http.get(f"http://127.0.0.1:{port}/declared") as resp:
                assert await read_capped(resp, 100_000) == b"[" + b"1," * 5000 + b"1]"
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------------------------------- other entry points
class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every GET/POST with the server's ``canned`` (status, body)."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        status, body = self.server.canned  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[tuple[str, Any]]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    server.canned = (200, b"{}")  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


DEEP_REPLY = b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 300 + b"]" * 300 + b"}"


async def test_ml_signal_client_refuses_hostile_responses(canned: tuple[str, Any]) -> None:
    url, server = canned
    async with HttpSignalClient(url, max_response_bytes=10_000) as client:
        for body, why in (
            (DEEP_REPLY, "too_deep"),
            (b'{"x":"' + b"a" * 20_000 + b'"}', "too_large"),
            (b"<html>", "malformed"),
        ):
            server.canned = (200, body)
            with pytest.raises(SignalError) as info:
                await client.signal("BTC/USDT")
            assert info.value.status == 502 and info.value.payload["reason"] == why
        server.canned = (404, b"<html>not here</html>")  # an error page: the upstream status, as before
        with pytest.raises(SignalError) as info:
            await client.signal("BTC/USDT")
        assert info.value.status == 404 and "not here" in info.value.message
        server.canned = (200, b'{"symbol":"BTC/USDT","p_up":0.5}')
        assert await client.signal("BTC/USDT") == {"symbol": "BTC/USDT", "p_up": 0.5}
        assert client.bad_responses == 3


def test_deploy_json_rpc_refuses_hostile_replies(canned: tuple[str, Any]) -> None:
    url, server = canned
    rpc = JsonRpc(url, timeout=10)
    try:
        server.canned = (200, DEEP_REPLY)
        with pytest.raises(RpcCallError) as info:
            rpc.call("eth_chainId")
        assert info.value.error["code"] == -32700 and "deeper than" in info.value.error["message"]
        server.canned = (200, b'{"jsonrpc":"2.0","id":2,"result":"0x7a69"}')
        assert rpc.call("eth_chainId") == "0x7a69"  # the same client goes on
    finally:
        rpc.close()


def test_fork_sim_probe_refuses_hostile_replies(canned: tuple[str, Any]) -> None:
    url, server = canned
    server.canned = (200, b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 50 + b"]" * 50 + b"}")
    with pytest.raises(SimError, match="deeper than 8 levels"):
        ForkSim(url)


# ---------------------------------------------------------------------------------------------------- the crash
_SCRIPT = textwrap.dedent("""
    import json, sys
    import eth_account  # imports py_ecc, which raises the recursion limit to 100000
    assert sys.getrecursionlimit() >= 100_000, sys.getrecursionlimit()
    from chains import wirejson
    payloads = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 100_000 + b"1" + b"}" * 100_000]
    if sys.argv[1] == "plain":
        json.loads(payloads[0])  # the old code path
    out = []
    for p in payloads + [p.decode() for p in payloads]:
        try:
            wirejson.loads(p, max_bytes=1 << 20)
            out.append("parsed")
        except wirejson.WireJsonError as exc:
            out.append(exc.reason)
    print(json.dumps(out))
""")


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_hostile_payload_after_py_ecc_import_is_a_clean_error_in_a_subprocess() -> None:
    proc = _run("wirejson")
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["too_deep"] * 4


def test_control_plain_json_loads_of_the_payload_kills_the_process() -> None:
    """Why the module exists: the same script through plain ``json.loads`` dies with SIGSEGV."""
    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft == resource.RLIM_INFINITY or soft > 64 * 2**20:
        pytest.skip("a very large C stack: the crash needs more nesting than the payload has")
    proc = _run("plain")
    assert proc.returncode == -signal.SIGSEGV, (proc.returncode, proc.stderr[-500:])


def test_load_file_reads_no_more_than_the_cap(tmp_path: Path) -> None:
    from chains.wirejson import load_file

    small = tmp_path / "small.json"
    small.write_text('{"a": [1, 2, 340282366920938463463374607431768211456]}')
    assert load_file(small, max_bytes=100) == {"a": [1, 2, 2**128]}
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * 1_000_000 + b"1]")
    with pytest.raises(WireJsonError) as err:
        load_file(big, max_bytes=1000)
    assert err.value.reason == "too_large" and "1001 bytes" in str(err.value)  # read max_bytes + 1, no more
    with pytest.raises(OSError):
        load_file(tmp_path / "missing.json", max_bytes=10)
