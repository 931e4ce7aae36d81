"""Example preprocessing step: standardises each row of raw features (mean 0, unit variance).

It also waits 0.3 ms per execution, as the fixed cost of a real preprocessing call (decode,
tokenise) would: cheap, but not free, so it can become the bottleneck with too few instances.
"""

import time

import numpy as np
import triton_python_backend_utils as pb_utils

FIXED_S = 0.0003


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "RAW").as_numpy()
            mean = raw.mean(axis=-1, keepdims=True)
            std = raw.std(axis=-1, keepdims=True) + 1e-6
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("FEATURES", ((raw - mean) / std).astype(np.float32))]
                )
            )
        time.sleep(FIXED_S)
        return responses
