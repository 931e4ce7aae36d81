"""A shared-study worker frozen for longer than the grace period (SIGSTOP: a paused VM, a stalled
host) loses the config it held: the other worker takes it over. Once it runs again (SIGCONT), the
frozen worker's next row for that config is refused, and it says so, drops the config and goes on
with the search; no traceback, and every config is measured once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import shared_spec, shared_worker, study_claims, study_rows, unfinished_claims, wait_for

# Two configs: each worker measures one, and the survivor of a fault takes the other over.
CONFIGS = {"i1_b8_d0", "i2_b8_d0"}


def test_a_frozen_worker_loses_its_config_and_goes_on(
    tmp_path: Path, model_repo: Path, postgres_url: str
) -> None:
    spec = shared_spec(tmp_path, model_repo, max_batch_size=[8])
    env = {"TRITUNE_STORAGE": postgres_url, "TRITUNE_HEARTBEAT_S": "1", "TRITUNE_GRACE_S": "3"}
    frozen = shared_worker(spec, "frozen", tmp_path / "frozen", env=env)
    other = shared_worker(spec, "frozen", tmp_path / "other", env=env)
    try:
        # Mid-config: a level row of a config it holds is in, so it has more rows to write.
        def mid_config() -> bool:
            levels = study_rows(postgres_url, "frozen", "measurement")
            started = set(levels[levels["worker"].str.endswith(f":{frozen.pid}")]["config_id"])
            return bool(set(unfinished_claims(postgres_url, "frozen", frozen.pid)) & started)

        wait_for(lambda: mid_config() or frozen.poll() is not None, 120, "the worker to be mid-config")
        assert frozen.poll() is None, frozen.communicate()[0]
        (held,) = unfinished_claims(postgres_url, "frozen", frozen.pid)
        os.kill(frozen.pid, signal.SIGSTOP)
        try:
            wait_for(
                lambda: (
                    (held, f":{other.pid}")
                    in [(c, w[w.rfind(":") :]) for c, w in study_claims(postgres_url, "frozen")]
                    or other.poll() is not None
                ),
                60,
                "the other worker to take the frozen worker's config over",
            )
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        outputs = {w.pid: w.communicate(timeout=180)[0] for w in (frozen, other)}
    except subprocess.TimeoutExpired:
        pytest.fail("a worker did not finish")
    finally:
        for worker in (frozen, other):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [frozen.returncode, other.returncode] == [0, 0], outputs
    assert not any("Traceback" in o for o in outputs.values()), outputs
    assert f"config {held} was taken over by" in outputs[frozen.pid] and "dropped here" in outputs[frozen.pid]
    configs = study_rows(postgres_url, "frozen", "config")
    assert sorted(configs["config_id"]) == sorted(CONFIGS)  # every config once
    # The lost config is the other worker's alone: its config row and every level row.
    (row,) = configs[configs["config_id"] == held].itertuples()
    assert row.worker.endswith(f":{other.pid}")
    levels = study_rows(postgres_url, "frozen", "measurement")
    lost = levels[levels["config_id"] == held]
    assert set(lost["worker"]) == {row.worker} and lost["trial"].nunique() == 1
