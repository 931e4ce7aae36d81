"""Picky model: refuses to initialize with max_batch_size above 8; otherwise an identity."""

import json

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        if int(config.get("max_batch_size", 0)) > 8:
            raise RuntimeError("picky: max_batch_size above 8 is not supported")

    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
