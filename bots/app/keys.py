"""Keys and modes of the bots: which key signs, which key speaks to the relay, and whether anything is sent.

* :func:`signer_from_config` — the searcher key from ``[signer]``: ``MEVSUITE__SIGNER__PRIVATE_KEY``, or the
  keystore ``signer.keystore`` + ``MEVSUITE__SIGNER__KEYSTORE_PASSWORD``.  A key that is configured but cannot be
  used (unreadable keystore, wrong password, half a configuration) is a :class:`~bots.app.config.ConfigError` (exit
  2), never a fallback.  Anvil's public dev key 0 is used **only** on a devnet or a fork and **only** when no key
  is configured at all, and the caller says so.  The old ``MEV_PRIVATE_KEY`` / ``MEV_KEYSTORE_PATH`` /
  ``MEV_KEYSTORE_PASSWORD`` variables are not read: if one is set, that is an error naming its replacement (so a
  key nobody reads cannot be mistaken for the one in use).
* :func:`reputation_signer` — the Flashbots reputation key (it signs ``X-Flashbots-Signature``; builders rank
  searchers by it): ``MEVSUITE__SIGNER__REPUTATION_KEY``, else a random key generated once per install and kept in
  ``signer.reputation_key_file`` (default ``$XDG_DATA_HOME/mevsuite/flashbots-reputation.key``, else
  ``~/.local/share/mevsuite/…``), mode 0600.
* :func:`resolve_mode` — live only when ``bot.dry_run = false`` AND ``--live``; ``--live`` while ``bot.dry_run``
  is true is an error, not a silent dry run.

See docs/keys-and-modes.md.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bots.app.config import Config, ConfigError, SignerConfig
from chains.send.signer import KeyLoadError, Signer

__all__ = [
    "ANVIL_DEV_KEY_0",
    "FORK_CHAIN_ID",
    "LEGACY_KEY_VARIABLES",
    "KeyChoice",
    "Mode",
    "default_reputation_key_file",
    "fork_chain_id",
    "reputation_signer",
    "resolve_mode",
    "signer_from_config",
]

ChainKind = Literal["devnet", "fork", "chain"]

# anvil's dev account 0 (the well-known "test test ... junk" mnemonic): public, only for devnets and forks.
ANVIL_DEV_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"

# The chain id of every fork we run (31338; 31339 if the upstream itself is 31338), so nothing signed for a fork
# is valid on its upstream chain.
FORK_CHAIN_ID = 31338

LEGACY_KEY_VARIABLES = {
    "MEV_PRIVATE_KEY": "MEVSUITE__SIGNER__PRIVATE_KEY",
    "MEV_KEYSTORE_PATH": "MEVSUITE__SIGNER__KEYSTORE (or signer.keystore in the config file)",
    "MEV_KEYSTORE_PASSWORD": "MEVSUITE__SIGNER__KEYSTORE_PASSWORD",
}

_PRIVATE_KEY_VAR = "MEVSUITE__SIGNER__PRIVATE_KEY"
_PASSWORD_VAR = "MEVSUITE__SIGNER__KEYSTORE_PASSWORD"


def fork_chain_id(upstream_chain_id: int) -> int:
    """The chain id a fork of ``upstream_chain_id`` runs with (set with ``anvil_setChainId``)."""
    return FORK_CHAIN_ID if upstream_chain_id != FORK_CHAIN_ID else FORK_CHAIN_ID + 1


@dataclass(frozen=True)
class KeyChoice:
    """The signer and where its key came from (``source`` is safe to print: it never holds key material)."""

    signer: Signer
    source: str
    dev_key: bool = False  # anvil's public dev key 0 (no key configured; devnet/fork only)


def signer_from_config(
    signer_cfg: SignerConfig, chain_kind: ChainKind, *, environ: Mapping[str, str] | None = None
) -> KeyChoice:
    """The searcher key of ``[signer]`` for a ``chain_kind`` chain (``"devnet"``, ``"fork"``, or a real ``"chain"``).

    :class:`ConfigError` (one line, no key material, no password) when a key is configured but unusable, when
    an old ``MEV_*`` variable is set, or when no key is configured on a real chain."""
    env = os.environ if environ is None else environ
    for old, new in LEGACY_KEY_VARIABLES.items():
        if env.get(old):
            raise ConfigError(f"signer: {old} is no longer read; set {new} instead (and unset {old})")
    key, keystore, password = signer_cfg.private_key, signer_cfg.keystore, signer_cfg.keystore_password
    if key is not None and keystore is not None:
        raise ConfigError(f"signer: both {_PRIVATE_KEY_VAR} and signer.keystore are set; configure one key")
    if key is not None:
        try:
            return KeyChoice(Signer(key.get_secret_value().strip()), _PRIVATE_KEY_VAR)
        except KeyLoadError as exc:
            raise ConfigError(f"signer.private_key: {exc} (from {_PRIVATE_KEY_VAR})") from None
    if keystore is not None:
        if password is None:
            raise ConfigError(f"signer.keystore: {keystore} is configured but {_PASSWORD_VAR} is not set")
        try:
            signer = Signer.from_keystore(keystore, password.get_secret_value())
        except KeyLoadError as exc:  # never shows the password or the key
            raise ConfigError(f"signer.keystore: {exc} (password from {_PASSWORD_VAR})") from None
        return KeyChoice(signer, f"keystore {keystore}")
    if password is not None:
        raise ConfigError(f"signer: {_PASSWORD_VAR} is set but signer.keystore is not (which keystore?)")
    if chain_kind in ("devnet", "fork"):
        return KeyChoice(
            Signer(ANVIL_DEV_KEY_0),
            f"anvil's public dev account 0: no key configured ({chain_kind} only; never on a real chain)",
            dev_key=True,
        )
    raise ConfigError(
        f"signer: no key configured: set {_PRIVATE_KEY_VAR}, or signer.keystore and {_PASSWORD_VAR}"
    )


# ---------------------------------------------------------------------------------------------- reputation key
def default_reputation_key_file(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/mevsuite/flashbots-reputation.key`` (else ``~/.local/share/mevsuite/…``)."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or ""
    root = (
        Path(base)
        if base and Path(base).is_absolute()
        else Path(env.get("HOME") or Path.home()) / ".local/share"
    )
    return root / "mevsuite" / "flashbots-reputation.key"


def reputation_signer(signer_cfg: SignerConfig, *, environ: Mapping[str, str] | None = None) -> KeyChoice:
    """The Flashbots reputation key: ``MEVSUITE__SIGNER__REPUTATION_KEY``, else the install's key file (created
    with a random key, mode 0600, on first use).  :class:`ConfigError` if the file is unusable or readable by
    others."""
    if signer_cfg.reputation_key is not None:
        try:
            return KeyChoice(
                Signer(signer_cfg.reputation_key.get_secret_value().strip()),
                "MEVSUITE__SIGNER__REPUTATION_KEY",
            )
        except KeyLoadError as exc:
            raise ConfigError(
                f"signer.reputation_key: {exc} (from MEVSUITE__SIGNER__REPUTATION_KEY)"
            ) from None
    path = signer_cfg.reputation_key_file or default_reputation_key_file(environ)
    created = False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_bytes(32).hex() + "\n")
            created = True
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ConfigError(
                f"signer.reputation_key_file: {path} is accessible by others (mode {mode:04o}); "
                f"run chmod 600 {path}"
            )
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"signer.reputation_key_file: cannot use {path}: {exc.strerror or exc}") from None
    try:
        signer = Signer(text)
    except KeyLoadError:
        if created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise ConfigError(f"signer.reputation_key_file: {path} does not hold a 32-byte hex key") from None
    return KeyChoice(signer, f"{'new ' if created else ''}key file {path}")


# ---------------------------------------------------------------------------------------------- mode
@dataclass(frozen=True)
class Mode:
    """The effective mode of a bot: ``live`` (it sends) and the one-line ``reason`` printed at start."""

    live: bool
    reason: str

    @property
    def line(self) -> str:
        return f"mode: {'live' if self.live else 'dry-run'} ({self.reason})"


def resolve_mode(cfg: Config, live_flag: bool) -> Mode:
    """Live only when ``bot.dry_run = false`` AND ``--live``.  ``--live`` with ``bot.dry_run = true`` is a
    :class:`ConfigError` (exit 2): the two switches disagree, and sending nothing silently would hide it."""
    source = cfg.source_of("bot.dry_run")
    where = "default" if source == "default" else f"from {source}"
    if cfg.bot.dry_run:
        if live_flag:
            raise ConfigError(
                f"--live needs bot.dry_run = false, but it is true ({where}); set dry_run = false in "
                "[bot] or MEVSUITE__BOT__DRY_RUN=false to send, or drop --live"
            )
        return Mode(False, f"bot.dry_run = true, {where}; no --live")
    if not live_flag:
        return Mode(False, f"bot.dry_run = false, {where}; no --live")
    return Mode(True, f"bot.dry_run = false, {where}; --live given")
