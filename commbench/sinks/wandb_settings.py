"""W&B settings (logging.wandb) and what happens when W&B fails: online that cannot reach its server
warns once and goes offline; offline that fails warns once and turns W&B off for the process. A W&B
failure never fails a run."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse


# Why W&B failed in this process (each reason is shown once): online, then at all.
_online_failure: str | None = None
_failure: str | None = None


class WandbConfigError(ValueError):
    """A bad logging.wandb setting; str() is the one line the user sees."""


@dataclass(frozen=True)
class WandbSettings:
    """logging.wandb (commbench/settings.py declares its keys and defaults), checked."""

    mode: str
    project: str
    dir: str  # the results folder: offline runs land in ${dir}/wandb/offline-run-*
    entity: str | None
    group: str | None
    tags: tuple[str, ...]
    init_timeout_s: float
    finish_timeout_s: float
    required: bool

    @property
    def effective_mode(self) -> str:
        if self.mode == "disabled" or _failure is not None:
            return "disabled"
        return "offline" if self.mode == "online" and _online_failure is not None else self.mode

    @property
    def enabled(self) -> bool:
        return self.effective_mode != "disabled"


def settings_from(logging_cfg: dict[str, Any] | None, results_dir: str, group: str | None = None) -> WandbSettings:
    """Validate logging.wandb (keys not given: their declared defaults); `group` (the sweep's name)
    applies where the config sets none. None: W&B disabled."""
    from commbench.settings import Wandb, check, default

    given = dict((logging_cfg or {}).get("wandb") or {"mode": "disabled"})
    w = {f.name: given.get(f.name, default(f"logging.wandb.{f.name}")) for f in fields(Wandb)}
    try:
        w = {key: check(f"logging.wandb.{key}", value) for key, value in w.items()}
    except ValueError as exc:
        raise WandbConfigError(str(exc)) from None
    return WandbSettings(**{**w, "dir": str(results_dir), "entity": w["entity"] or None,
                            "group": w["group"] or group, "tags": tuple(w["tags"])})


def go_offline(settings: WandbSettings, reason: str) -> None:
    global _online_failure
    if _online_failure is None:
        _online_failure = reason
        print(f"commbench: warning: W&B online unavailable: {reason}; logging offline to "
              f"{Path(settings.dir) / 'wandb'} instead (`wandb sync` uploads it later)", file=sys.stderr)


def turn_off(reason: str) -> None:
    global _failure
    if _failure is None:
        _failure = reason
        print(f"commbench: warning: W&B logging off: {reason}; runs.jsonl and `commbench report` are "
              "unaffected", file=sys.stderr)


def reset() -> None:
    """Forget earlier failures (tests)."""
    global _failure, _online_failure
    _failure = _online_failure = None


def preflight(settings: WandbSettings) -> str | None:
    """Online mode, before Ray starts: why W&B cannot work (no key, server unreachable), or None.
    Cheap checks only; anything else shows up at wandb.init and is handled there."""
    base_url = server_url()
    if not api_key(base_url):
        return f"no W&B API key for {base_url} (set WANDB_API_KEY or run `wandb login`)"
    url = urlparse(base_url)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=min(5.0, settings.init_timeout_s)).close()
    except OSError as exc:
        return f"W&B server {base_url} unreachable ({exc.strerror or exc})"
    return None


def server_url() -> str:
    """The W&B server wandb.init will use: WANDB_BASE_URL, else `wandb login --host`'s, else the default."""
    import os

    import wandb

    settings = wandb.Settings()
    settings.update_from_system_settings()
    settings.update_from_env_vars(dict(os.environ))
    return settings.base_url


def api_key(base_url: str) -> str | None:
    """Where `wandb login` and W&B look: WANDB_API_KEY, then ~/.netrc for the server's host."""
    import netrc
    import os

    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    try:
        auth = netrc.netrc().authenticators(urlparse(base_url).hostname or "")
    except (OSError, netrc.NetrcParseError):
        return None
    return auth[2] if auth else None


def check(settings: WandbSettings) -> None:
    """Before Ray starts: an online W&B that cannot work says so now and goes offline (with
    required=true: raises)."""
    reason = preflight(settings) if settings.effective_mode == "online" else None
    if reason and settings.required:
        raise WandbConfigError(f"{reason} (logging.wandb.required=true)")
    if reason:
        go_offline(settings, reason)


def guarded(settings: WandbSettings, action: Callable[[], Any]) -> Any:
    """Run a W&B action. Online failing: warn once, go offline and run it again; failing offline:
    warn once, W&B off for this process."""
    from commbench.errors import first_line

    while settings.enabled:
        mode = settings.effective_mode
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - W&B must never fail a measured run
            reason = f"{type(exc).__name__}: {first_line(exc)}"
            if mode == "online":
                go_offline(settings, reason)
            else:
                turn_off(reason)
    return None
