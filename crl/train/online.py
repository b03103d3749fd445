"""Online training: vectorised collection and jitted learning, alternating at a fixed update-to-data ratio.

One run reads top to bottom in ``train``: build env, store and agent; then repeat {collect one episode in each of
the N envs, insert it, run the updates owed} with evaluations and checkpoints at episode boundaries, so a resumed
run continues exactly where its checkpoint was taken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from crl.agents import AGENTS, get_agent
from crl.agents import common
from crl.agents.crl import CRLConfig
from crl.agents.gcbc import GCBCConfig
from crl.agents.td3 import TD3Config, check_spec as check_td3_spec
from crl.data.ogbench_data import is_ogbench_dataset
from crl.data.store import ACTOR_GOALS, GOAL_STYLES, EpisodeRing, GoalSampler
from crl.envs import make_vec_env
from crl.envs.base import VecGoalEnv
from crl.runtime import machine_info, numerics_differences
from crl.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from crl.train.io import read_json, write_json_atomic
from crl.train.logger import RunLogger, WandbSettings, truncate_eval_csv
from crl.types import EnvSpec


class ConfigError(ValueError):
    """A configuration that cannot run (the message names the field)."""


class DivergenceError(RuntimeError):
    """A non-finite loss; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    """One online training run."""

    env: str = "point_U"
    """Environment (see `crl envs`), or an OGBench dataset name (e.g. pointmaze-medium-navigate-v0) to train
    offline on that dataset and evaluate on its env's 5 tasks."""
    agent: Literal["crl", "gcbc", "td3"] = "crl"
    """Agent: crl, gcbc or td3 (TD3+HER, online on envs with a distance-threshold success test)."""
    steps: int = 50_000
    """Online: total environment steps (summed over the parallel envs; the paper trains for 1M). Offline: gradient
    updates (OGBench: 1M)."""
    seed: int = 0
    """Random seed (network init, sampling, envs)."""
    run_dir: Path | None = None
    """Output directory; default runs/{env}_{agent}_s{seed}_{time}."""
    force: bool = False
    """Overwrite an existing run directory."""
    dataset: Path | None = None
    """Offline: the OGBench .npz file to train on (its -val.npz beside it is loaded too); default DATA_DIR/ENV.npz."""
    data_dir: Path | None = None
    """Offline: directory holding OGBench datasets as NAME.npz and NAME-val.npz (default ~/.ogbench/data)."""
    goal_sampling: Literal["paper", "ogbench"] = "paper"
    """paper: distinct trajectories per batch, truncated geometric offset, final obs may be a goal; ogbench:
    OGBench's sampler (uniform rows, geometric offset capped at the last state, final obs never sampled)."""
    actor_goals: Literal["same", "uniform"] = "same"
    """The actor's goals: the critic's (same) or uniform over the same trajectory's future (OGBench)."""
    actor_random_goals: float = 0.0
    """Probability that an actor goal is replaced by a random dataset state (OGBench stitch datasets: 0.5)."""
    num_envs: int = 4
    """Online: parallel environments stepped in lock-step (the paper uses 4 actors)."""
    warmup_steps: int = 10_000
    """Online: uniform-random actions, and no learning, until this many env steps are stored."""
    updates_per_step: float = 1.0
    """Online: gradient steps per environment step (the paper: one batch-256 step per env step)."""
    updates_per_call: int = 64
    """Gradient steps scanned inside one jitted call (a speed knob, not the UTD ratio)."""
    buffer_size: int = 1_000_000
    """Online: replay capacity in transitions (FIFO over whole episodes)."""
    eval_every: int = 10_000
    """Evaluate (and checkpoint) every this many env steps (offline: updates)."""
    checkpoint_every: int = 0
    """Also checkpoint every this many env steps (offline: updates) between evaluations; 0 = only at evaluations."""
    eval_episodes: int = 100
    """Evaluation episodes (deterministic policy, run in parallel); offline: episodes per OGBench task."""
    eval_envs: int = 50
    """Offline: OGBench env copies stepped in lock-step during evaluation (each starts a new episode when one ends)."""
    eval_workers: int = 2
    """Offline: processes that step the evaluation env copies and run the policy for them (0 = all in this process)."""
    checkpoints_kept: int = 2
    """How many checkpoints to keep in run_dir/checkpoints."""
    log_every: int = 1_000
    """Write training metrics to TensorBoard every this many gradient steps."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    wandb_project: str | None = None
    """Log to Weights & Biases under this project (None = off)."""
    wandb_mode: Literal["online", "offline"] = "offline"
    """W&B mode; offline writes run_dir/wandb for a later `wandb sync`."""
    progress: bool = True
    """Show a progress bar on stderr."""
    crl: CRLConfig = field(default_factory=CRLConfig)
    """CRL hyperparameters (used when agent=crl)."""
    gcbc: GCBCConfig = field(default_factory=GCBCConfig)
    """GCBC hyperparameters (used when agent=gcbc)."""
    td3: TD3Config = field(default_factory=TD3Config)
    """TD3+HER hyperparameters (used when agent=td3)."""

    @property
    def agent_config(self):
        return getattr(self, self.agent)


def validate(cfg: TrainConfig, env: VecGoalEnv | None = None) -> None:
    """Raises ConfigError naming the first impossible field."""
    if cfg.agent not in AGENTS:
        raise ConfigError(f"unknown agent {cfg.agent!r}; known agents: {', '.join(AGENTS)}")
    acfg = cfg.agent_config
    checks = [
        (cfg.steps > 0, f"steps must be > 0, got {cfg.steps}"),
        (cfg.num_envs > 0, f"num_envs must be > 0, got {cfg.num_envs}"),
        (cfg.warmup_steps >= 0, f"warmup_steps must be >= 0, got {cfg.warmup_steps}"),
        (cfg.updates_per_step > 0, f"updates_per_step must be > 0, got {cfg.updates_per_step}"),
        (cfg.updates_per_call > 0, f"updates_per_call must be > 0, got {cfg.updates_per_call}"),
        (cfg.eval_every > 0, f"eval_every must be > 0, got {cfg.eval_every}"),
        (cfg.eval_episodes > 0, f"eval_episodes must be > 0, got {cfg.eval_episodes}"),
        (cfg.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {cfg.checkpoint_every}"),
        (cfg.checkpoints_kept > 0, f"checkpoints_kept must be > 0, got {cfg.checkpoints_kept}"),
        (cfg.log_every > 0, f"log_every must be > 0, got {cfg.log_every}"),
        (cfg.eval_envs > 0, f"eval_envs must be > 0, got {cfg.eval_envs}"),
        (cfg.eval_workers >= 0, f"eval_workers must be >= 0, got {cfg.eval_workers}"),
        (0.0 <= cfg.actor_random_goals <= 1.0, f"actor_random_goals must be in [0, 1], got {cfg.actor_random_goals}"),
        (cfg.goal_sampling in GOAL_STYLES, f"goal_sampling must be one of {GOAL_STYLES}, got {cfg.goal_sampling!r}"),
        (cfg.actor_goals in ACTOR_GOALS, f"actor_goals must be one of {ACTOR_GOALS}, got {cfg.actor_goals!r}"),
        (
            is_offline(cfg) or acfg.batch_size <= cfg.buffer_size,
            f"batch_size ({acfg.batch_size}) is larger than the buffer (buffer_size={cfg.buffer_size})",
        ),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(msg)
    if cfg.agent == "td3" and is_offline(cfg):
        raise ConfigError("agent td3 trains online only (its HER reward needs the env's success test); "
                          "use crl or gcbc on OGBench datasets")
    try:
        acfg.validate()
    except ValueError as e:
        raise ConfigError(f"{cfg.agent}: {e}") from None
    if env is not None and cfg.agent == "td3":
        try:
            check_td3_spec(env_spec(env))
        except ValueError as e:
            raise ConfigError(f"{cfg.env}: {e}") from None
    if env is not None and cfg.buffer_size < cfg.num_envs * env.horizon:
        raise ConfigError(
            f"buffer_size ({cfg.buffer_size}) must hold one episode per env: >= num_envs*horizon = "
            f"{cfg.num_envs * env.horizon}"
        )


def is_offline(cfg: TrainConfig) -> bool:
    """True when ``cfg.env`` names an OGBench dataset (offline training)."""
    return is_ogbench_dataset(cfg.env)


def env_spec(env: VecGoalEnv) -> EnvSpec:
    """The shapes an agent needs from an env."""
    return EnvSpec(env.obs_dim, env.goal_dim, env.act_dim, env.goal_start, env.goal_end, env.success_threshold,
                   env.success_start, env.success_end, env.image_shape)


def config_to_dict(cfg: TrainConfig) -> dict:
    """The resolved config as written to config.json (only the chosen agent's section)."""
    d = dataclasses.asdict(cfg)
    for name in AGENTS:
        if name != cfg.agent:
            d.pop(name)
    for key in ("run_dir", "dataset", "data_dir"):
        d[key] = str(d[key]) if d[key] is not None else None
    return d


def config_from_dict(d: dict) -> TrainConfig:
    """Inverse of ``config_to_dict`` (tuples restored from JSON lists)."""
    d = dict(d)
    agent_sections = {}
    for name, agent in AGENTS.items():
        if name in d:
            section = {k: tuple(v) if isinstance(v, list) else v for k, v in d.pop(name).items()}
            agent_sections[name] = agent.config_cls(**section)
    for key in ("run_dir", "dataset", "data_dir"):
        d[key] = Path(d[key]) if d.get(key) else None
    return TrainConfig(**d, **agent_sections)


class Learner:
    """Jitted functions of one (agent, env) pair: K scanned updates with in-jit sampling, and the policy.

    ``train_call(state, traj, key, k)`` runs k updates (k static: each distinct k compiles once) and returns the
    new state and the mean metrics; ``metrics_call(state, traj, key)`` the metrics of one update on a batch of
    ``traj`` without changing the state (validation); ``policy(actor_params, obs, goal, key, deterministic)``;
    ``eval_policy(actor_params, obs, goal)``, the deterministic action.
    """

    def __init__(self, cfg: TrainConfig, spec: EnvSpec):
        self.agent = get_agent(cfg.agent)
        self.acfg = self.agent_config = cfg.agent_config
        self.spec = spec
        self.actor = self.agent.make_actor(self.acfg, spec)
        sampler = GoalSampler(self.acfg.discount, cfg.actor_goals, cfg.goal_sampling, cfg.actor_random_goals)
        update = partial(self.agent.update, cfg=self.acfg, spec=spec)
        batch_size = self.acfg.batch_size
        self.updates_per_call = cfg.updates_per_call

        def train_call(state, traj, key, k):
            def body(state, key):
                k_sample, k_update = jax.random.split(key)
                return update(state, sampler.sample(k_sample, traj, spec, batch_size), k_update)

            state, metrics = jax.lax.scan(body, state, jax.random.split(key, k))
            return state, jax.tree.map(jnp.mean, metrics)

        def metrics_call(state, traj, key):
            k_sample, k_update = jax.random.split(key)
            return update(state, sampler.sample(k_sample, traj, spec, batch_size), k_update)[1]

        self._train_call = jax.jit(train_call, donate_argnums=0, static_argnums=3)
        self.metrics_call = jax.jit(metrics_call)
        policy = self.acfg.policy
        self.policy = jax.jit(partial(common.act, self.actor, policy), static_argnames="deterministic")
        # (actor_params, obs, goal) -> the deterministic action: what evaluation runs (see PortablePolicy)
        self.eval_policy = jax.jit(partial(common.act, self.actor, policy, key=None, deterministic=True))

    def train_call(self, state, traj, key, k: int | None = None):
        """``k`` updates (default ``updates_per_call``) in one jitted call; returns ``(state, mean metrics)``."""
        return self._train_call(state, traj, key, self.updates_per_call if k is None else k)

    def compile_train_call(self, state, traj, key, k: int | None = None):
        """Ahead-of-time compiled :meth:`train_call` for these shapes: call it as ``compiled(state, traj, key)``."""
        return self._train_call.lower(state, traj, key, self.updates_per_call if k is None else k).compile()

    def init(self, key: jax.Array):
        return self.agent.init(key, self.spec, self.acfg)


def evaluate(env: VecGoalEnv, policy_fn, seed: int) -> dict[str, float]:
    """Runs one episode in each of the env's N copies with ``policy_fn(obs, goal) -> actions``.

    Returns mean ``success`` (goal reached at any step, the CRL paper), ``success_final`` (at the last step,
    OGBench), ``min_distance`` and ``final_distance`` over the N episodes.
    """
    env.seed(seed)
    obs, goal = env.reset()
    reached = np.zeros(env.num_envs, bool)
    min_dist = np.full(env.num_envs, np.inf)
    for _ in range(env.horizon):
        obs, success, info = env.step(np.asarray(policy_fn(obs, goal)))
        reached |= success
        min_dist = np.minimum(min_dist, info["distance"])
    return {
        "success": float(reached.mean()),
        "success_final": float(success.mean()),
        "min_distance": float(min_dist.mean()),
        "final_distance": float(np.mean(info["distance"])),
    }


def prepare_run_dir(cfg: TrainConfig) -> Path:
    """Creates the run directory; refuses to touch an existing run unless ``force``."""
    run_dir = cfg.run_dir
    if run_dir is None:
        run_dir = Path("runs") / f"{cfg.env}_{cfg.agent}_s{cfg.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not cfg.force:
            raise FileExistsError(
                f"run directory {run_dir} already exists and is not empty; pass --force to overwrite it "
                f"or `crl train --resume {run_dir}` to continue it"
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


@dataclass
class Progress:
    """Counters saved in every checkpoint."""

    env_steps: int = 0
    updates: int = 0
    owed_updates: float = 0.0
    episodes: int = 0
    evals: int = 0
    next_eval: int = 0
    wall_seconds: float = 0.0
    learner_seconds: float = 0.0
    collect_seconds: float = 0.0
    eval_seconds: float = 0.0
    next_log: int = 0


def train(cfg: TrainConfig, resume: bool = False, stop_after_env_steps: int | None = None) -> dict[str, Any]:
    """Trains one agent and returns the summary dict (also written to run_dir/summary.json). Online on a built-in
    env; offline (``crl.train.offline.train_offline``) when ``cfg.env`` is an OGBench dataset name.

    With ``resume=True``, ``cfg.run_dir`` must hold a run; its newest valid checkpoint is restored and training
    continues to ``cfg.steps``. ``stop_after_env_steps`` ends the run early as if interrupted (for tests).
    """
    if is_offline(cfg):
        from crl.train.offline import train_offline

        return train_offline(cfg, resume=resume, stop_after_updates=stop_after_env_steps)
    env = make_vec_env(cfg.env, cfg.num_envs, seed=cfg.seed)
    validate(cfg, env)
    eval_env = make_vec_env(cfg.env, cfg.eval_episodes, seed=cfg.seed)
    spec = env_spec(env)
    if resume:
        run_dir = Path(cfg.run_dir)
    else:
        run_dir = prepare_run_dir(cfg)
        cfg = dataclasses.replace(cfg, run_dir=run_dir)
        write_json_atomic(run_dir / "config.json", config_to_dict(cfg))

    learner = Learner(cfg, spec)
    obs_dtype = np.uint8 if env.image_shape is not None else np.float32  # images stay uint8 (4x less memory)
    store = EpisodeRing(cfg.buffer_size, env.horizon, env.obs_dim, env.act_dim, obs_dtype)
    key, init_key = jax.random.split(jax.random.key(cfg.seed))
    state = learner.init(init_key)
    host_rng = np.random.default_rng(cfg.seed + 1)  # warm-up actions
    prog = Progress()

    if resume:
        ckpt = latest_checkpoint(run_dir)
        if ckpt is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to resume from")
        _, (state, key), extra = load_checkpoint(run_dir, (state, key))
        store.load_state_dict(extra["store"])
        env.rng.bit_generator.state = extra["env_rng"]
        host_rng.bit_generator.state = extra["host_rng"]
        prog = Progress(**extra["progress"])
        truncate_eval_csv(run_dir, prog.env_steps)
    machines = machine_history(extra if resume else None, {"env_steps": prog.env_steps, "updates": prog.updates},
                               run_dir)

    wandb = WandbSettings(cfg.wandb_project, mode=cfg.wandb_mode) if cfg.wandb_project else None
    logger = RunLogger(run_dir, use_tensorboard=cfg.tensorboard, wandb=wandb, resume=resume, config=config_to_dict(cfg))
    bar = progress_bar(cfg, prog.env_steps, "step")
    last_eval: dict[str, float] = {}
    t_start = time.perf_counter() - prog.wall_seconds

    def run_eval():
        nonlocal last_eval
        t0 = time.perf_counter()
        result = evaluate(
            eval_env,
            lambda o, g: learner.policy(state.actor, o, g, key, deterministic=True),
            seed=cfg.seed * 1_000_003 + prog.env_steps + 7,  # same episodes at a given step, resumed or not
        )
        prog.eval_seconds += time.perf_counter() - t0
        prog.wall_seconds = time.perf_counter() - t_start
        prog.evals += 1
        last_eval = result
        row = {"env_steps": prog.env_steps, "updates": prog.updates, **result, "wall_seconds": prog.wall_seconds}
        logger.log_eval(row)
        logger.log_scalars(prog.env_steps, result, prefix="eval")
        if bar is not None:
            bar.set_postfix(success=f"{result['success']:.2f}", refresh=False)

    def checkpoint():
        extra = {
            "store": store.state_dict(),
            "env_rng": env.rng.bit_generator.state,
            "host_rng": host_rng.bit_generator.state,
            "progress": dataclasses.asdict(prog),
            "machines": machines,
        }
        save_checkpoint(run_dir, prog.env_steps, (state, key), extra, keep=cfg.checkpoints_kept)

    with interruptible(run_dir, bar, logger):
        if prog.env_steps == 0 and prog.evals == 0:
            run_eval()
            prog.next_eval = cfg.eval_every
        stop_at = cfg.steps if stop_after_env_steps is None else min(cfg.steps, stop_after_env_steps)
        while prog.env_steps < stop_at:
            # Collect one episode in every env.
            t0 = time.perf_counter()
            obs, goal = env.reset()
            ep_obs = np.empty((env.num_envs, env.horizon + 1, env.obs_dim), store.obs_dtype)
            ep_act = np.empty((env.num_envs, env.horizon, env.act_dim), np.float32)
            for t in range(env.horizon):
                if prog.env_steps < cfg.warmup_steps:
                    action = host_rng.uniform(-1.0, 1.0, (env.num_envs, env.act_dim)).astype(np.float32)
                else:
                    key, k_act = jax.random.split(key)
                    action = np.asarray(learner.policy(state.actor, obs, goal, k_act, deterministic=False))
                ep_obs[:, t], ep_act[:, t] = obs, action
                obs, _, _ = env.step(action)
            ep_obs[:, env.horizon] = obs
            store.add(ep_obs, ep_act)
            prog.env_steps += env.num_envs * env.horizon
            prog.episodes += env.num_envs
            prog.collect_seconds += time.perf_counter() - t0

            # Learn: the updates owed for the steps just collected, K per jitted call.
            steps_after_warmup = min(env.num_envs * env.horizon, prog.env_steps - cfg.warmup_steps)
            if steps_after_warmup > 0:
                t0 = time.perf_counter()
                prog.owed_updates += cfg.updates_per_step * steps_after_warmup
                metrics = None
                while prog.owed_updates >= cfg.updates_per_call:
                    key, k_train = jax.random.split(key)
                    state, metrics = learner.train_call(state, store.traj, k_train)
                    prog.owed_updates -= cfg.updates_per_call
                    prog.updates += cfg.updates_per_call
                if metrics is not None:
                    metrics = finite_metrics(metrics, f"env step {prog.env_steps} (update {prog.updates})", run_dir)
                    if prog.updates >= prog.next_log:
                        logger.log_scalars(prog.env_steps, metrics, prefix="train")
                        prog.next_log = prog.updates + cfg.log_every
                prog.learner_seconds += time.perf_counter() - t0

            if bar is not None:
                bar.update(env.num_envs * env.horizon)
            if not evaluate_if_due(prog.env_steps, stop_at, cfg.eval_every, prog, t_start, run_eval, checkpoint):
                checkpoint_if_due(prog.env_steps, env.num_envs * env.horizon, cfg.checkpoint_every, prog, t_start,
                                  checkpoint)

    summary = {
        "success": last_eval["success"],
        "success_final": last_eval["success_final"],
        "min_distance": last_eval["min_distance"],
        "env_steps": prog.env_steps,
        "updates": prog.updates,
        "wall_seconds": prog.wall_seconds,
        "learner_seconds": prog.learner_seconds,
        "collect_seconds": prog.collect_seconds,
        "eval_seconds": prog.eval_seconds,
        "updates_per_s": prog.updates / max(prog.learner_seconds, 1e-9),
        "env": cfg.env,
        "agent": cfg.agent,
        "seed": cfg.seed,
        "run_dir": str(run_dir),
        "finished": prog.env_steps >= cfg.steps,
        "machines": machines,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary


def machine_history(extra: dict | None, at: dict[str, int], run_dir: Path) -> list[dict]:
    """The machines a run has computed on, as kept in its checkpoints (``extra["machines"]``), with this process's
    appended as a segment that starts ``at`` (e.g. ``{"updates": 0}``). When the run resumes on a machine whose
    floating-point results can differ from the last segment's (another CPU, thread count, device or JAX version),
    prints a warning: the run goes on, but possibly not bit for bit as it would have on that machine."""
    history = list((extra or {}).get("machines", []))
    now = {"from": dict(at), **machine_info()}
    if history:
        diffs = numerics_differences(history[-1], now)
        if diffs:
            print(f"crl: warning: {run_dir} resumes on a different machine ({'; '.join(diffs)}); floating-point "
                  "results can differ, so it may not continue exactly as it would have there", file=sys.stderr)
    return history + [now]


def evaluate_if_due(count: int, stop_at: int, every: int, prog, t_start: float, run_eval, checkpoint) -> bool:
    """At an evaluation point (``count`` reached ``prog.next_eval``) or the run's end: ``run_eval()``, schedule the
    next evaluation at the next multiple of ``every``, update ``prog.wall_seconds`` and ``checkpoint()``; returns
    whether it did. ``count`` is env steps online, updates offline."""
    if count < prog.next_eval and count < stop_at:
        return False
    run_eval()
    prog.next_eval = (count // every + 1) * every
    prog.wall_seconds = time.perf_counter() - t_start
    checkpoint()
    return True


def checkpoint_if_due(count: int, delta: int, every: int, prog, t_start: float, checkpoint) -> None:
    """``checkpoint()`` (after updating ``prog.wall_seconds``) when the last ``delta`` steps of ``count`` crossed a
    multiple of ``every``; ``every == 0`` never does."""
    if every > 0 and count // every > (count - delta) // every:
        prog.wall_seconds = time.perf_counter() - t_start
        checkpoint()


class Terminated(KeyboardInterrupt):
    """Raised by :func:`raise_terminated` (the `crl train` SIGTERM handler); handled like Ctrl-C."""


def raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def interruptible(run_dir: Path, *closers):
    """The training loop's frame: always closes ``closers`` (objects with ``close()``; None is skipped), and turns
    Ctrl-C (or :class:`Terminated`) into the same exception type with a message that says how to resume from the
    last checkpoint."""
    try:
        yield
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        raise type(e)(
            f"{what}; the last checkpoint is kept: resume with `crl train --resume {run_dir}`"
        ) from None
    finally:
        for c in closers:
            if c is not None:
                c.close()


def finite_metrics(metrics: dict, where: str, run_dir: Path) -> dict[str, float]:
    """The metrics as floats; raises DivergenceError naming the non-finite ones (``where``: e.g. 'update 500')."""
    metrics = {k: float(v) for k, v in metrics.items()}
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise DivergenceError(
            f"non-finite {', '.join(bad)} at {where}; the last good checkpoint in {run_dir / 'checkpoints'} is kept"
        )
    return metrics


def progress_bar(cfg: TrainConfig, initial: int, unit: str):
    """The run's tqdm bar (on stderr; refreshed every 30 s when stderr is not a terminal), or None."""
    if not cfg.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=cfg.steps,
        initial=initial,
        unit=unit,
        unit_scale=True,
        desc=f"{cfg.agent} {cfg.env}",
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )


def load_config(run_dir: Path) -> TrainConfig:
    """Reads run_dir/config.json back into a TrainConfig."""
    path = Path(run_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.json)")
    try:
        return config_from_dict(read_json(path))
    except (TypeError, ValueError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config ({e})") from None
