"""Small classification data sets for on-array training: scikit-learn's digits or any ``.npz``.

Features are scaled to [0, 1] (so they map onto non-negative input voltages) and split
into train/test sets with a fixed seed, stratified by class, so the float baseline and
every analog run see exactly the same samples.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xbarlab.errors import ConfigError


@dataclass(frozen=True)
class Dataset:
    """A train/test split. Features in [0, 1], labels 0..classes−1."""

    name: str
    x_train: np.ndarray  # (n_train, features)
    y_train: np.ndarray  # (n_train,) int
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    @property
    def features(self) -> int:
        return int(self.x_train.shape[1])


def _digits_file() -> Path | None:
    """scikit-learn's own copy of the digits (the file ``load_digits`` parses), found without importing
    scikit-learn (its import costs seconds of CPU per process); None when it is not where it should be."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root, "datasets", "data", "digits.csv.gz")
        if path.is_file():
            return path
    return None


def _load_arrays(source: str) -> tuple[np.ndarray, np.ndarray, str]:
    if source == "digits":
        path = _digits_file()
        if path is not None:  # 64 pixel columns and the label, as load_digits reads them
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(int), "digits"
        try:
            from sklearn.datasets import load_digits
        except ImportError:  # pragma: no cover - scikit-learn is an optional dependency
            raise ConfigError("dataset 'digits' needs scikit-learn (pip install xbarlab[ml])") from None
        d = load_digits()
        return np.asarray(d.data, dtype=float), np.asarray(d.target), "digits"
    path = Path(source)
    if path.suffix != ".npz":
        raise ConfigError(f"dataset {source!r}: expected 'digits' or a path to an .npz file with arrays X and y")
    if not path.is_file():
        raise ConfigError(f"dataset {source!r}: file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f or "y" not in f:
                raise ConfigError(f"dataset {source!r}: the .npz needs arrays named X and y, has {sorted(f.files)}")
            x, y = np.asarray(f["X"], dtype=float), np.asarray(f["y"])
    except (OSError, ValueError) as exc:
        raise ConfigError(f"dataset {source!r}: cannot read: {exc}") from None
    return x.reshape(len(x), -1), y, path.stem


def load_dataset(
    source: str = "digits", *, test_fraction: float = 0.2, seed: int = 0, limit: int | None = None
) -> Dataset:
    """Load ``digits`` or an ``.npz`` (X: samples × features, y: integer labels), scale and split.

    ``limit`` keeps only the first ``limit`` samples of a seeded shuffle (quick runs, tests).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be within (0, 1), got {test_fraction}")
    x, y, name = _load_arrays(source)
    if x.ndim != 2 or len(x) != len(y) or len(x) < 4:
        raise ConfigError(f"dataset {source!r}: X has shape {x.shape} and y has {len(y)} labels; need >= 4 samples")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"dataset {source!r}: X contains non-finite values")
    labels, y_idx = np.unique(y, return_inverse=True)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    x = (x - lo) / span
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    if limit is not None:
        order = order[: max(4, int(limit))]
    train, test = [], []
    for c in range(len(labels)):  # stratified split
        idx = order[y_idx[order] == c]
        n_test = int(round(len(idx) * test_fraction))
        test += idx[:n_test].tolist()
        train += idx[n_test:].tolist()
    train_idx = rng.permutation(np.array(train, dtype=int))
    test_idx = np.array(sorted(test), dtype=int)
    return Dataset(name, x[train_idx], y_idx[train_idx], x[test_idx], y_idx[test_idx], len(labels))


#: scikit-learn's digits: 1797 samples of 8×8 = 64 features, 10 classes
DIGITS_SAMPLES, DIGITS_FEATURES, DIGITS_CLASSES = 1797, 64, 10


def _npz_labels_and_width(source: str) -> tuple[int, int, int] | None:
    try:
        with np.load(Path(source), allow_pickle=False) as f:
            x, y = f["X"], f["y"]
            return len(y), int(np.prod(x.shape[1:])), len(np.unique(y))
    except (OSError, ValueError, KeyError):
        return None


def dataset_size(source: str) -> int:
    """Samples in ``source`` without preparing it (for dry-run estimates); digits if unreadable."""
    info = None if source == "digits" else _npz_labels_and_width(source)
    return info[0] if info else DIGITS_SAMPLES


def dataset_shape(source: str) -> tuple[int, int]:
    """(features, classes) of ``source`` without preparing it (for estimates); digits if unreadable."""
    info = None if source == "digits" else _npz_labels_and_width(source)
    return (info[1], info[2]) if info else (DIGITS_FEATURES, DIGITS_CLASSES)
