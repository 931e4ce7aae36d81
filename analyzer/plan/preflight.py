"""What a sweep checks before its server starts: everything the spec and the files it names can
show, so that a bad input costs no server start (and its tests need no server).

Already checked by then: the spec itself (analyzer.spec.spec: keys, values, the load section and its
schedule, input_data's form) and a shared study's storage URL (analyzer.sweep.setup). Checked here:

- the request data file (`input_data.file`) reads and has perf_analyzer's or numpy's format,
  within the limits on requests and bytes; whether its requests fit the model's inputs needs the
  model's metadata, from the server;
- generated requests: their count, and a floor on their bytes from the shapes the spec gives
  (analyzer.load.requests.request_set_floor; the exact size once the model's dtypes are known);
- with a local model repository: each model the spec names is in it, and, where the models'
  config.pbtxt files are there to read, the search space (one model's, a pipeline's or several
  models') is checked exactly as the sweep will check it (analyzer.plan.plan). A model whose config
  only the server completes is checked after the server starts, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from analyzer.config.modelconfig import ModelConfig, read_pbtxt
from analyzer.config.pipeline import is_ensemble
from analyzer.errors import ModelNotFoundError
from analyzer.load.data import read_data_file
from analyzer.load.requests import request_set_floor
from analyzer.plan.plan import model_space, pipeline_plan, target_space, targets_plan
from analyzer.spec.spec import SweepSpec


class _NoFile(Exception):
    """A model's config.pbtxt is not in the repository: the server completes it."""


def check_before_server(spec: SweepSpec) -> None:
    """Raise the UsageError the sweep would stop with, for whatever can be known without a server."""
    if spec.input_data is not None and spec.input_data.file is not None:
        read_data_file(spec.input_data.file)
    request_set_floor(spec.input_data, spec.inputs)
    for target in (spec.targets or {}).values():
        request_set_floor(spec.input_data, {**spec.inputs, **target.inputs})
    if spec.model_repository is None:
        return  # a running server: its models and configs are known only from it
    repo = Path(spec.model_repository)
    _require_models(spec, repo)

    def config_of(name: str) -> ModelConfig:
        config = local_config(repo, name)
        if config is None:
            raise _NoFile(name)
        return config

    try:
        _check_spaces(spec, config_of)
    except _NoFile:
        pass


def _require_models(spec: SweepSpec, repo: Path) -> None:
    """Each model the spec names is a directory of the repository (Triton's model names)."""
    names = [spec.model] if spec.targets is None else list(spec.targets)
    names += [n for n in spec.models or {} if n not in names]
    present = sorted(p.name for p in repo.iterdir() if p.is_dir())
    for name in names:
        if name not in present:
            raise ModelNotFoundError(
                f"model {name!r} not found in the model repository {repo}; it has: "
                + (", ".join(present) or "(none)"),
                hint=f"{spec.source}: name one of those models",
            )


def local_config(repo: Path, name: str) -> ModelConfig | None:
    """A model's config.pbtxt in a local repository (None when the server completes it)."""
    file = repo / name / "config.pbtxt"
    if not file.is_file():
        return None
    config = read_pbtxt(file)
    config.name = name
    return config


def _check_spaces(spec: SweepSpec, config_of: Callable[[str], ModelConfig]) -> None:
    """The space checks of analyzer.sweep.setup's set-up, on the repository's configs."""
    if spec.targets is not None:
        bases = {name: config_of(name) for name in spec.targets}
        tuned = {name: target_space(spec, name, t, bases[name])[1] for name, t in spec.targets.items()}
        targets_plan(spec, bases, tuned)
        return
    base = config_of(spec.model)
    if spec.models is not None or is_ensemble(base):
        pipeline_plan(spec, base, config_of)
    else:
        model_space(spec, base)
