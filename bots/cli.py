"""The `mevsuite` command line: one entry point for the devnet, the database, the demo and (later) every bot.

Errors a user can cause (a bad config value, an unreachable RPC URL, a missing anvil binary, an unreachable
database) end with one clear line on stderr and a non-zero exit code, never a traceback:

    exit 2  configuration error          exit 3  chain tooling missing (anvil)
    exit 4  node / RPC unreachable       exit 5  database unreachable or migration failed
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

T = TypeVar("T")

EXIT_CONFIG = 2
EXIT_TOOLING = 3
EXIT_RPC = 4
EXIT_DB = 5


def _fail(code: int, message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _guard(fn: Callable[[], T]) -> T:
    """Run `fn`, turning the errors a user can cause into one line and an exit code."""
    from bots.config import ConfigError
    from bots.store import DatabaseUnavailableError
    from chains.node import AnvilNotFoundError, NodeStartError
    from chains.rpc import AllEndpointsFailedError, RpcError, RpcTimeoutError

    try:
        return fn()
    except ConfigError as exc:
        _fail(EXIT_CONFIG, str(exc))
    except AnvilNotFoundError as exc:
        _fail(EXIT_TOOLING, str(exc))
    except NodeStartError as exc:
        _fail(EXIT_RPC, str(exc))
    except (AllEndpointsFailedError, RpcTimeoutError, RpcError) as exc:
        _fail(EXIT_RPC, str(exc))
    except DatabaseUnavailableError as exc:
        _fail(EXIT_DB, str(exc))


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TOML config file (default: ./mevsuite.toml if it exists). "
                   "Environment overrides: MEVSUITE__SECTION__KEY=value.")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="mevsuite")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """mevsuite: on-chain DeFi and MEV bots, a devnet with the real Uniswap/Aave contracts, and their tools."""
    _setup_logging(verbose)
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _load_config(ctx: click.Context) -> Any:
    from bots.config import load_config

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

    async def go() -> dict[str, Any]:
        from chains.rpc import RpcClient

        async with RpcClient(urls, timeout=cfg.chain.request_timeout_s, retries=cfg.chain.retries) as rpc:
            chain_id, head = await rpc.batch([("eth_chainId", []), ("eth_getBlockByNumber", ["latest", False])])
            return {
                "chain_id": int(chain_id, 16),
                "block_number": int(head["number"], 16),
                "block_hash": head["hash"],
                "base_fee_per_gas": int(head.get("baseFeePerGas", "0x0"), 16),
                "rpc_urls": urls,
            }

    click.echo(json.dumps(_guard(lambda: asyncio.run(go())), indent=2))


# ---------------------------------------------------------------------------------------------- db
@main.group()
def db() -> None:
    """Database: migrations."""


@db.command("upgrade")
@click.option("--url", default=None, help="SQLAlchemy URL (default: config db.url / MEVSUITE_DB_URL / sqlite).")
@click.pass_context
def db_upgrade(ctx: click.Context, url: str | None) -> None:
    """Apply the Alembic migrations up to the newest revision."""
    from bots.store import upgrade

    cfg = _load_config(ctx)
    target = url or cfg.db.url
    _guard(lambda: upgrade(target))
    from bots.store import mask_url

    click.echo(f"database at {mask_url(target)} is at the newest revision")


# ---------------------------------------------------------------------------------------------- devnet
@main.group()
def devnet() -> None:
    """The local devnet: real Uniswap V2/V3 and Aave V3 bytecode, our block builder, simulated users."""


@devnet.command("up")
@click.option("--seed", type=int, default=None, help="World seed (same seed, same world). Default: config.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("devnet-addresses.json"), show_default=True, help="Where to write the address book.")
@click.option("--block-time", type=float, default=None, help="Seconds between blocks. Default: config.")
@click.option("--traffic/--no-traffic", default=True, show_default=True, help="Run the simulated users.")
@click.option("--blocks", type=int, default=0, help="Stop after this many blocks (0: run until interrupted).")
@click.pass_context
def devnet_up(ctx: click.Context, seed: int | None, out_path: Path, block_time: float | None,
              traffic: bool, blocks: int) -> None:
    """Start anvil, deploy the world, print the address book as JSON and produce blocks until interrupted."""
    from bots.devnet_runner import run_devnet

    cfg = _load_config(ctx)
    _guard(lambda: asyncio.run(run_devnet(
        cfg, seed=seed, out_path=out_path, block_time=block_time, traffic=traffic, max_blocks=blocks,
    )))


# ---------------------------------------------------------------------------------------------- demo
@main.command()
@click.option("--blocks", type=int, default=20, show_default=True, help="Blocks of traffic to run.")
@click.option("--seed", type=int, default=None, help="World seed. Default: config.")
@click.option("--db-url", default=None, help="Database URL (default: config db.url, SQLite mevsuite.db).")
@click.option("--metrics-port", type=int, default=None, help="Port for /metrics (0: a free one). Default: config.")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the summary as JSON here.")
@click.pass_context
def demo(ctx: click.Context, blocks: int, seed: int | None, db_url: str | None, metrics_port: int | None,
         json_out: Path | None) -> None:
    """Devnet + block builder + simulated users + a recording bot; prints a summary and exits."""
    from bots.demo import run_demo

    cfg = _load_config(ctx)
    summary = _guard(lambda: asyncio.run(run_demo(
        cfg, blocks=blocks, seed=seed, db_url=db_url, metrics_port=metrics_port,
    )))
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
