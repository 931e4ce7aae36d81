"""tritune simulator model: an accelerator with a few shared execution streams, simulated by sleeping.

What it models: a GPU-like device on which one batch costs `fixed_ms + per_row_ms * rows` (a
fixed launch/overhead cost plus a cost per row, so batching amortises the fixed part), and which
runs at most `streams` batches at once (its concurrent execution engines). Model instances are
separate python-backend stub processes; each takes any free stream (a cross-process
`fcntl.flock` lock per stream) and holds it for the whole service time, so instances beyond
`streams` queue for a stream instead of adding capacity, as extra instances on a saturated GPU
do.

Why: benchmarking the search needs a model whose capacity is known analytically
(~ streams * batch / (fixed_ms + per_row_ms * batch) at saturation), where every knob matters
(instance count up to `streams`, batch size, queue delay) and the latency budget binds, and which
uses almost no CPU (it sleeps, never spins), so the noise of a shared 2-core machine hardly moves
its numbers and a brute-force truth measured once stays valid.

Measured (benchmarks/data/simulator_truth.json): saturated throughput is 10-13 % under that
formula (the python backend's per-batch IPC adds ~3-5 ms), the server and its stubs use 10-35 %
of one core, and under the brute force's p99 budget of 95 ms the best config is i2_b32_d0 at
concurrency 64, not the largest of every knob (i3_b32_d4000 serves more, but only past the budget).

Parameters (config `parameters`, string values): fixed_ms (default 8), per_row_ms (default 1),
streams (default 2). Lock files live under the temp dir in a directory named by the server's pid
and the model name, so two servers on one machine never share streams.
"""

import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

import triton_python_backend_utils as pb_utils

DEFAULTS = {"fixed_ms": 8.0, "per_row_ms": 1.0, "streams": 2}
LOCK_PREFIX = "tritune-sim-"
POLL_S = 0.0005


def _log(message: str) -> None:
    """Write to the server log (pb_utils.Logger where this backend has it, else stderr)."""
    logger = getattr(pb_utils, "Logger", None)
    if logger is not None:
        logger.log_info(message)
    else:
        print(message, file=sys.stderr, flush=True)


def _parameter(config: dict[str, Any], key: str, default: Any, cast: Callable[[str], Any]) -> Any:
    """A config parameter's string value cast to the default's type; the default when unset."""
    entry = config.get("parameters", {}).get(key)
    if not entry or entry.get("string_value", "") == "":
        return default
    return cast(entry["string_value"])


def _instance_index(instance_name: str) -> int:
    """The instance's index from its name: Triton names instances '<model>_<group>_<index>'
    (older servers '<model>_<index>'); the last number is the index within the group."""
    match = re.search(r"(\d+)$", instance_name)
    return int(match.group(1)) if match else 0


def _pid_alive(pid: int) -> bool:
    """True while a process with this pid exists (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_lock_dirs(tmp: str) -> None:
    """Delete lock directories of servers that are gone (a killed server cannot clean up)."""
    for name in os.listdir(tmp):
        match = re.match(re.escape(LOCK_PREFIX) + r"(\d+)-", name)
        if match and not _pid_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.fixed_s = _parameter(config, "fixed_ms", DEFAULTS["fixed_ms"], float) / 1000.0
        self.per_row_s = _parameter(config, "per_row_ms", DEFAULTS["per_row_ms"], float) / 1000.0
        streams = max(1, _parameter(config, "streams", DEFAULTS["streams"], int))
        instance_name = args["model_instance_name"]
        self.home = _instance_index(instance_name) % streams
        # The stub's parent is the tritonserver process: its pid names this server's streams.
        server_pid = os.getppid()
        tmp = tempfile.gettempdir()
        _remove_stale_lock_dirs(tmp)
        lock_dir = os.path.join(tmp, f"{LOCK_PREFIX}{server_pid}-{args['model_name']}")
        os.makedirs(lock_dir, exist_ok=True)
        # Opened once and kept: flock locks belong to the open file description, so each stub's
        # own descriptor contends with the other stubs' descriptors of the same file. The files
        # are never deleted while the server lives: an instance still finishing a batch during a
        # reload must lock the same inode as the new instances.
        self.lock_fds = [
            os.open(os.path.join(lock_dir, f"stream-{k}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
            for k in range(streams)
        ]
        _log(
            f"simulator: instance {instance_name!r}, {streams} shared streams (first try: {self.home}), "
            f"fixed {self.fixed_s * 1000:g} ms + {self.per_row_s * 1000:g} ms/row, "
            f"server pid {server_pid}, locks in {lock_dir}"
        )

    def _acquire(self) -> int:
        """Take any free stream, trying this instance's own first; poll while all are busy.

        Any free one, not a fixed one: Triton changes an instance count in place (it adds or
        removes instances and keeps the others' names), so names alone could put two instances on
        one stream and leave another idle, which a device's scheduler would not do.
        """
        order = [(self.home + k) % len(self.lock_fds) for k in range(len(self.lock_fds))]
        while True:
            for k in order:
                try:
                    fcntl.flock(self.lock_fds[k], fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return k
                except BlockingIOError:
                    continue
            time.sleep(POLL_S)  # all streams busy: a batch takes >= fixed_ms, so 0.5 ms is fine-grained

    def execute(self, requests: list[Any]) -> list[Any]:
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        rows = sum(int(x.shape[0]) for x in inputs)
        stream = self._acquire()
        try:
            time.sleep(self.fixed_s + self.per_row_s * rows)  # the batch "runs"; no CPU used
        finally:
            fcntl.flock(self.lock_fds[stream], fcntl.LOCK_UN)
        return [pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]) for x in inputs]

    def finalize(self) -> None:
        for fd in self.lock_fds:
            os.close(fd)
