"""A database that stays unreachable past the retry window ends in a clear DatabaseError (exit 1),
with the URL shown without its password; no traceback, no endless wait. Nothing listens on the
port used here, so every connection is refused at once (a real refusal, not a mock)."""

from __future__ import annotations

import time

import pytest

from analyzer.errors import EXIT_RUNTIME, DatabaseError, UsageError
from analyzer.store.shared_timing import SharedTimings, timings_from_env
from analyzer.store.study_tables import SharedTables
from tests.helpers import free_port

SECRET = "pw-kept-secret"


def test_an_unreachable_database_is_retried_then_a_clear_error() -> None:
    url = f"postgresql+psycopg://tritune:{SECRET}@127.0.0.1:{free_port()}/tritune"
    started = time.monotonic()
    with pytest.raises(DatabaseError) as info:
        SharedTables(url, "s", "w:1", timings=SharedTimings(retry_s=1.5))  # its first call: the schema
    waited = time.monotonic() - started
    assert 1.5 <= waited < 15  # retried for the window, then gave up
    message = str(info.value)
    assert info.value.exit_code == EXIT_RUNTIME
    assert "lost the database at postgresql+psycopg://tritune:***@127.0.0.1" in message
    assert "Connection refused" in message and SECRET not in message


@pytest.mark.parametrize(
    "env, problem",
    [
        ({"TRITUNE_HEARTBEAT_S": "soon"}, "TRITUNE_HEARTBEAT_S='soon' is not a whole number of seconds"),
        ({"TRITUNE_HEARTBEAT_S": "5", "TRITUNE_GRACE_S": "5"}, "grace period (TRITUNE_GRACE_S) longer"),
        ({"TRITUNE_DB_RETRY_S": "0"}, "retry window (TRITUNE_DB_RETRY_S) positive"),
    ],
)
def test_bad_timings_from_the_environment_are_named(env: dict[str, str], problem: str) -> None:
    with pytest.raises(UsageError) as info:
        timings_from_env(env)
    assert problem in str(info.value)


def test_timings_from_the_environment() -> None:
    assert timings_from_env({}) == SharedTimings(heartbeat_s=5, grace_s=20, retry_s=60.0)
    assert timings_from_env(
        {"TRITUNE_HEARTBEAT_S": "1", "TRITUNE_GRACE_S": "3", "TRITUNE_DB_RETRY_S": "2.5"}
    ) == (SharedTimings(heartbeat_s=1, grace_s=3, retry_s=2.5))
