"""A shared-study worker that hits an unexpected error leaves at once: its config goes back to the
study and its claim is released, it exits 1 without a traceback, and the other worker measures
the rest, the dead worker's config included, each config once. The error is real: the worker's
file-size limit is cut to one byte (RLIMIT_FSIZE, set on the running process), so its next write
to its run directory fails with EFBIG, as on a full or broken disk."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from tests.helpers import shared_spec, shared_worker, study_rows, unfinished_claims, wait_for

# Two configs: each worker measures one, and the survivor of a fault takes the other over.
CONFIGS = {"i1_b8_d0", "i2_b8_d0"}
# Short heartbeats: whatever the dead worker leaves behind is judged stale within seconds.
TIMINGS = {"TRITUNE_HEARTBEAT_S": "1", "TRITUNE_GRACE_S": "3"}


def test_a_worker_whose_writes_fail_exits_and_the_other_takes_its_config_over(
    tmp_path: Path, model_repo: Path, postgres_url: str
) -> None:
    spec = shared_spec(tmp_path, model_repo, max_batch_size=[8])
    env = {"TRITUNE_STORAGE": postgres_url, **TIMINGS}
    victim = shared_worker(spec, "dying", tmp_path / "victim", env=env)
    survivor = shared_worker(spec, "dying", tmp_path / "survivor", env=env)
    try:
        # Mid-config: the victim holds a claim on a config it has started measuring (a level
        # row is in) and not finished.
        def mid_config() -> bool:
            levels = study_rows(postgres_url, "dying", "measurement")
            started = set(levels[levels["worker"].str.endswith(f":{victim.pid}")]["config_id"])
            return bool(set(unfinished_claims(postgres_url, "dying", victim.pid)) & started)

        wait_for(lambda: mid_config() or victim.poll() is not None, 120, "the victim to be mid-config")
        assert victim.poll() is None, victim.communicate()[0]
        (held,) = set(unfinished_claims(postgres_url, "dying", victim.pid))
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.prlimit(victim.pid, resource.RLIMIT_FSIZE, (1, hard))
        try:
            victim_out = victim.communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            victim.kill()
            pytest.fail(f"the worker did not exit after its write failed: {victim.communicate()[0][-3000:]}")
        assert victim.returncode == 1, victim_out
        assert "File too large" in victim_out and "Traceback" not in victim_out, victim_out
        survivor_out = survivor.communicate(timeout=180)[0]
    finally:
        for worker in (victim, survivor):
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert survivor.returncode == 0, survivor_out
    assert "Traceback" not in survivor_out
    configs = study_rows(postgres_url, "dying", "config")
    assert sorted(configs["config_id"]) == sorted(CONFIGS)  # every config once
    # The dead worker's config was measured again from scratch by the survivor: its config row
    # and every level row come from the survivor's one trial (the victim's rows were dropped).
    (row,) = configs[configs["config_id"] == held].itertuples()
    assert row.worker.endswith(f":{survivor.pid}")
    levels = study_rows(postgres_url, "dying", "measurement")
    mine = levels[levels["config_id"] == held]
    assert set(mine["worker"]) == {row.worker} and mine["trial"].nunique() == 1
