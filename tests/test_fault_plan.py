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


def test_each_session_draws_new_faults_and_logs_their_entropy(tmp_path):
    """The same [sim.faults] table in two runs (or a retry's new session): different faults, both logged."""
    from xbarlab.campaigns.runner import CampaignRunner
    from xbarlab.campaigns.spec import load_campaign
    from xbarlab.logbook import LogReader
    from xbarlab.sim.stations import sim_station_text

    (tmp_path / "bench.toml").write_text(sim_station_text(4, 4, seed=2) + "[sim.faults.smu1]\n"
                                         "corrupt_probability = 0.3\nseed = 1\n")
    (tmp_path / "camp.toml").write_text('[campaign]\nname = "f"\nstation = "bench.toml"\n\n[[steps]]\n'
                                        'type = "iv_sweep"\n[steps.params]\nrow = 1\ncol = 1\npoints = 5\n')
    entropies, transcripts = [], []
    for k in range(2):
        log = tmp_path / f"{k}.h5"
        assert CampaignRunner(load_campaign(tmp_path / "camp.toml"), log).run().status == "completed"
        reader = LogReader(log)
        opened = reader.steps("session-1")[0]["info"]
        entropies.append(opened["sim_fault_entropy"]["smu1"])
        run = next(r["run_id"] for r in reader.runs() if r["kind"] == "iv_sweep" and r["status"] == "completed")
        transcripts.append([e.data for e in reader.transcript(run) if e.link == "smu1" and e.code == "r"])
    assert entropies[0] != entropies[1]
    assert transcripts[0] != transcripts[1]  # the faults fell elsewhere
