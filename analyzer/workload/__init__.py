"""What a sweep tunes, as one type: a workload (one model, a pipeline, or several models on one
server). It knows its candidates, what loading one means, the models the load goes to (lanes)
and how a level is split among them, and how their verdicts combine into the level's. The loop
and the measurer (analyzer.sweep) hold a Workload and never ask which kind it is.

`base` is the protocol and the lane, `kinds` the three implementations (pure), `build` the
set-up that reads the models from the server and makes the right one (the only place that
looks at which sections a spec has).
"""

from analyzer.workload.base import Lane, Workload
from analyzer.workload.kinds import OneModel, Pipeline, SeveralModels

__all__ = ["Lane", "OneModel", "Pipeline", "SeveralModels", "Workload"]
