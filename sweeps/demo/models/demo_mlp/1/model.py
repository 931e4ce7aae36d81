"""tritune demo model: a three-layer MLP computed with numpy on Triton's python backend.

All requests of one `execute` call (the dynamic batcher's batch) are stacked and pushed through
the network as one matrix product. Weights are fixed by a seed so outputs are reproducible.
"""

import os

# One BLAS thread per model instance, set before numpy loads OpenBLAS: instance_count is then the
# parallelism knob, as in a CPU deployment of Triton. With OpenBLAS's default (a thread per core)
# every instance's threads fight the others and the load generator for the same cores, and
# measured throughput swung by up to 2x between identical runs on a 2-core machine. setdefault keeps an
# explicit setting from the server's environment.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (must follow the thread settings above)
import triton_python_backend_utils as pb_utils  # noqa: E402

SIZES = (256, 1024, 1024, 16)


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args):
        rng = np.random.default_rng(1234)
        self.layers = [
            (
                (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
                np.zeros(n_out, dtype=np.float32),
            )
            for n_in, n_out in zip(SIZES[:-1], SIZES[1:])
        ]

    def _forward(self, x):
        for i, (weight, bias) in enumerate(self.layers):
            x = x @ weight + bias
            if i < len(self.layers) - 1:
                np.maximum(x, 0.0, out=x)
        return x

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        sizes = [len(x) for x in inputs]
        out = self._forward(np.concatenate(inputs, axis=0).astype(np.float32, copy=False))
        responses = []
        start = 0
        for size in sizes:
            chunk = out[start : start + size]
            start += size
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", chunk)]))
        return responses
