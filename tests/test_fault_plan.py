"""The simulator's fault plan behaves like a real intermittent fault (issue 11 §2)."""

from __future__ import annotations

import numpy as np

from xbarlab.sim.faults import FaultPlan

REPLY = b"+1.000000E-01,+8.726415E-06\n"


def _pattern(plan, n=200):
    return [plan.mangle_reply(REPLY) != REPLY for _ in range(n)]


def test_two_plans_with_the_same_seed_do_not_fault_at_the_same_points():
    a, b = FaultPlan(corrupt_probability=0.3, seed=4), FaultPlan(corrupt_probability=0.3, seed=4)
    assert a.entropy != b.entropy
    pa, pb = _pattern(a), _pattern(b)
    assert 20 < sum(pa) < 100 and pa != pb


def test_recorded_entropy_repeats_a_plan_exactly():
    a = FaultPlan(corrupt_byte_probability=0.05, drop_byte_probability=0.05, seed=4)
    b = FaultPlan(corrupt_byte_probability=0.05, drop_byte_probability=0.05, seed=4, entropy=a.entropy)
    assert [a.mangle_reply(REPLY) for _ in range(100)] == [b.mangle_reply(REPLY) for _ in range(100)]


def test_line_noise_hits_bytes_at_the_given_rate_and_keeps_the_terminator():
    plan = FaultPlan(corrupt_byte_probability=0.01, drop_byte_probability=0.01)
    body = len(REPLY) - 1
    flipped = dropped = 0
    n = 4000
    for _ in range(n):
        out = plan.mangle_reply(REPLY)
        assert out.endswith(b"\n")
        dropped += len(REPLY) - len(out)
        if len(out) == len(REPLY):
            flipped += int(np.count_nonzero(np.frombuffer(out, np.uint8) != np.frombuffer(REPLY, np.uint8)))
    assert 0.006 < dropped / (n * body) < 0.014
    assert 0.005 < flipped / (n * body) < 0.014
