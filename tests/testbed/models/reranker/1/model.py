"""Test bed model: one relevance score in [0, 1] per passage.

Not a real reranker: the score is the share of the query's words that occur
in the passage (case-insensitive), which is deterministic and easy to check.
"""

import numpy as np
import triton_python_backend_utils as pb_utils


def _words(raw) -> set:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return {w.strip(".,;:!?\"'()").lower() for w in text.split()} - {""}


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            query = pb_utils.get_input_tensor_by_name(request, "QUERY").as_numpy().reshape(-1)
            passages = pb_utils.get_input_tensor_by_name(request, "PASSAGES").as_numpy().reshape(-1)
            q = _words(query[0]) if len(query) else set()
            scores = np.array(
                [len(q & _words(p)) / len(q) if q else 0.0 for p in passages], dtype=np.float32
            )
            responses.append(
                pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("SCORES", scores)])
            )
        return responses
