"""Shared studies: which worker measures a config. Each config is claimed by one trial in the
shared tables (analyzer.store.shared); a claim whose trial died (failed by its heartbeat) is taken over,
and the rows the dead worker left are dropped."""

from __future__ import annotations

from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

if TYPE_CHECKING:
    from analyzer.store.shared import SharedTables


def claim_config(shared: SharedTables, study: optuna.Study, config_id: str, trial_number: int) -> bool:
    """Claim a config for a trial: a new claim, or one whose trial died (failed by its
    heartbeat), taken over along with dropping the rows the dead worker left."""
    if shared.claim(config_id, trial_number):
        return True
    held = shared.holder(config_id)
    if held is None:
        return shared.claim(config_id, trial_number)
    old, _ = held
    state = study._storage.get_trial(
        study._storage.get_trial_id_from_study_id_trial_number(study._study_id, old)
    ).state
    if state == TrialState.RUNNING or not shared.take_over(config_id, old, trial_number):
        return False
    shared.drop_trial_rows(config_id, old)
    return True
