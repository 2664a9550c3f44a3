"""Test bed model: a deterministic, unit-length 16-dimensional vector per input string.

Not a real embedding model: the vector is derived from a hash of the UTF-8
bytes, so equal inputs give equal vectors and the output shape is fixed.
"""

import hashlib

import numpy as np
import triton_python_backend_utils as pb_utils

DIM = 16


def embed(text: bytes) -> np.ndarray:
    digest = hashlib.blake2b(text, digest_size=DIM * 4).digest()
    raw = np.frombuffer(digest, dtype="<u4").astype(np.float64)
    vec = raw / np.float64(2**32) * 2.0 - 1.0
    norm = np.linalg.norm(vec)
    return (vec / norm if norm else vec).astype(np.float32)


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy().reshape(-1)
            out = (
                np.stack([embed(t if isinstance(t, bytes) else str(t).encode()) for t in texts])
                if len(texts)
                else np.zeros((0, DIM), dtype=np.float32)
            )
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor("EMBEDDING", out.astype(np.float32))]
                )
            )
        return responses
