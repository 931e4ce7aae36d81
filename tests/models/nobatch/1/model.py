"""No-batching model: sums an INT32 vector and ignores a BYTES input."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        responses = []
        for r in requests:
            count = pb_utils.get_input_tensor_by_name(r, "COUNT").as_numpy()
            total = np.array([count.sum()], dtype=np.int32)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("SUM", total)]))
        return responses
