"""A small multi-layer perceptron whose layers are pluggable backends (float or on the array).

Every layer is a :class:`Layer`: ``forward(x) = W·x``, ``backward(d) = Wᵀ·d`` and
``update(x, d, lr)`` applying W ← W − lr·d·xᵀ (exactly in float; as pulses on the array).
Biases are digital (float, one value per neuron, updated by plain SGD) in every backend, so
the float baseline and the analog networks have exactly the same architecture.

Hidden neurons are sigmoids (bounded in [0, 1], so they map onto input voltages of the next
array as in Gokmen & Vlasov 2016), the output is a softmax with cross-entropy loss, and
training is per sample (batch size 1), the natural mode of outer-product updates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from xbarlab.errors import ConfigError


class Layer(Protocol):
    """A weight matrix W (n_out × n_in) somewhere: in numpy or on a crossbar."""

    n_in: int
    n_out: int

    def forward(self, x: np.ndarray) -> np.ndarray: ...

    def backward(self, d: np.ndarray) -> np.ndarray: ...

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        """W ← W − lr·d·xᵀ; returns the number of device pulses applied (0 in float)."""
        ...

    def weights(self) -> np.ndarray: ...


class FloatLayer:
    """The digital baseline: float64 weights, exact products and updates."""

    def __init__(self, weights: np.ndarray) -> None:
        self.w = np.array(weights, dtype=float)
        self.n_out, self.n_in = self.w.shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.w @ x

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.w.T @ d

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        self.w -= lr * np.outer(d, x)
        return 0

    def weights(self) -> np.ndarray:
        return self.w.copy()


def init_weights(sizes: Sequence[int], seed: int = 0, w_max: float | None = None) -> list[np.ndarray]:
    """Uniform Xavier initialisation, W_k of shape (sizes[k+1], sizes[k]); clipped to ±w_max."""
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        bound = np.sqrt(6.0 / (n_in + n_out))
        w = rng.uniform(-bound, bound, size=(n_out, n_in))
        out.append(np.clip(w, -w_max, w_max) if w_max else w)
    return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z))
    return e / e.sum()


@dataclass(frozen=True)
class SampleResult:
    loss: float  # cross-entropy (nats)
    correct: bool
    pulses: int


class MLP:
    """Layers with sigmoid hidden units, softmax output and digital biases."""

    def __init__(self, layers: Sequence[Layer], biases: Sequence[np.ndarray] | None = None) -> None:
        if not layers:
            raise ConfigError("an MLP needs at least one layer")
        for a, b in zip(layers[:-1], layers[1:], strict=True):
            if a.n_out != b.n_in:
                raise ConfigError(f"layer sizes do not chain: {a.n_out} outputs feed {b.n_in} inputs")
        self.layers = list(layers)
        self.biases = [np.zeros(layer.n_out) for layer in layers] if biases is None else [
            np.array(b, dtype=float) for b in biases
        ]

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    def forward(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """(inputs of every layer, output probabilities)."""
        acts = [np.asarray(x, dtype=float)]
        h = acts[0]
        for k, (layer, b) in enumerate(zip(self.layers, self.biases, strict=True)):
            z = layer.forward(h) + b
            if k < len(self.layers) - 1:
                h = sigmoid(z)
                acts.append(h)
            else:
                return acts, softmax(z)
        raise AssertionError("unreachable")

    def predict(self, x: np.ndarray) -> int:
        return int(np.argmax(self.forward(x)[1]))

    def train_sample(self, x: np.ndarray, label: int, lr: float) -> SampleResult:
        """One forward pass, backward pass and update (SGD, batch size 1)."""
        acts, p = self.forward(x)
        loss = -float(np.log(max(p[label], 1e-300)))
        correct = int(np.argmax(p)) == label
        d = p.copy()
        d[label] -= 1.0  # ∂loss/∂z of softmax + cross-entropy
        pulses = 0
        for k in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[k]
            d_prev = None
            if k > 0:  # backward pass before this layer's update (uses the same weights as the forward)
                h = acts[k]
                d_prev = layer.backward(d) * h * (1.0 - h)
            pulses += layer.update(acts[k], d, lr)
            self.biases[k] -= lr * d
            if d_prev is not None:
                d = d_prev
        return SampleResult(loss, correct, pulses)

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, accuracy) over a set, one forward pass per sample."""
        losses, hits = 0.0, 0
        for xi, yi in zip(x, y, strict=True):
            _, p = self.forward(xi)
            losses += -float(np.log(max(p[int(yi)], 1e-300)))
            hits += int(np.argmax(p)) == int(yi)
        n = max(len(y), 1)
        return losses / n, hits / n
