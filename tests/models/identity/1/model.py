"""Identity model: every request's INPUT0 comes back as OUTPUT0."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        return [
            pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUTPUT0", pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy())]
            )
            for r in requests
        ]
