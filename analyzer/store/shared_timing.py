"""The timings of a shared study's workers: how often a worker shows it is alive, how long its
silence may last before another worker takes its work over, and how long a worker waits out a
database that is down. Defaults suit real deployments; each can be changed through the
environment (read here, and only here), so that tests need not wait them out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from analyzer.errors import UsageError

HEARTBEAT_ENV = "TRITUNE_HEARTBEAT_S"
GRACE_ENV = "TRITUNE_GRACE_S"
RETRY_ENV = "TRITUNE_DB_RETRY_S"


@dataclass(frozen=True)
class SharedTimings:
    """Seconds. Optuna stores the heartbeat interval and grace period as whole seconds."""

    heartbeat_s: int = 5  # a running trial's (and the confirmation round's) heartbeat
    grace_s: int = 20  # a heartbeat older than this: its worker is taken for dead
    retry_s: float = 60.0  # a database call is retried this long before the worker gives up

    def __post_init__(self) -> None:
        if self.heartbeat_s < 1 or self.grace_s <= self.heartbeat_s or self.retry_s <= 0:
            raise UsageError(
                f"shared-study timings: heartbeat {self.heartbeat_s} s, grace {self.grace_s} s, "
                f"database retry {self.retry_s:g} s",
                hint=f"the heartbeat ({HEARTBEAT_ENV}) must be at least 1 s, the grace period "
                f"({GRACE_ENV}) longer than it, and the retry window ({RETRY_ENV}) positive",
            )


def _number(env: Mapping[str, str], name: str, default: float, whole: bool) -> float:
    text = env.get(name)
    if text is None or text.strip() == "":
        return default
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number of seconds" if whole else "a number of seconds"
        raise UsageError(f"{name}={text!r} is not {kind}", hint=f"unset {name} for {default:g} s") from None
    return value


def timings_from_env(env: Mapping[str, str] | None = None) -> SharedTimings:
    """The timings, with any of TRITUNE_HEARTBEAT_S, TRITUNE_GRACE_S and TRITUNE_DB_RETRY_S
    from the environment in place of the defaults (UsageError for a value that is not one)."""
    env = os.environ if env is None else env
    default = SharedTimings()
    return SharedTimings(
        heartbeat_s=int(_number(env, HEARTBEAT_ENV, default.heartbeat_s, True)),
        grace_s=int(_number(env, GRACE_ENV, default.grace_s, True)),
        retry_s=_number(env, RETRY_ENV, default.retry_s, False),
    )
