"""The showcase problems of one-step in-memory computing (Sun et al., PNAS 116, 4123 (2019)), digitally.

Pure numpy: the matrices the closed-loop circuit is given and the digital references its answers
are compared with. Nothing here touches an instrument.

* :func:`hamiltonian`: the finite-difference 1-D Hamiltonian of a particle in a box with a chosen
  potential (ħ = m = 1, box length 1, hard walls), and :func:`shifted_for_ground_state`, the shift
  c·I − H that makes the lowest state the dominant eigenvector the circuit finds;
* :func:`web_graph` / :func:`google_matrix` / :func:`digital_pagerank`: a seeded small web graph,
  its column-stochastic Google matrix and the PageRank by power iteration;
* :func:`closed_loop_stability`: the solve-mode stability condition of the feedback circuit
  (all eigenvalues of D⁻¹·A_G with positive real parts, D = diag(g_in + Σ_c G_ic)).
"""

from __future__ import annotations

import numpy as np

from xbarlab.errors import ConfigError

POTENTIALS = ("square", "harmonic", "double")


def grid(n: int) -> np.ndarray:
    """Interior grid points x (box length 1, walls at ±0.5) of an n-point discretisation."""
    return (np.arange(1, n + 1) / (n + 1)) - 0.5


def potential(kind: str, x: np.ndarray, depth: float) -> np.ndarray:
    """V(x) in units of ħ²/(m·L²): ``square`` (a well of width 1/2, V = depth outside it),
    ``harmonic`` (depth at the walls), ``double`` (two minima at x = ±0.354, barrier depth at 0)."""
    if kind == "square":
        return np.where(np.abs(x) <= 0.25, 0.0, depth)
    if kind == "harmonic":
        return depth * (2 * x) ** 2
    if kind == "double":
        return depth * (1.0 - 8.0 * x**2) ** 2
    raise ConfigError(f"potential {kind!r}: expected one of {', '.join(POTENTIALS)}")


def hamiltonian(n: int, kind: str, depth: float) -> tuple[np.ndarray, np.ndarray]:
    """(H, x): H = −½·d²/dx² + V(x) by central differences on n interior points (symmetric, n×n)."""
    if n < 3:
        raise ConfigError(f"the Hamiltonian needs at least 3 grid points, got {n}")
    x = grid(n)
    dx = 1.0 / (n + 1)
    kinetic = (np.diag(np.full(n, 2.0)) - np.diag(np.ones(n - 1), 1) - np.diag(np.ones(n - 1), -1)) / (2 * dx**2)
    return kinetic + np.diag(potential(kind, x, depth)), x


def shifted_for_ground_state(h: np.ndarray) -> tuple[np.ndarray, float]:
    """(M, c): M = c·I − H with c = trace(H)/n, the mean of the diagonal.

    The eigenvector circuit grows only modes with eigenvalue above g_λ > 0, so M needs one
    positive eigenvalue, not positive definiteness: c − E₀ > 0 holds because E₀ ≤ trace(H)/n
    (Rayleigh quotient of the uniform vectors e_i). A small shift keeps the measured energy
    E = c − μ precise: an error δμ in the measured eigenvalue is δμ/(c − E₀) relative to it."""
    c = float(np.trace(h)) / h.shape[0]
    return c * np.eye(h.shape[0]) - h, c


def pagerank_system(g: np.ndarray, damping: float) -> tuple[np.ndarray, np.ndarray]:
    """(A, b) of PageRank as one linear system: r = G·r with Σr = 1 is (I − α·S)·r = (1 − α)/n·1.

    A is a column-diagonally dominant M-matrix, so every eigenvalue has a positive real part: the
    closed-loop solve mode settles on it."""
    n = g.shape[0]
    s = (g - (1.0 - damping) / n) / damping
    return np.eye(n) - damping * s, np.full(n, (1.0 - damping) / n)


def web_graph(n: int, seed: int, *, max_links: int = 4) -> np.ndarray:
    """Adjacency L (L[i, j] = 1: page j links to page i) of a seeded directed graph of n pages.

    Every page has 1..max_links out-links, drawn with preferential attachment (a page's chance
    to be linked grows with the links it already has), so the ranks spread like a real web's."""
    if n < 2:
        raise ConfigError(f"a web graph needs at least 2 pages, got {n}")
    rng = np.random.default_rng(seed)
    adj = np.zeros((n, n))
    in_degree = np.ones(n)
    for j in rng.permutation(n):
        k = int(rng.integers(1, min(max_links, n - 1) + 1))
        weights = in_degree.copy()
        weights[j] = 0.0
        targets = rng.choice(n, size=k, replace=False, p=weights / weights.sum())
        adj[targets, j] = 1.0
        in_degree[targets] += 1.0
    return adj


def google_matrix(adj: np.ndarray, damping: float) -> np.ndarray:
    """Column-stochastic G = α·S + (1 − α)/n (S: each page's out-links share its vote; dangling
    pages link to every page). Dominant eigenvalue 1; the others have |λ| ≤ α."""
    n = adj.shape[0]
    out = adj.sum(axis=0)
    s = np.where(out > 0, adj / np.where(out > 0, out, 1.0), 1.0 / n)
    return damping * s + (1.0 - damping) / n


def digital_pagerank(g: np.ndarray, *, tol: float = 1e-13, max_iter: int = 10000) -> np.ndarray:
    """PageRank (sums to 1) by power iteration on the Google matrix."""
    n = g.shape[0]
    r = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        nxt = g @ r
        nxt /= nxt.sum()
        if float(np.abs(nxt - r).sum()) < tol:
            return nxt
        r = nxt
    return r


def top_k_agreement(scores: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    """Fraction of the reference's k highest-scoring items that are also among the k highest of ``scores``."""
    k = min(k, len(reference))
    return len(set(np.argsort(-scores)[:k]) & set(np.argsort(-reference)[:k])) / k


def closed_loop_stability(a_g: np.ndarray, row_conductance: np.ndarray, input_conductance: float) -> float:
    """Smallest real part of the eigenvalues of D⁻¹·A_G (1): the solve mode settles iff it is > 0.

    ``a_g``: the matrix as conductances (S, G⁺ − G⁻); ``row_conductance``: Σ_c G_ic of each row
    (S, all the cells on the row, both columns of each pair); ``input_conductance``: g_in (S)."""
    d = input_conductance + np.asarray(row_conductance, dtype=float)
    return float(np.min(np.linalg.eigvals(a_g / d[:, None]).real))
