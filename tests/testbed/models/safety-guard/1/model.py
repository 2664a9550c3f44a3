"""Test bed model: a "safe"/"unsafe" label and an unsafety score per string.

Not a real safety classifier: a string is "unsafe" when it contains one of a
few fixed marker words, so test expectations are exact.
"""

import numpy as np
import triton_python_backend_utils as pb_utils

UNSAFE_WORDS = {"attack", "exploit", "malware", "weapon"}


def _score(raw) -> float:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    words = {w.strip(".,;:!?\"'()").lower() for w in text.split()}
    return 1.0 if words & UNSAFE_WORDS else 0.0


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            scores = np.array([_score(t) for t in texts], dtype=np.float32)
            labels = np.array(
                [b"unsafe" if s >= 0.5 else b"safe" for s in scores], dtype=np.object_
            )
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("LABEL", labels),
                        pb_utils.Tensor("SCORE", scores),
                    ]
                )
            )
        return responses
