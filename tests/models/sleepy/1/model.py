"""Sleepy model: 5 ms of wall time per execution, one request at a time."""

import time

import triton_python_backend_utils as pb_utils

DELAY_S = 0.005


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        responses = []
        for r in requests:
            time.sleep(DELAY_S)
            x = pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("OUTPUT0", x)]))
        return responses
