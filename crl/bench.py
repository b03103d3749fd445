"""Learner benchmark: updates/s, FLOPs per update and achieved FLOP/s of the jitted K-update call.

``bench_learner('ogbench-crl')`` builds the preset's agent, fills an ``EpisodeRing`` with synthetic random-walk
trajectories, compiles ``Learner.train_call`` (K scanned updates with sampling inside the jit, exactly what
``crl train`` runs) and times it. FLOPs come from XLA's cost analysis of the compiled single-update program and are
cross-checked against :func:`analytic_matmul_gflop` (matmul FLOPs of the forward and backward passes, counted by
hand). The result is one flat dict (the CLI prints it as one JSON line).

Timings on a shared 2-core CPU vary by +-30% with other processes; ``loadavg_1m`` is recorded so that loaded runs
can be told apart.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from crl.agents.crl import PRESETS, TD_LOSSES, CRLConfig
from crl.data.store import EpisodeRing
from crl.runtime import cpu_model
from crl.train.online import Learner, TrainConfig
from crl.types import EnvSpec

# Default updates per jitted call and timed calls per repeat, per preset: about 1-3 s per repeat on 2 CPU cores.
_DEFAULT_K = {"paper-online": 50, "ogbench-crl": 4}
_DEFAULT_CALLS = {"paper-online": 4, "ogbench-crl": 2}


# ----------------------------------------------------------------------------- analytic FLOP count


def _mlp_macs(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> tuple[int, int]:
    """Multiply-accumulates per row of a dense stack: (all layers, first layer)."""
    dims = [in_dim, *hidden] + ([out_dim] if out_dim else [])
    macs = [a * b for a, b in zip(dims[:-1], dims[1:])]
    return sum(macs), macs[0]


def analytic_matmul_gflop(cfg: CRLConfig, spec: EnvSpec, share_psi: bool = True) -> dict[str, float]:
    """Matmul FLOPs of one CRL update (forward + backward), counted by hand, in GFLOP.

    A dense layer with n inputs and m outputs costs 2nm FLOP per row forward, 2nm for its weight gradient and 2nm
    for its input gradient (skipped for a first layer whose input needs no gradient). Per update:

    * critic loss, for each of E critics: phi on B rows of [s, a] and psi on B rows of g (forward, weight and input
      gradients), the B x B x d logits (forward 2B^2 d, backward 4B^2 d: gradients for phi and psi);
    * actor loss, R = 2B rows when ``random_goals == 0.5`` else B: actor MLP forward + backward; phi of each critic
      forward + input gradients down to the action (no weight gradients: the critic is constant here); psi of each
      critic forward only (``actor_psi``), unless ``share_psi`` (the actor's goals are the critic's, as with the
      online sampler, and ``crl.agents.crl.update`` reuses the critic loss's psi; TD losses never share);
    * TD losses add a no-gradient actor pass on the next states and a target-critic pass (phi + psi).

    Elementwise work (activations, LayerNorm, the loss, Adam) is not counted; it is a few percent of the total.
    Returns per-part GFLOP and ``total``.
    """
    e = 2 if cfg.twin_critics else 1
    b, d = cfg.batch_size, cfg.repr_dim
    phi, phi1 = _mlp_macs(spec.obs_dim + spec.act_dim, cfg.hidden_sizes, d)
    psi, psi1 = _mlp_macs(spec.goal_dim, cfg.hidden_sizes, d)
    heads = 2 * spec.act_dim if cfg.policy == "tanh_gaussian" else spec.act_dim
    act, act1 = _mlp_macs(spec.obs_dim + spec.goal_dim, cfg.actor_hidden_sizes, heads)
    r = 2 * b if cfg.random_goals == 0.5 else b
    parts = {
        "critic_encoders": e * b * 2 * (3 * phi - phi1 + 3 * psi - psi1),
        "critic_logits": e * 3 * 2 * b * b * d,
        "actor": r * 2 * (3 * act - act1),
        "actor_phi": e * r * 2 * 2 * phi,
        "actor_psi": 0 if share_psi and cfg.loss not in TD_LOSSES else e * r * 2 * psi,
    }
    if cfg.loss in TD_LOSSES:
        parts["td_target"] = b * 2 * act + e * b * 2 * (phi + psi)
    out = {k: v / 1e9 for k, v in parts.items()}
    out["total"] = sum(out.values())
    return out


# ----------------------------------------------------------------------------- helpers


def synthetic_store(
    obs_dim: int, act_dim: int, episodes: int, horizon: int = 50, seed: int = 0, step: float = 0.1
) -> EpisodeRing:
    """An ``EpisodeRing`` holding ``episodes`` random-walk episodes (uniform actions in [-1, 1])."""
    rng = np.random.default_rng(seed)
    store = EpisodeRing(episodes * horizon, horizon, obs_dim, act_dim)
    start = rng.normal(size=(episodes, 1, obs_dim))
    obs = start + np.cumsum(step * rng.normal(size=(episodes, horizon + 1, obs_dim)), axis=1)
    actions = rng.uniform(-1.0, 1.0, size=(episodes, horizon, act_dim))
    store.add(obs.astype(np.float32), actions.astype(np.float32))
    return store


def _flops(compiled) -> float:
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):  # older jax returns one dict per computation
        ca = ca[0]
    return float(ca.get("flops", float("nan")))


def matmul_ceiling_gflops(sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5) -> dict[str, float]:
    """Measured fp32 ``jnp.dot`` rate of square n x n matrices in this process (median of ``repeats``), GFLOP/s."""
    out = {}
    for n in sizes:
        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
        f = jax.jit(jnp.dot)
        f(a, b).block_until_ready()
        inner = max(1, int(4e9 // (2 * n**3)))  # ~4 GFLOP per timing
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                c = f(a, b)
            c.block_until_ready()
            times.append((time.perf_counter() - t0) / inner)
        out[str(n)] = 2 * n**3 / statistics.median(times) / 1e9
    return out


def threads_info() -> dict[str, Any]:
    """CPU and threading facts that change timings."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = os.cpu_count()
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


# ----------------------------------------------------------------------------- the benchmark


def bench_learner(
    preset: str,
    obs_dim: int = 29,
    act_dim: int = 8,
    updates_per_call: int | None = None,
    calls: int | None = None,
    repeats: int = 5,
    seed: int = 0,
    goal_dim: int | None = None,
    overrides: dict | None = None,
    ceiling_sizes: tuple[int, ...] = (1024, 2048),
) -> dict[str, Any]:
    """Times ``Learner.train_call`` (K updates per jitted call) for a preset of :data:`crl.agents.crl.PRESETS`.

    Args:
      preset: 'paper-online', 'ogbench-crl' (or any other preset name).
      obs_dim, act_dim: synthetic data dims; default 29 / 8 (OGBench antmaze, the paper's ant without velocities).
      updates_per_call: K updates per jitted call (default 50 for paper-online, 4 for ogbench-crl).
      calls: jitted calls per timed repeat (default 4 / 2).
      repeats: timed repeats; the reported rate is their median.
      goal_dim: goal width, a prefix of the observation (default obs_dim: full-state goals, as OGBench).
      overrides: CRLConfig fields replaced on top of the preset (e.g. small hidden sizes for tests).
      ceiling_sizes: square matmul sizes for the fp32 ceiling (the best one is reported); () skips it.

    Returns a flat dict: preset, config and data dims, ``updates_per_s`` (median), ``updates_per_s_all``,
    ``gflop_per_update`` (XLA cost analysis of one compiled update incl. sampling), ``gflop_per_update_analytic``
    (matmul FLOPs, :func:`analytic_matmul_gflop`), ``gflops`` (achieved), ``matmul_ceiling_gflops`` (best of
    1024^2 and 2048^2 jnp.dot), ``fraction_of_ceiling``, compile seconds, device, versions and thread info.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    cfg = replace(PRESETS[preset], **(overrides or {}))
    cfg.validate()
    k = updates_per_call or _DEFAULT_K.get(preset, 10)
    calls = calls or _DEFAULT_CALLS.get(preset, 2)
    goal_dim = obs_dim if goal_dim is None else goal_dim
    spec = EnvSpec(obs_dim, goal_dim, act_dim, 0, goal_dim)
    info = threads_info()

    store = synthetic_store(obs_dim, act_dim, episodes=max(2 * cfg.batch_size, 256), seed=seed)
    learner = Learner(TrainConfig(agent="crl", crl=cfg, updates_per_call=k, seed=seed), spec)
    key = jax.random.PRNGKey(seed)
    k_init, key = jax.random.split(key)
    state = jax.jit(learner.init)(k_init)  # one compile instead of many eager ops

    # FLOPs of one update (sampling included). XLA's cost analysis counts a while-loop body once, whatever its
    # trip count, so it is taken from a K = 1 program rather than from the scanned call.
    t0 = time.perf_counter()
    compiled = learner.compile_train_call(state, store.traj, key)
    compile_s = time.perf_counter() - t0
    if k == 1:
        flop = _flops(compiled)
    else:
        one = Learner(TrainConfig(agent="crl", crl=cfg, updates_per_call=1, seed=seed), spec)
        flop = _flops(one.compile_train_call(state, store.traj, key))

    state, metrics = compiled(state, store.traj, key)  # warm-up
    jax.block_until_ready((state, metrics))
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            key, k_call = jax.random.split(key)
            state, metrics = compiled(state, store.traj, k_call)
        jax.block_until_ready((state, metrics))
        rates.append(k * calls / (time.perf_counter() - t0))
    finite = bool(all(np.isfinite(float(v)) for v in metrics.values()))

    ups = statistics.median(rates)
    gflop = flop / 1e9
    analytic = analytic_matmul_gflop(cfg, spec)
    out: dict[str, Any] = {
        "preset": preset,
        "overrides": {k_: list(v) if isinstance(v, tuple) else v for k_, v in (overrides or {}).items()},
        "batch_size": cfg.batch_size,
        "hidden_sizes": list(cfg.hidden_sizes),
        "repr_dim": cfg.repr_dim,
        "twin_critics": cfg.twin_critics,
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "goal_dim": goal_dim,
        "updates_per_call": k,
        "calls": calls,
        "repeats": repeats,
        "updates_per_s": round(ups, 3),
        "updates_per_s_all": [round(r, 3) for r in rates],
        "ms_per_update": round(1e3 / ups, 3),
        "gflop_per_update": round(gflop, 4),
        "gflop_per_update_analytic": round(analytic["total"], 4),
        "gflops": round(gflop * ups, 2),
        "compile_s": round(compile_s, 2),
        "metrics_finite": finite,
    }
    if ceiling_sizes:
        ceil = matmul_ceiling_gflops(tuple(ceiling_sizes))
        best = max(ceil.values())
        out["matmul_ceiling_gflops"] = round(best, 1)
        out["matmul_gflops_by_size"] = {n: round(v, 1) for n, v in ceil.items()}
        out["fraction_of_ceiling"] = round(gflop * ups / best, 3)
    out.update(
        device=jax.devices()[0].platform,
        device_kind=jax.devices()[0].device_kind,
        jax_version=jax.__version__,
        python=platform.python_version(),
        **info,
    )
    out["loadavg_1m_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return out
