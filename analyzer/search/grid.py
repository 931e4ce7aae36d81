"""Grid search: every valid config, in a fixed order."""

from __future__ import annotations

from analyzer.config.pipeline import AnyCandidate, JointCandidate
from analyzer.search.base import Search


class GridSearch(Search):
    """Measures every valid candidate (up to max_trials), skipping those already measured."""

    strategy = "grid"

    def _propose(self) -> tuple[AnyCandidate | JointCandidate, None] | None:
        for cand in self.candidates:
            if self.unseen(cand):
                return cand, None
        return None
