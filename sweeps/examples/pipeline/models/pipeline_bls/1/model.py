"""Example BLS model: each request goes to `preprocess`, then to `classifier`, through the
server's in-process API (business logic scripting)."""

import triton_python_backend_utils as pb_utils


def call(model, input_name, output_name, array):
    """One request to another model of the server: (its output tensor, None) or (None, error)."""
    response = pb_utils.InferenceRequest(
        model_name=model, requested_output_names=[output_name], inputs=[pb_utils.Tensor(input_name, array)]
    ).exec()
    if response.has_error():
        return None, response.error()
    return pb_utils.get_output_tensor_by_name(response, output_name), None


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "RAW")
            features, error = call("preprocess", "RAW", "FEATURES", raw.as_numpy())
            if error is None:
                probs, error = call("classifier", "FEATURES", "PROBS", features.as_numpy())
            if error is not None:
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("PROBS", probs.as_numpy())]))
        return responses
