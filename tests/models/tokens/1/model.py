"""Tokens model: refuses ids outside a 64-token vocabulary and masks that are not 0/1 of the
ids' shape; answers each request's sequence length.

When the server's environment has TRITUNE_TOKENS_LOG, every accepted request's length is
appended to that file, one line each, so a test can see the mix of lengths the server got.
"""

import os

import numpy as np
import triton_python_backend_utils as pb_utils

VOCAB = 64


class TritonPythonModel:
    """Triton python-backend entry point."""

    def initialize(self, args):
        path = os.environ.get("TRITUNE_TOKENS_LOG")
        self.log = open(path, "a", buffering=1) if path else None  # noqa: SIM115 - closed by finalize()

    def execute(self, requests):
        responses = []
        for r in requests:
            ids = pb_utils.get_input_tensor_by_name(r, "input_ids").as_numpy()
            mask = pb_utils.get_input_tensor_by_name(r, "attention_mask").as_numpy()
            if ids.size and (ids.min() < 0 or ids.max() >= VOCAB):
                error = (
                    f"token id out of range: {int(ids.min())}..{int(ids.max())}, vocabulary is 0..{VOCAB - 1}"
                )
            elif mask.shape != ids.shape or not np.isin(mask, (0, 1)).all():
                error = "attention_mask must be 0/1 with the shape of input_ids"
            else:
                error = None
            if error is not None:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(error)))
                continue
            length = ids.shape[-1]
            if self.log is not None:
                for _ in range(ids.shape[0]):
                    self.log.write(f"{length}\n")
            responses.append(
                pb_utils.InferenceResponse(
                    [pb_utils.Tensor("length", np.full((ids.shape[0], 1), length, dtype=np.int64))]
                )
            )
        return responses

    def finalize(self):
        if self.log is not None:
            self.log.close()
