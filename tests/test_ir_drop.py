"""The line-by-line iterative IR-drop solver against the exact sparse-LU nodal solve."""

from __future__ import annotations

import numpy as np
import pytest

from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.devices import make_device
from xbarlab.sim.ir_drop import LineNetwork


def pair(rows, cols, r_wire=0.35, kind="1T1R", seed=3, **kw):
    """The same array twice: exact LU and iterative line solver (read noise off)."""
    make = lambda solver: CrossbarModel(rows, cols, make_device("rram", read_noise=0.0), seed=seed,  # noqa: E731
                                        wire_resistance=r_wire, kind=kind, ir_solver=solver, **kw)
    return make("exact"), make("iterative")


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (24, 40), (40, 24)])
def test_iterative_matches_exact_forward_and_transpose(shape):
    rows, cols = shape
    exact, it = pair(rows, cols)
    rng = np.random.default_rng(4)
    for _ in range(3):
        v = rng.uniform(-0.3, 0.3, rows)
        ref = exact.column_currents(v)
        np.testing.assert_allclose(it.column_currents(v), ref, rtol=0, atol=1e-8 * np.abs(ref).max())
        u = rng.uniform(-0.3, 0.3, cols)
        ref_t = exact.row_currents(u)
        np.testing.assert_allclose(it.row_currents(u), ref_t, rtol=0, atol=1e-8 * np.abs(ref_t).max())


def test_iterative_matches_exact_with_large_drop_and_non_ohmic_cells():
    # 100 Ω segments: the IR drop is tens of percent; 0.9 V drive: sinh is 13 % above ohmic
    exact, it = pair(12, 10, r_wire=100.0)
    v = np.linspace(-0.9, 0.9, 12)
    ref = exact.column_currents(v)
    ideal = exact.conductance_map().T @ np.sinh(v)
    assert np.max(np.abs(ref - ideal)) > 0.05 * np.abs(ideal).max()  # the drop is large here
    np.testing.assert_allclose(it.column_currents(v), ref, rtol=0, atol=1e-9 * np.abs(ref).max())


def test_passive_sneak_paths_match_exact():
    exact, it = pair(10, 12, r_wire=2.0, kind="passive")
    for r, c in [(0, 0), (9, 11), (4, 7)]:
        assert it.cell_current(r, c, 0.4, noise=False) == pytest.approx(exact.cell_current(r, c, 0.4, noise=False),
                                                                         rel=1e-9)


def test_new_state_after_pulses_is_solved_again():
    _, it = pair(16, 16)
    v = np.full(16, 0.2)
    before = it.column_currents(v)
    it.apply_pulses(np.arange(16), np.zeros(16, dtype=int), 1.5, 1e-6)  # column 0 moves up
    after = it.column_currents(v)
    assert after[0] > before[0] * 1.01
    np.testing.assert_allclose(after[1:], before[1:], rtol=1e-4)  # only through the shared row wires


def test_auto_uses_line_solver_above_128_drive_lines_and_agrees_with_exact():
    # 130 x 6: just above the transfer-matrix limit; the exact LU is cheap at this size
    exact, auto = pair(130, 6)
    auto = CrossbarModel(130, 6, make_device("rram", read_noise=0.0), seed=3, wire_resistance=0.35)
    v = np.random.default_rng(5).uniform(-0.2, 0.2, 130)
    ref = exact.column_currents(v)
    np.testing.assert_allclose(auto.column_currents(v), ref, rtol=0, atol=1e-8 * np.abs(ref).max())
    assert any(k.startswith("L") for k in auto._cache)


def test_bad_solver_name_and_wireless_network_are_refused():
    with pytest.raises(ValueError, match="ir_solver"):
        CrossbarModel(2, 2, make_device("rram"), ir_solver="fast")
    with pytest.raises(ValueError, match="wire_resistance"):
        LineNetwork(np.ones((2, 2)) * 1e-5, 0.0)


def test_station_selects_the_solver_and_refuses_an_unknown_one():
    from xbarlab.errors import ConfigError
    from xbarlab.sim.bench import SimBench

    bench = SimBench({"array": {"rows": 4, "cols": 4, "ir_solver": "exact"}}, [])
    assert bench.model.ir_solver == "exact"
    with pytest.raises(ConfigError, match=r"ir_solver.*one of auto, exact, iterative"):
        SimBench({"array": {"rows": 4, "cols": 4, "ir_solver": "fast"}}, [])


def test_lazy_transfer_matrix_matches_exact_on_partial_and_full_drives_and_after_pulses():
    # ohmic cells (v0 huge): the transfer-matrix path is then the exact linear network
    make = lambda solver: CrossbarModel(20, 12, make_device("rram", read_noise=0.0), seed=6,  # noqa: E731
                                        wire_resistance=0.35, ir_solver=solver, v0=1e6)
    exact, auto = make("exact"), make("auto")
    rng = np.random.default_rng(7)
    for _ in range(2):
        for active in (3, 20):  # a few rows first (K columns solved lazily), then every row
            v = np.zeros(20)
            v[:active] = rng.uniform(-0.2, 0.2, active)
            ref = exact.column_currents(v)
            np.testing.assert_allclose(auto.column_currents(v), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
            u = rng.uniform(-0.2, 0.2, 12)
            ref_t = exact.row_currents(u)
            np.testing.assert_allclose(auto.row_currents(u), ref_t, rtol=0, atol=1e-10 * np.abs(ref_t).max())
        for m in (exact, auto):
            m.apply_pulses(np.arange(5), np.arange(5), 1.4, 1e-6)


def test_learned_transfer_solves_only_new_directions_and_completes_to_the_exact_matrix():
    from xbarlab.sim.transfer import LearnedTransfer

    rng = np.random.default_rng(8)
    k_true = rng.normal(size=(5, 6))
    calls = []

    def solve(r):
        calls.append(r.copy())
        return k_true @ r

    lt = LearnedTransfer(6, 5)
    v = rng.normal(size=6)
    np.testing.assert_allclose(lt.apply(v, solve), k_true @ v, rtol=1e-12)
    np.testing.assert_allclose(lt.apply(2.5 * v, solve), k_true @ (2.5 * v), rtol=1e-12)  # in the span: no solve
    assert len(calls) == 1 and lt.rank == 1 and lt.matrix is None
    for _ in range(5):
        w = rng.normal(size=6)
        np.testing.assert_allclose(lt.apply(w, solve), k_true @ w, rtol=1e-10)
    assert len(calls) == 6 and lt.matrix is not None
    np.testing.assert_allclose(lt.matrix, k_true, rtol=0, atol=1e-12 * np.abs(k_true).max())
    lt.apply(rng.normal(size=6), solve)
    assert len(calls) == 6


@pytest.mark.parametrize("solver", ["auto", "transfer"])
def test_transfer_path_matches_the_exact_linear_network_input_after_input(solver):
    # ohmic cells: the learned transfer matrix is the exact linear network, before and after it is complete
    make = lambda s: CrossbarModel(12, 9, make_device("rram", read_noise=0.0), seed=9,  # noqa: E731
                                   wire_resistance=0.35, ir_solver=s, v0=1e6)
    exact, fast = make("exact"), make(solver)
    rng = np.random.default_rng(10)
    for k in range(16):
        v = rng.uniform(-0.2, 0.2, 12) if k % 3 else np.full(12, 0.1)  # a repeated input every third time
        ref = exact.column_currents(v)
        np.testing.assert_allclose(fast.column_currents(v), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    learned = fast._cache["Tfwd"][2]
    assert learned.matrix is not None and learned.solves <= 12


@pytest.mark.parametrize(("r_wire", "solver"), [(0.0, "auto"), (0.35, "auto"), (0.35, "exact")])
def test_row_by_row_reads_equal_one_drive_at_a_time(r_wire, solver):
    # READ_ALL's batched physics against the per-row MVMs it replaces: same values, same random draws
    make = lambda: CrossbarModel(10, 7, make_device("rram"), seed=12, wire_resistance=r_wire,  # noqa: E731
                                 ir_solver=solver)
    batched, single = make(), make()
    got = batched.row_read_currents(np.arange(2, 9), 0.2)
    drive = np.zeros(10)
    for k, r in enumerate(range(2, 9)):
        drive[r] = 0.2
        one = single.column_currents(drive)
        if r_wire == 0:  # ideal wires: bit for bit
            np.testing.assert_array_equal(got[k], one)
        np.testing.assert_allclose(got[k], one, rtol=0, atol=1e-12 * np.abs(got).max())
        drive[r] = 0.0
    assert batched.rng.standard_normal() == single.rng.standard_normal()  # the generators agree afterwards


@pytest.mark.parametrize(("r_wire", "kind"), [(0.35, "1T1R"), (0.0, "1T1R"), (2.0, "1T1R"), (0.35, "passive")])
def test_batched_cell_reads_equal_one_cell_at_a_time_bit_for_bit(r_wire, kind):
    make = lambda: CrossbarModel(9, 8, make_device("rram"), seed=13, wire_resistance=r_wire, kind=kind)  # noqa: E731
    batched, single = make(), make()
    rng = np.random.default_rng(14)
    rows, cols = rng.integers(0, 9, 25), rng.integers(0, 8, 25)
    got = batched.cell_currents(rows, cols, 0.3)
    want = [single.cell_current(int(r), int(c), 0.3) for r, c in zip(rows, cols, strict=True)]
    np.testing.assert_array_equal(got, want)
    assert batched.rng.standard_normal() == single.rng.standard_normal()


def test_learned_transfer_learns_a_few_driven_lines_in_one_batch():
    from xbarlab.sim.transfer import LearnedTransfer

    rng = np.random.default_rng(15)
    k_true = rng.normal(size=(4, 20))
    batches = []

    def solve_lines(lines):
        batches.append(list(lines))
        return k_true[:, lines]

    lt = LearnedTransfer(20, 4)
    for _ in range(10):  # inputs on lines 3, 7 and 11 only: one batch of three columns, then products
        v = np.zeros(20)
        v[[3, 7, 11]] = rng.normal(size=3)
        np.testing.assert_allclose(lt.apply(v, lambda r: pytest.fail("no single solve"), solve_lines), k_true @ v,
                                   rtol=1e-12)
    assert batches == [[3, 7, 11]] and lt.rank == 3
    np.testing.assert_allclose(lt.columns(np.array([7, 3]), solve_lines), k_true[:, [7, 3]], rtol=1e-12)
    np.testing.assert_allclose(lt.columns(np.array([5]), solve_lines), k_true[:, [5]], rtol=1e-12)
    assert batches == [[3, 7, 11], [5]]
