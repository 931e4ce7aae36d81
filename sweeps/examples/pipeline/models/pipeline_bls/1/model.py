"""Example BLS model: each request goes to `preprocess`, then to `classifier`, through the
server's in-process API (business logic scripting)."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton python-backend entry point."""

    def execute(self, requests):
        responses = []
        for request in requests:
            raw = pb_utils.get_input_tensor_by_name(request, "RAW")
            pre = pb_utils.InferenceRequest(model_name="preprocess", requested_output_names=["FEATURES"],
                                            inputs=[pb_utils.Tensor("RAW", raw.as_numpy())]).exec()
            if pre.has_error():
                responses.append(pb_utils.InferenceResponse(error=pre.error()))
                continue
            features = pb_utils.get_output_tensor_by_name(pre, "FEATURES")
            cls = pb_utils.InferenceRequest(model_name="classifier", requested_output_names=["PROBS"],
                                            inputs=[pb_utils.Tensor("FEATURES", features.as_numpy())]).exec()
            if cls.has_error():
                responses.append(pb_utils.InferenceResponse(error=cls.error()))
                continue
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("PROBS",
                                                         pb_utils.get_output_tensor_by_name(cls, "PROBS").as_numpy())]))
        return responses
