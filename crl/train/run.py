"""A finished (or interrupted) run loaded back from disk: its config, summary, policy and critic."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from crl.agents import crl as crl_agent
from crl.agents import td3 as td3_agent
from crl.envs import make_vec_env
from crl.train.checkpoint import checkpoint_path, latest_checkpoint, list_checkpoints, load_checkpoint
from crl.train.io import read_json
from crl.train.online import Learner, TrainConfig, env_spec, evaluate, is_offline, load_config
from crl.types import EnvSpec


@dataclass
class Run:
    """A run directory's newest checkpoint, ready to act.

    ``policy(obs, goal)`` returns deterministic actions; ``critic(obs, action, goal)`` the critic's value
    f(s, a, g) (CRL; TD3: the twin-min Q). Inputs may be one vector or a batch ``[N, dim]``; outputs match.
    """

    run_dir: Path
    config: TrainConfig
    state: Any
    env_steps: int
    learner: Learner

    @property
    def summary(self) -> dict | None:
        """summary.json of a finished run, else None."""
        path = self.run_dir / "summary.json"
        return read_json(path) if path.exists() else None

    @functools.cached_property
    def _key(self) -> jax.Array:
        return jax.random.key(0)  # unused by the deterministic policy; made once (a new key costs ~0.1 ms a call)

    def policy(self, obs, goal) -> np.ndarray:
        """Deterministic action(s) ``[..., act_dim]`` for observation(s) and goal(s)."""
        obs, goal, single = _batched(obs, goal)
        act = np.asarray(self.learner.policy(self.state.actor, obs, goal, self._key, deterministic=True))
        return act[0] if single else act

    def critic(self, obs, action, goal) -> np.ndarray:
        """f(s, a, g) ``[...]`` (twin critics reduced as in the actor; TD3: min of the twin Q(s, a, g))."""
        if self.config.agent not in ("crl", "td3"):
            raise ValueError(f"a {self.config.agent} run has no critic")
        obs, goal, single = _batched(obs, goal)
        action = jnp.atleast_2d(jnp.asarray(action, jnp.float32))
        if self.config.agent == "td3":
            sag = jnp.concatenate([obs, action, goal], -1)
            q = td3_agent.make_critic(self.config.td3, self.learner.spec).apply(self.state.critic, sag)
            out = np.asarray(jnp.min(q, axis=0))
            return out[0] if single else out
        cfg = self.config.crl
        sa = jnp.concatenate([obs, action], -1)
        values = crl_agent.critic_value(cfg, self.state.critic, sa, goal, spec=self.learner.spec)
        out = np.asarray(crl_agent.losses.reduce_twin(values, cfg.twin_reduce))
        return out[0] if single else out

    def evaluate(self, episodes: int | None = None, seed: int = 12345) -> dict[str, float]:
        """Runs ``episodes`` deterministic episodes in parallel; returns success, success_final, distances.
        Offline (OGBench) runs: ``episodes`` per task on the env's 5 tasks; returns OGBench's ``success`` (mean over
        tasks of success at the episode's end), ``success_any`` and ``task{k}_success``."""
        n = episodes or self.config.eval_episodes
        if n <= 0:
            raise ValueError(f"episodes must be > 0, got {n}")
        if is_offline(self.config):
            from crl.data.ogbench_data import env_id
            from crl.envs.ogbench_env import NUM_TASKS, OGBenchEvaluator, PortablePolicy

            evaluator = OGBenchEvaluator(env_id(self.config.env), min(NUM_TASKS * n, self.config.eval_envs),
                                         workers=self.config.eval_workers)
            try:
                return evaluator.evaluate(PortablePolicy(self.learner.eval_policy, self.state.actor), n, seed)
            finally:
                evaluator.close()
        env = make_vec_env(self.config.env, n, seed=seed)
        return evaluate(env, lambda o, g: self.policy(o, g), seed=seed)


def _batched(obs, goal):
    """Host arrays ``[N, dim]`` (a jitted call takes them as they are; jnp conversions here cost ~0.2 ms a call)."""
    obs = np.asarray(obs, np.float32)
    goal = np.asarray(goal, np.float32)
    single = obs.ndim == 1
    return np.atleast_2d(obs), np.atleast_2d(goal), single


def run_spec(cfg: TrainConfig) -> EnvSpec:
    """The agent's shapes for a config, from its env (no dataset needed; OGBench goals are full observations)."""
    if is_offline(cfg):
        from crl.data.ogbench_data import env_id
        from crl.envs.ogbench_env import env_dims

        obs_dim, act_dim = env_dims(env_id(cfg.env))
        return EnvSpec(obs_dim, obs_dim, act_dim)
    return env_spec(make_vec_env(cfg.env, 1))


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """Loads a run directory: config.json and its newest valid checkpoint, or the checkpoint written at ``step``
    (env steps; offline runs: updates), e.g. the one an ``eval.csv`` row was evaluated with."""
    run_dir = Path(run_dir)
    cfg = load_config(run_dir)
    if latest_checkpoint(run_dir) is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint")
    source: Path = run_dir
    if step is not None:
        source = checkpoint_path(run_dir, step)
        if not source.exists():
            kept = ", ".join(p.stem.removeprefix("ckpt_").lstrip("0") or "0" for p in list_checkpoints(run_dir))
            raise FileNotFoundError(f"{run_dir} has no checkpoint at step {step} (kept: {kept})")
    learner = Learner(cfg, run_spec(cfg))
    template = (learner.init(jax.random.key(0)), jax.random.key(0))
    step, (state, _), _ = load_checkpoint(source, template)
    return Run(run_dir, cfg, state, step, learner)
