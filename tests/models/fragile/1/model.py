"""Fragile model: its max_batch_size picks a failure (see config.pbtxt)."""

import json
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args):
        self.max_batch = int(json.loads(args["model_config"]).get("max_batch_size", 0))
        if self.max_batch == 16:
            raise RuntimeError("fragile: refusing to start with max_batch_size 16")

    def execute(self, requests):
        if self.max_batch == 4:
            time.sleep(3600)  # hang: only a restart of the server ends this
        if self.max_batch == 2:
            os._exit(17)  # the stub process dies mid-request
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
