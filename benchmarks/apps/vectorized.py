"""The batching benchmark's service: a small numpy model, one endpoint per item and one batched with `@fs.batch`.

Each request carries 16 floats and gets 16 back. The model is a small recurrent net run for `STEPS` steps (a
64-wide tanh cell, as a sequence scorer or a tiny decoder is): per item, each step is a few numpy calls on a
64-vector, so the time goes to numpy's per-call cost; a batch makes the same calls on a (batch, 64) matrix, for
about the same time, which is where batching pays. `benchmarks/peers/ray_batching_app.py` serves the same model the
same way under Ray Serve's `@serve.batch`.
"""

import numpy as np

import fnserve as fs

FEATURES = 16
WIDTH = 64
STEPS = 400
MAX_BATCH_SIZE = 64
BATCH_WAIT_TIMEOUT_S = 0.005


def weights() -> list[np.ndarray]:
    """The same weights everywhere (a fixed seed): input, recurrent, output."""
    rng = np.random.default_rng(17)
    shapes = [(FEATURES, WIDTH), (WIDTH, WIDTH), (WIDTH, FEATURES)]
    return [(rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32) for shape in shapes]


def forward(layers: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    """`x`: (items, FEATURES) → (items, FEATURES)."""
    into, recurrent, out = layers
    hidden = np.tanh(x @ into)
    for _ in range(STEPS):
        hidden = np.tanh(hidden @ recurrent + x[:, :1])
    result: np.ndarray = np.tanh(hidden @ out)
    return result


@fs.service(name="vectorized")  # auth on, like a real service: requests carry the owner key
class Vectorized:
    """A small model served per item and batched."""

    def __init__(self) -> None:
        self.layers = weights()

    @fs.endpoint("/plain")
    def plain(self, x: list[float]) -> list[float]:
        """One item per call."""
        result: list[float] = forward(self.layers, np.asarray([x], dtype=np.float32))[0].tolist()
        return result

    @fs.endpoint("/batched")
    @fs.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_TIMEOUT_S)
    def batched(self, x: list[list[float]]) -> list[list[float]]:
        """The calls that arrived together, as one (batch, 16) matrix."""
        result: list[list[float]] = forward(self.layers, np.asarray(x, dtype=np.float32)).tolist()
        return result
