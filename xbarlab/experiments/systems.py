"""Linear systems to solve on the array: random SPD matrices and matrices from files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xbarlab.errors import ConfigError

__all__ = ["load_system", "spd_matrix"]


def spd_matrix(n: int, condition: float, seed: int = 0) -> np.ndarray:
    """Random symmetric positive-definite n×n matrix with 2-norm condition number ``condition``.

    A = Q·diag(λ)·Qᵀ with Q Haar-random orthogonal and λ geometrically spaced from 1 to
    ``condition`` (Higham's randsvd, mode 3).
    """
    if n < 1 or condition < 1:
        raise ConfigError(f"spd_matrix needs n >= 1 and condition >= 1, got {n}, {condition}")
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    q *= np.sign(np.diag(r))
    a = (q * np.geomspace(1.0, condition, n)) @ q.T
    return 0.5 * (a + a.T)


def load_system(spec: str, n: int, condition: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, b): a random SPD matrix or one from a .npy/.npz file (npz: arrays A and optionally b)."""
    rng = np.random.default_rng(seed + 1)
    if spec == "spd":
        a = spd_matrix(n, condition, seed)
        return a, rng.normal(size=n)
    path = Path(spec)
    if not path.is_file() or path.suffix not in (".npy", ".npz"):
        raise ConfigError(f"matrix {spec!r}: expected 'spd' or an existing .npy/.npz file")
    if path.suffix == ".npy":
        a, b = np.load(path, allow_pickle=False), None
    else:
        with np.load(path, allow_pickle=False) as f:
            if "A" not in f:
                raise ConfigError(f"matrix {spec!r}: the .npz needs an array named A (and optionally b)")
            a, b = f["A"], f["b"] if "b" in f else None
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.all(np.isfinite(a)):
        raise ConfigError(f"matrix {spec!r}: expected a finite square matrix, got shape {a.shape}")
    b = rng.normal(size=a.shape[0]) if b is None else np.asarray(b, dtype=float)
    if b.shape != (a.shape[0],):
        raise ConfigError(f"matrix {spec!r}: b has shape {b.shape}, expected ({a.shape[0]},)")
    return a, b
