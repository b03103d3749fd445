"""crl.bench: the learner benchmark runs, reports its keys, and XLA's FLOP count agrees with the hand count."""

import json

import pytest

from crl.agents.crl import PRESETS
from crl.bench import analytic_matmul_gflop, bench_learner
from crl.types import EnvSpec

SMALL = dict(batch_size=64, hidden_sizes=(128, 128), actor_hidden_sizes=(128, 128), repr_dim=32)

KEYS = {
    "preset",
    "batch_size",
    "obs_dim",
    "act_dim",
    "updates_per_call",
    "updates_per_s",
    "gflop_per_update",
    "gflop_per_update_analytic",
    "gflops",
    "matmul_ceiling_gflops",
    "fraction_of_ceiling",
    "device",
    "jax_version",
    "cpu",
    "cpu_affinity",
    "xla_flags",
}


def test_bench_learner_small():
    # ogbench-crl exercises twin critics, LayerNorm, GELU and the DDPG+BC actor. K = 1 compiles one program (reused
    # for the FLOP count), and a 512^2 matmul stands in for the ceiling: a few seconds on 2 cores.
    preset = "ogbench-crl"
    out = bench_learner(
        preset, obs_dim=4, act_dim=2, updates_per_call=1, calls=2, repeats=2, overrides=SMALL, ceiling_sizes=(512,)
    )
    assert KEYS <= set(out)
    json.dumps(out)  # the CLI prints it as one JSON line
    assert out["preset"] == preset and out["batch_size"] == 64 and out["obs_dim"] == 4
    assert out["updates_per_s"] > 0 and out["gflops"] > 0 and out["matmul_ceiling_gflops"] > 0
    assert out["metrics_finite"]
    # XLA counts every op, the hand count only matmuls: GELU, LayerNorm, the loss and Adam add ~10-20% at width 128.
    ratio = out["gflop_per_update"] / out["gflop_per_update_analytic"]
    assert 0.9 < ratio < 1.3, ratio


def test_analytic_count_full_size():
    # Full ogbench-crl at antmaze dims: OGBench's own update is ~39.5 GFLOP (psi of the actor's goals recomputed).
    spec = EnvSpec(29, 29, 8)
    full = analytic_matmul_gflop(PRESETS["ogbench-crl"], spec, share_psi=False)["total"]
    shared = analytic_matmul_gflop(PRESETS["ogbench-crl"], spec)["total"]
    assert 38.5 < full < 40.5
    assert shared == pytest.approx(full - 3.282, abs=0.01)
    # paper-online: the actor sees 2B rows (own and another row's goal)
    parts = analytic_matmul_gflop(PRESETS["paper-online"], spec)
    assert 0.6 < parts["total"] < 0.8 and parts["actor_psi"] == 0


def test_unknown_preset():
    with pytest.raises(ValueError):
        bench_learner("nope")
