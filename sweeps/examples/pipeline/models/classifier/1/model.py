"""Example classifier step: softmax(features @ W + b) with fixed weights, in numpy.

Every execution (one batch) takes a fixed 2 ms plus 0.02 ms per request it holds, the shape
of a GPU model's latency: batching divides the fixed part among the requests of a batch.
"""

import time

import numpy as np
import triton_python_backend_utils as pb_utils

FIXED_S = 0.002
PER_REQUEST_S = 0.00002


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args):
        rng = np.random.default_rng(0)
        self.weights = rng.standard_normal((16, 4)).astype(np.float32)
        self.bias = rng.standard_normal(4).astype(np.float32)

    def execute(self, requests):
        batch = [pb_utils.get_input_tensor_by_name(r, "FEATURES").as_numpy() for r in requests]
        rows = np.concatenate(batch, axis=0)
        logits = rows @ self.weights + self.bias
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        time.sleep(FIXED_S + PER_REQUEST_S * len(rows))
        responses, start = [], 0
        for part in batch:
            out = probs[start : start + len(part)].astype(np.float32)
            start += len(part)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("PROBS", out)]))
        return responses
