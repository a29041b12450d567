"""The `mevsuite` command line: one entry point for the devnet, the database, the demo and (later) every bot.

Errors a user can cause (a bad config value, an unreachable RPC URL, a missing anvil binary, an unreachable
database) end with one clear line on stderr and a non-zero exit code, never a traceback.  RPC URLs given to a
command may hold API keys: they are printed only redacted, and their secret parts are masked in every error line,
log record and traceback of the process (a node's error may quote the URL it failed on):

    exit 1  the run failed (demo/devnet step, output file)   exit 2  configuration error (incl. metrics port)
    exit 3  chain tooling missing (anvil)                     exit 4  node / RPC unreachable
    exit 5  database unreachable or migration failed          exit 6  NATS bus unreachable
    exit 130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TypeVar

import click

T = TypeVar("T")

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_TOOLING = 3
EXIT_RPC = 4
EXIT_DB = 5
EXIT_BUS = 6
EXIT_INTERRUPTED = 130


class _Interrupted(Exception):
    """SIGINT/SIGTERM stopped a run (after its cleanup ran)."""


async def _interruptible(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro``; SIGINT/SIGTERM cancel it — so its ``finally`` blocks stop anvil, the database and the
    metrics server — and raise :class:`_Interrupted`.  Handlers are installed with the event loop, so this
    works even when the process inherited SIGINT as ignored (e.g. started in the background by a shell)."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    received: list[int] = []

    def on_signal(sig: int) -> None:
        if not received:  # the first signal cancels; later ones must not interrupt the cleanup
            received.append(sig)
            task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await task
    except asyncio.CancelledError:
        if received:
            raise _Interrupted(f"interrupted by {signal.Signals(received[0]).name}") from None
        raise
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


# Secret parts of the URLs this command was given (chains.node.urls.url_secret_parts), masked in all we print.
_SECRET_PARTS: list[str] = []


def _hide_url_secrets(*urls: str) -> None:
    """Mask the secret parts of ``urls`` (user info, keys in the path or query) in every later line we print."""
    from chains.node.urls import url_secret_parts

    for url in urls:
        _SECRET_PARTS.extend(p for p in url_secret_parts(url) if p not in _SECRET_PARTS)
    _SECRET_PARTS.sort(key=len, reverse=True)


def _mask(text: str) -> str:
    for part in _SECRET_PARTS:
        text = text.replace(part, "***")
    return text


class _MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _mask(super().format(record))


def _masked_excepthook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(_mask("".join(traceback.format_exception(tp, value, tb))))


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {_mask(message)}", err=True)
    sys.exit(code)


# The errors a user can cause, most specific first: (module, class name, exit code).  They are looked up
# only in modules already imported — an exception cannot be an instance of a class that was never loaded —
# so a config error does not pay for importing the RPC client, the database layer or the demo.
_USER_ERRORS: tuple[tuple[str, str, int], ...] = (
    ("bots.app.config", "ConfigError", EXIT_CONFIG),
    ("bots.metrics", "MetricsServerError", EXIT_CONFIG),
    ("chains.node.anvil", "AnvilNotFoundError", EXIT_TOOLING),
    ("chains.node.anvil", "NodeStartError", EXIT_RPC),
    ("chains.node.rpc", "RpcClientError", EXIT_RPC),
    ("bots.store.engine", "DatabaseUnavailableError", EXIT_DB),
    ("bots.bus.client", "BusUnreachableError", EXIT_BUS),
    ("bots.app.demo", "DemoError", EXIT_FAILED),
    ("bots.app.devnet", "DevnetError", EXIT_FAILED),
)


def _exit_code_of(exc: BaseException) -> int | None:
    for module, name, code in _USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return code
    return None


def _guard(fn: Callable[[], T]) -> T:
    """Run `fn`, turning the errors a user can cause into one line and an exit code."""
    try:
        return fn()
    except KeyboardInterrupt:
        _fail(EXIT_INTERRUPTED, "interrupted")
    except _Interrupted as exc:
        _fail(EXIT_INTERRUPTED, str(exc))
    except Exception as exc:
        code = _exit_code_of(exc)
        if code is None:
            raise
        _fail(code, str(exc))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    fmt = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(level=level, format=fmt)
    ours = [h for h in root.handlers if h not in before]
    for handler in ours:  # (not a host's handlers, e.g. when invoked in-process by a test runner)
        handler.setFormatter(_MaskingFormatter(fmt))
    if ours:
        sys.excepthook = _masked_excepthook


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML config file (default: ./mevsuite.toml if it exists). "
    "Environment overrides: MEVSUITE__SECTION__KEY=value.",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="mevsuite")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """mevsuite: on-chain DeFi and MEV bots, a devnet with the real Uniswap/Aave contracts, and their tools."""
    _setup_logging(verbose)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _require_anvil() -> None:
    """Exit 3 now if anvil is missing (before anything is started or created)."""
    from chains.node.anvil import find_anvil

    _guard(find_anvil)


def _load_config(ctx: click.Context) -> Any:
    from bots.app.config import load_config

    return _guard(lambda: load_config(ctx.obj.get("config_path")))


# ---------------------------------------------------------------------------------------------- chain
@main.group()
def chain() -> None:
    """Inspect a chain through its RPC endpoint(s)."""


@chain.command("status")
@click.option("--rpc-url", "rpc_urls", multiple=True, help="RPC URL (repeat for failover). Default: config.")
@click.pass_context
def chain_status(ctx: click.Context, rpc_urls: tuple[str, ...]) -> None:
    """Print chain id, head block and base fee as JSON."""
    cfg = _load_config(ctx)
    urls = list(rpc_urls) or list(cfg.chain.rpc_urls)
    _hide_url_secrets(*urls)

    async def go() -> dict[str, Any]:
        from chains.node.rpc import RpcClient
        from chains.node.urls import redact_url

        async with RpcClient(urls, timeout=cfg.chain.request_timeout_s, retries=cfg.chain.retries) as rpc:
            chain_id, head = await rpc.batch(
                [("eth_chainId", []), ("eth_getBlockByNumber", ["latest", False])]
            )
            return {
                "chain_id": int(chain_id, 16),
                "block_number": int(head["number"], 16),
                "block_hash": head["hash"],
                "base_fee_per_gas": int(head.get("baseFeePerGas", "0x0"), 16),
                "rpc_urls": [redact_url(u) for u in urls],  # API keys in URLs are never printed
            }

    click.echo(json.dumps(_guard(lambda: asyncio.run(go())), indent=2))


# ---------------------------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database: migrations."""


@db.command("upgrade")
@click.option(
    "--url", default=None, help="SQLAlchemy URL (default: config db.url / MEVSUITE_DB_URL / sqlite)."
)
@click.pass_context
def db_upgrade(ctx: click.Context, url: str | None) -> None:
    """Apply the Alembic migrations up to the newest revision."""
    cfg = _load_config(ctx)
    target = url or cfg.db.url
    from bots.store import mask_url, upgrade

    _guard(lambda: upgrade(target))

    click.echo(f"database at {mask_url(target)} is at the newest revision")


# ---------------------------------------------------------------------------------------------- devnet
@main.group()
def devnet() -> None:
    """The local devnet: real Uniswap V2/V3 and Aave V3 bytecode, our block builder, simulated users."""


@devnet.command("up")
@click.option("--seed", type=int, default=None, help="World seed (same seed, same world). Default: config.")
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("devnet-addresses.json"),
    show_default=True,
    help="Where to write the address book.",
)
@click.option(
    "--block-time",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds between blocks. Default: config.",
)
@click.option("--traffic/--no-traffic", default=True, show_default=True, help="Run the simulated users.")
@click.option(
    "--blocks",
    type=click.IntRange(min=0),
    default=0,
    help="Stop after this many blocks (0: run until interrupted).",
)
@click.pass_context
def devnet_up(
    ctx: click.Context, seed: int | None, out_path: Path, block_time: float | None, traffic: bool, blocks: int
) -> None:
    """Start anvil, deploy the world, print the address book as JSON and produce blocks until interrupted."""
    cfg = _load_config(ctx)
    _require_anvil()
    from bots.app.devnet import run_devnet

    _guard(
        lambda: asyncio.run(
            run_devnet(
                cfg,
                seed=seed,
                out_path=out_path,
                block_time=block_time,
                traffic=traffic,
                max_blocks=blocks,
            )
        )
    )


# ---------------------------------------------------------------------------------------------- demo
@main.command()
@click.option(
    "--blocks", type=click.IntRange(min=1), default=20, show_default=True, help="Blocks of traffic to run."
)
@click.option("--seed", type=int, default=None, help="World seed. Default: config.")
@click.option("--db-url", default=None, help="Database URL (default: config db.url, SQLite mevsuite.db).")
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port for /metrics (0: a free one). Default: config.",
)
@click.option(
    "--json-summary",
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the summary as JSON here.",
)
@click.pass_context
def demo(
    ctx: click.Context,
    blocks: int,
    seed: int | None,
    db_url: str | None,
    metrics_port: int | None,
    json_out: Path | None,
) -> None:
    """Devnet + block builder + simulated users + a recording bot; prints a summary and exits."""
    cfg = _load_config(ctx)
    _require_anvil()
    if json_out is not None:  # fail before the run, not after it, if the summary cannot be written there
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(EXIT_FAILED, f"cannot write the summary to {json_out}: {exc.strerror or exc}")
    from bots.app.demo import run_demo

    summary = _guard(
        lambda: asyncio.run(
            _interruptible(
                run_demo(
                    cfg,
                    blocks=blocks,
                    seed=seed,
                    db_url=db_url,
                    metrics_port=metrics_port,
                )
            )
        )
    )
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            _fail(EXIT_FAILED, f"cannot write the summary to {json_out}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------- bots
@main.group()
def run() -> None:
    """Run a bot.  A bot sends only with bot.dry_run = false in the config AND --live."""


def _factory_option(value: str, what: str) -> tuple[str, str, int]:
    name, _, rest = value.partition("=")
    addr, _, fee = rest.partition(":")
    if not name or not addr:
        raise click.BadParameter(f"{what} must look like NAME=0xFACTORY[:FEE_BPS], not {value!r}")
    try:
        return name, addr, int(fee) if fee else 30
    except ValueError:
        raise click.BadParameter(f"fee in {value!r} is not an integer (bps)") from None


@run.command("dex-arb")
@click.option(
    "--fork-url",
    required=True,
    envvar="MEVSUITE_FORK_URL",
    show_envvar=True,
    help="RPC to fork (its own anvil is started on a free port); shown only redacted. "
    "Give it in the environment to keep an API key out of the process list.",
)
@click.option(
    "--fork-block", type=click.IntRange(min=0), default=None, help="Block to fork at (default: head)."
)
@click.option(
    "--book",
    "book_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A devnet address book (JSON): pools, tokens and WETH.",
)
@click.option(
    "--pools",
    "pools_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Pool file: a JSON list of pool-state documents (docs/pool-state-format.md) or "
    "{address, kind, token0, token1, fee} objects.",
)
@click.option("--weth", default=None, help="WETH address (needed with --pools or discovery).")
@click.option(
    "--v2-factory",
    "v2_factories",
    multiple=True,
    metavar="NAME=0xADDR[:FEE_BPS]",
    help="Discover V2 pairs from this factory's PairCreated logs (repeatable).",
)
@click.option(
    "--v3-factory",
    "v3_factories",
    multiple=True,
    metavar="0xADDR",
    help="Discover V3 pools from this factory's PoolCreated logs (repeatable).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Discovery checkpoint file (resumed if it exists).",
)
@click.option(
    "--live",
    is_flag=True,
    help="Send bundles; needs bot.dry_run = false too (default: dry-run, simulate and record only).",
)
@click.option(
    "--backrun", is_flag=True, help="Also backrun pending router swaps (needs --book for the routers)."
)
@click.option("--blocks", type=click.IntRange(min=1), default=10, show_default=True, help="Blocks to run.")
@click.option(
    "--block-time",
    type=click.FloatRange(min=0.05),
    default=1.0,
    show_default=True,
    help="Seconds between the fork's blocks.",
)
@click.option(
    "--fund-weth",
    type=click.FloatRange(min=0),
    default=100.0,
    show_default=True,
    help="WETH to give the executor on the fork (own-balance funding).",
)
@click.option("--db-url", default=None, help="Record to this database (default: no recording).")
@click.option(
    "--json-summary",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the run's summary as JSON here.",
)
@click.pass_context
def run_dex_arb(
    ctx: click.Context,
    fork_url: str,
    fork_block: int | None,
    book_path: Path | None,
    pools_path: Path | None,
    weth: str | None,
    v2_factories: tuple[str, ...],
    v3_factories: tuple[str, ...],
    checkpoint: Path | None,
    live: bool,
    backrun: bool,
    blocks: int,
    block_time: float,
    fund_weth: float,
    db_url: str | None,
    json_out: Path | None,
) -> None:
    """The DEX arbitrage bot on its own anvil fork of FORK_URL, with a local builder and relay.

    It sends only with bot.dry_run = false AND --live (docs/keys-and-modes.md)."""
    cfg = _load_config(ctx)
    from bots.app.keys import resolve_mode

    mode = _guard(lambda: resolve_mode(cfg, live))  # exit 2 if --live contradicts bot.dry_run = true
    from bots.app.dex_arb_fork import ForkOptions, ForkRunError, read_sources, run_fork
    from bots.app.keys import reputation_signer, signer_from_config

    owner = _guard(
        lambda: signer_from_config(cfg.signer, "fork")
    )  # a broken key stops us before anything starts
    opts = ForkOptions(
        fork_url=fork_url,
        fork_block=fork_block,
        book=book_path,
        pools=pools_path,
        weth=weth,
        v2_factories=[_factory_option(v, "--v2-factory") for v in v2_factories],
        v3_factories=list(v3_factories),
        checkpoint=checkpoint,
        live=mode.live,
        blocks=blocks,
        block_time=block_time,
        fund_wei=int(fund_weth * 10**18),
        db_url=db_url,
        backrun=backrun,
    )
    try:
        source = read_sources(
            opts
        )  # so does a bad input file: nothing is printed, created or started before this
    except ForkRunError as exc:
        _fail(EXIT_FAILED, str(exc))
    reputation = _guard(lambda: reputation_signer(cfg.signer))
    click.echo(mode.line, err=True)
    _hide_url_secrets(
        fork_url
    )  # (nothing above prints it; this imports chains.node.rpc, which takes a second)
    _require_anvil()
    try:
        summary = _guard(
            lambda: asyncio.run(
                _interruptible(
                    run_fork(
                        opts,
                        source=source,
                        cfg=cfg,
                        owner=owner,
                        reputation=reputation,
                        progress=lambda m: click.echo(_mask(m), err=True),
                    )
                )
            )
        )
    except ForkRunError as exc:
        _fail(EXIT_FAILED, str(exc))
    text = _mask(json.dumps(summary, indent=2))
    click.echo(text)
    if json_out is not None:
        try:
            json_out.write_text(text + "\n")
        except OSError as exc:
            _fail(EXIT_FAILED, f"cannot write the summary to {json_out}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------- hub
# Options every bus process takes (the hub, bot processes).
_BUS_OPTION = click.option(
    "--bus",
    "bus_url",
    default=None,
    help="NATS URL (default: config bus.url); shown only redacted. "
    "Give one with credentials in the environment (MEVSUITE__BUS__URL), out of the process list.",
)
_METRICS_PORT_OPTION = click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port for /metrics (0: a free one). Default: config metrics.port.",
)
_HEALTH_PORT_OPTION = click.option(
    "--health-port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="Port for /health (0: a free one).",
)


@main.command()
@click.option(
    "--rpc-url",
    "rpc_urls",
    multiple=True,
    help="RPC URL of the chain (repeat for failover). Default: the book's rpc_url with --book, else config.",
)
@click.option(
    "--book",
    "book_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An address book (JSON): follow its pools and its Aave market.",
)
@click.option(
    "--pools",
    "pools_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Pool file: a JSON list of pool-state documents or {address, kind, token0, token1, fee} objects.",
)
@_BUS_OPTION
@click.option(
    "--blocks",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stop after publishing this many blocks (0: run until SIGINT/SIGTERM).",
)
@_METRICS_PORT_OPTION
@_HEALTH_PORT_OPTION
@click.option(
    "--json-summary",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the summary as JSON here.",
)
@click.pass_context
def hub(
    ctx: click.Context,
    rpc_urls: tuple[str, ...],
    book_path: Path | None,
    pools_path: Path | None,
    bus_url: str | None,
    blocks: int,
    metrics_port: int | None,
    health_port: int,
    json_out: Path | None,
) -> None:
    """The hub: follow one chain and publish its blocks, reorgs and state snapshots on the bus (docs/bus.md).

    Serves /health and /metrics (URLs on stderr), writes a heartbeat, continues the bus's sequence after a
    restart; prints a summary as JSON when it stops."""
    cfg = _load_config(ctx)
    if (book_path is None) == (pools_path is None):
        _fail(EXIT_CONFIG, "give exactly one of --book and --pools")
    url = bus_url or cfg.bus.url
    if url is None:
        _fail(
            EXIT_CONFIG,
            "no bus URL: pass --bus nats://HOST:PORT or set bus.url (MEVSUITE__BUS__URL); "
            "the embedded server is started by `mevsuite up`",
        )
    _hide_url_secrets(url, *rpc_urls)
    if json_out is not None:  # fail before the run, not after it, if the summary cannot be written there
        try:
            json_out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _fail(EXIT_FAILED, f"cannot write the summary to {json_out}: {exc.strerror or exc}")
    from bots.app.hub import HubError, read_pool_source, run_hub
    from chains.addressbook import AddressBook

    try:
        pools = read_pool_source(book_path, pools_path)  # a bad file: one line, before anything starts
    except HubError as exc:
        _fail(EXIT_FAILED, str(exc))
    urls = list(rpc_urls) or ([pools.rpc_url] if isinstance(pools, AddressBook) else list(cfg.chain.rpc_urls))
    _hide_url_secrets(*urls)
    try:
        summary = _guard(
            lambda: asyncio.run(
                run_hub(
                    cfg,
                    bus_url=url,
                    rpc_urls=urls,
                    pools=pools,
                    max_blocks=blocks,
                    metrics_port=metrics_port,
                    health_port=health_port,
                    progress=lambda m: click.echo(_mask(f"[hub] {m}"), err=True),
                )
            )
        )
    except HubError as exc:
        _fail(EXIT_FAILED, str(exc))
    text = _mask(json.dumps(summary, indent=2))
    click.echo(text)
    if json_out is not None:
        try:
            json_out.write_text(text + "\n")
        except OSError as exc:
            _fail(EXIT_FAILED, f"cannot write the summary to {json_out}: {exc.strerror or exc}")


@run.command("recorder")
@_BUS_OPTION
@click.option(
    "--rpc-url",
    "rpc_urls",
    multiple=True,
    help="RPC URL of the chain (repeat for failover): its chain id and the arbitrage scan's eth_calls only. "
    "Default: the book's rpc_url with --book, else config.",
)
@click.option(
    "--book",
    "book_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An address book (JSON): also record trades and cross-venue arbitrage on its pools.",
)
@click.option("--db-url", default=None, help="Database URL (default: config db.url, SQLite mevsuite.db).")
@click.option(
    "--blocks",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Stop after recording this many blocks after the hub's snapshot (0: until SIGINT/SIGTERM).",
)
@click.option(
    "--durable",
    default=None,
    help="The bus consumer's name (default recorder-<chain id>): a restart resumes after its last block.",
)
@_METRICS_PORT_OPTION
@_HEALTH_PORT_OPTION
@click.pass_context
def run_recorder_cmd(
    ctx: click.Context,
    bus_url: str | None,
    rpc_urls: tuple[str, ...],
    book_path: Path | None,
    db_url: str | None,
    blocks: int,
    durable: str | None,
    metrics_port: int | None,
    health_port: int,
) -> None:
    """The recorder as a bot process: blocks from the hub on the bus, rows to the database (docs/bus.md).

    Serves /health and /metrics (URLs on stderr), writes a heartbeat; prints a summary as JSON when it stops."""
    cfg = _load_config(ctx)
    url = bus_url or cfg.bus.url
    if url is None:
        _fail(
            EXIT_CONFIG,
            "no bus URL: pass --bus nats://HOST:PORT or set bus.url (MEVSUITE__BUS__URL); "
            "the embedded server is started by `mevsuite up`",
        )
    if durable is not None and not durable.replace("-", "").replace("_", "").isalnum():
        _fail(EXIT_CONFIG, f"--durable {durable!r}: use letters, digits, '-' and '_' only")
    _hide_url_secrets(url, *rpc_urls)
    from bots.app.recorder_process import RECORDER_MODE_LINE, RecorderProcessError, run_recorder
    from chains.addressbook import AddressBook, AddressBookError

    book = None
    if book_path is not None:
        try:
            book = AddressBook.read(book_path)
        except AddressBookError as exc:
            _fail(EXIT_FAILED, str(exc))
    urls = list(rpc_urls) or ([book.rpc_url] if book is not None else list(cfg.chain.rpc_urls))
    _hide_url_secrets(*urls)
    click.echo(RECORDER_MODE_LINE, err=True)
    try:
        summary = _guard(
            lambda: asyncio.run(
                run_recorder(
                    cfg,
                    bus_url=url,
                    rpc_urls=urls,
                    book=book,
                    db_url=db_url,
                    durable=durable,
                    max_blocks=blocks,
                    metrics_port=metrics_port,
                    health_port=health_port,
                    progress=lambda m: click.echo(_mask(f"[recorder] {m}"), err=True),
                )
            )
        )
    except RecorderProcessError as exc:
        _fail(EXIT_FAILED, str(exc))
    click.echo(_mask(json.dumps(summary, indent=2)))


# ---------------------------------------------------------------------------------------------- status
STATUS_SCHEMA = 1  # the version of `mevsuite status --json` (docs/bus.md, "Status")


@main.command()
@click.option(
    "--bus", "bus_url", default=None, help="NATS URL (default: config bus.url); shown only redacted."
)
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"schema": 1, "processes": [...]} instead of a table.'
)
@click.pass_context
def status(ctx: click.Context, bus_url: str | None, as_json: bool) -> None:
    """The live processes on the bus, from their heartbeats: state, health, last block, URLs (docs/bus.md)."""
    cfg = _load_config(ctx)
    url = bus_url or cfg.bus.url
    if url is None:
        _fail(EXIT_CONFIG, "no bus URL: pass --bus nats://HOST:PORT or set bus.url (MEVSUITE__BUS__URL)")
    _hide_url_secrets(url)

    async def go() -> dict[str, Any]:
        import time

        from bots.bus.client import BusClient

        client = await BusClient.connect(url, name="status", connect_timeout=cfg.bus.connect_timeout_s)
        try:
            beats = await client.heartbeats()
        finally:
            await client.close(timeout=1.0)
        now = time.time()
        processes = []
        for name in sorted(beats):
            doc = dict(beats[name])
            doc.setdefault("process", name)
            at = doc.get("time")
            doc["age_s"] = round(now - at, 3) if isinstance(at, int | float) else None
            processes.append(doc)
        return {"schema": STATUS_SCHEMA, "processes": processes}

    doc = _guard(lambda: asyncio.run(go()))
    if as_json:
        click.echo(_mask(json.dumps(doc, indent=2)))
        return
    from rich.console import Console
    from rich.table import Table

    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    table = Table("process", "kind", "state", "ok", "chain", "last block", "pid", "metrics", "health", "age")
    for p in doc["processes"]:
        age = p.get("age_s")
        table.add_row(
            *(
                _mask(cell(p.get(k)))
                for k in ("process", "kind", "state", "ok", "chain_id", "last_block", "pid")
            ),
            _mask(cell(p.get("metrics_url"))),
            _mask(cell(p.get("health_url"))),
            "-" if age is None else f"{age:.1f} s",
        )
    if not doc["processes"]:
        click.echo("no live processes (no heartbeat in the last 15 s)", err=True)
        return
    Console(width=200).print(table)


# ---------------------------------------------------------------------------------------------- pools
@main.group()
def pool() -> None:
    """Pool state files: snapshot a pool's complete state for offline, exact quotes."""


@pool.command("snapshot")
@click.argument("address")
@click.option("--rpc", "rpc_url", required=True, help="RPC URL of the chain the pool is on.")
@click.option("--block", type=click.IntRange(0), default=None, help="Block number (default: latest).")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write here instead of stdout.")
@click.option(
    "--v2-fee-bps",
    type=click.IntRange(0, 10_000),
    default=30,
    show_default=True,
    help="Swap fee of a V2-style pair (forks differ).",
)
def pool_snapshot(address: str, rpc_url: str, block: int | None, out: str | None, v2_fee_bps: int) -> None:
    """Write a V2 or V3 pool's complete state (exact integers as strings) as JSON (docs/pool-state-format.md)."""
    from chains.state.snapshot import snapshot_main

    sys.exit(snapshot_main(address, rpc_url, block, out, v2_fee_bps=v2_fee_bps))


@main.command()
@click.option(
    "--state",
    "state_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="A pool state file from `mevsuite pool snapshot`.",
)
@click.option("--amount-in", default=None, help="Exact input amount (raw integer units).")
@click.option("--amount-out", default=None, help="Exact output amount (raw integer units).")
@click.option("--token-in", required=True, help="Input token: its address, or 0/1 for token0/token1.")
@click.option("--sqrt-price-limit", default=None, help="V3 only: sqrtPriceX96 limit.")
def quote(
    state_path: str,
    amount_in: str | None,
    amount_out: str | None,
    token_in: str,
    sqrt_price_limit: str | None,
) -> None:
    """Exact swap quote from a pool state file, offline: JSON result, or a JSON error and exit 1 on a revert."""
    from chains.state.snapshot import quote_main

    if (amount_in is None) == (amount_out is None):
        _fail(EXIT_CONFIG, "give exactly one of --amount-in and --amount-out")
    sys.exit(quote_main(state_path, amount_in, amount_out, token_in, sqrt_price_limit))


# ---------------------------------------------------------------------------------------------- data + ml
@main.group()
def data() -> None:
    """Market data: download OHLCV from an exchange (ccxt)."""


@data.command("download")
@click.option("--exchange", required=True, help="ccxt exchange id, e.g. binance.")
@click.option("--symbol", required=True, help="e.g. BTC/USDT.")
@click.option("--timeframe", default="1h", show_default=True)
@click.option(
    "--since", default=None, help="Start (date or ms); default: resume the file, else the beginning."
)
@click.option("--until", default=None, help="End (exclusive).")
@click.option("--out", default=None, help="CSV to write (resumed if it exists).")
@click.option("--api-url", default=None, help="Base URL override (a mirror or a local test server).")
def data_download(
    exchange: str,
    symbol: str,
    timeframe: str,
    since: str | None,
    until: str | None,
    out: str | None,
    api_url: str | None,
) -> None:
    """Download candles with pagination, rate limits and resume."""
    from ml.download import download_main

    sys.exit(download_main(exchange, symbol, timeframe, since, until, out, api_url=api_url))


@main.group()
def ml() -> None:
    """ML signals: train (walk-forward), evaluate (honest, after costs), serve."""


@ml.command("train")
@click.option(
    "--data",
    "data_paths",
    multiple=True,
    required=True,
    help="OHLCV CSV; the first is the target asset, others feed cross-asset features.",
)
@click.option("--out", required=True, help="Model registry directory.")
@click.option("--ml-config", "ml_config", default=None, help="TOML with training hyper-parameters.")
@click.option(
    "--models", multiple=True, help="Model kinds (comma list): xgboost,lightgbm,stack,lstm,transformer."
)
@click.option(
    "--until", default=None, help="Train only on bars before this date (keep later data for evaluation)."
)
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.pass_context
def ml_train(
    ctx: click.Context,
    data_paths: tuple[str, ...],
    out: str,
    ml_config: str | None,
    models: tuple[str, ...],
    until: str | None,
    no_progress: bool,
) -> None:
    """Walk-forward training of the configured models; a new registry version; a run record in the database."""
    from bots.store.ml_sink import StoreRunSink
    from ml.train import train_main

    cfg = _load_config(ctx)
    sink = StoreRunSink(cfg.db.sqlalchemy_url())
    sys.exit(
        train_main(
            list(data_paths), out, ml_config, list(models) or None, until, progress=not no_progress, sink=sink
        )
    )


@ml.command("evaluate")
@click.option("--data", "data_path", required=True, help="OHLCV CSV not overlapping the training range.")
@click.option("--model", "model_dir", required=True, help="Model registry directory (its latest version).")
@click.option("--json", "json_out", default=None, help="Write the full result as JSON (- for stdout).")
@click.option("--report", "report_dir", default=None, help="Write the PNG/HTML report here.")
@click.option("--fee-bps", type=float, default=10.0, show_default=True, help="Fee per side.")
@click.option("--slippage-bps", type=float, default=5.0, show_default=True, help="Slippage per side.")
@click.option(
    "--seeds", type=click.IntRange(1000), default=1000, show_default=True, help="Coin-flip baseline seeds."
)
@click.option(
    "--other", "others", multiple=True, help="Other assets' CSVs (if the model used cross-asset features)."
)
def ml_evaluate(
    data_path: str,
    model_dir: str,
    json_out: str | None,
    report_dir: str | None,
    fee_bps: float,
    slippage_bps: float,
    seeds: int,
    others: tuple[str, ...],
) -> None:
    """Out-of-sample evaluation against buy-and-hold, momentum and coin flips, after costs."""
    from ml.evaluate import evaluate_main

    sys.exit(
        evaluate_main(
            data_path,
            model_dir,
            json_out,
            report_dir,
            fee_bps=fee_bps,
            slippage_bps=slippage_bps,
            seeds=seeds,
            others=list(others),
        )
    )


@ml.command("serve")
@click.option(
    "--model", "model_dir", required=True, help="Model registry directory (hot-reloads its latest)."
)
@click.option("--data", "data_paths", multiple=True, required=True, help="Candle CSV(s) per symbol.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: a free port.")
@click.option("--reload-interval", type=float, default=30.0, show_default=True)
def ml_serve(
    model_dir: str, data_paths: tuple[str, ...], host: str, port: int, reload_interval: float
) -> None:
    """HTTP signal service: GET /signal?symbol=BTC/USDT, /health, /metrics."""
    from ml.serve import serve_main

    sys.exit(serve_main(model_dir, list(data_paths), host, port, reload_interval))


# ---------------------------------------------------------------------------------------------- kill-switch
def _kill_switch(ctx: click.Context) -> Any:
    """The configured kill switch (exit 2 if ``risk.kill_switch_file`` is not set)."""
    from bots.app.risk import kill_switch_from_config

    cfg = _load_config(ctx)
    if cfg.risk.kill_switch_file is None:
        _fail(
            EXIT_CONFIG,
            "no kill-switch file configured: set risk.kill_switch_file in the config file "
            "(or MEVSUITE__RISK__KILL_SWITCH_FILE); see docs/risk.md",
        )
    return kill_switch_from_config(cfg)


def _kill_switch_run(ctx: click.Context, change: Callable[[Any], None]) -> None:
    switch = _kill_switch(ctx)
    try:
        change(switch)
    except OSError as exc:
        _fail(EXIT_FAILED, f"kill switch {switch.path}: {exc.strerror or exc}")
    click.echo(json.dumps(switch.status()))


@main.group("kill-switch")
def kill_switch() -> None:
    """Stop (on) or resume (off) all sending of every bot sharing the configured risk.kill_switch_file."""


@kill_switch.command("on")
@click.option("--reason", default="manual", show_default=True, help="Why (one line, kept in the file).")
@click.pass_context
def kill_switch_on(ctx: click.Context, reason: str) -> None:
    """Engage: every bot stops sending and pauses its strategies within 0.25 s. Prints the status (JSON)."""
    _kill_switch_run(ctx, lambda switch: switch.engage(reason))


@kill_switch.command("off")
@click.pass_context
def kill_switch_off(ctx: click.Context) -> None:
    """Release: the bots resume (their risk limits still apply). Prints the status (JSON)."""
    _kill_switch_run(ctx, lambda switch: switch.release())


@kill_switch.command("status")
@click.pass_context
def kill_switch_status(ctx: click.Context) -> None:
    """Print the kill switch's state as JSON: engaged, reason, since, source, file, error."""
    _kill_switch_run(ctx, lambda switch: None)


if __name__ == "__main__":
    main()
