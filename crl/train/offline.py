"""Offline training on an OGBench dataset, evaluated with OGBench's protocol.

One run reads top to bottom in ``train_offline``: load and validate the dataset (and its -val file) into the
same trajectory container the online loop uses, build the agent, then repeat {K jitted updates with sampling
inside the jit} with, every ``eval_every`` updates, an evaluation on the env's 5 tasks, validation metrics on the
-val file, and a checkpoint. A resumed run continues exactly from its newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from crl.data.ogbench_data import check_supported, env_id, load_ogbench
from crl.envs.ogbench_env import NUM_TASKS, OGBenchEvaluator, PortablePolicy, env_dims
from crl.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from crl.train.io import write_json_atomic
from crl.train.logger import RunLogger, WandbSettings, truncate_eval_csv
from crl.train.online import (
    Learner,
    TrainConfig,
    config_to_dict,
    checkpoint_if_due,
    evaluate_if_due,
    finite_metrics,
    interruptible,
    machine_history,
    prepare_run_dir,
    progress_bar,
    validate,
)


@dataclass
class OfflineProgress:
    """Counters saved in every checkpoint."""

    updates: int = 0
    evals: int = 0
    next_eval: int = 0
    next_log: int = 0
    wall_seconds: float = 0.0
    learner_seconds: float = 0.0
    eval_seconds: float = 0.0


def eval_seed(cfg: TrainConfig, updates: int) -> int:
    """Seed of the evaluation episodes at a given update (the same whether the run was resumed or not)."""
    return (cfg.seed * 1_000_003 + updates + 7) % (2**31)


def train_offline(cfg: TrainConfig, resume: bool = False, stop_after_updates: int | None = None) -> dict[str, Any]:
    """Trains ``cfg.agent`` on the OGBench dataset ``cfg.env`` and returns the summary (also in summary.json).

    ``summary['success']`` is OGBench's metric at the final evaluation: the mean over the 5 tasks of the fraction
    of episodes that end at the goal. ``stop_after_updates`` ends the run early as if interrupted (for tests).
    """
    validate(cfg)
    check_supported(cfg.env)
    obs_dim, act_dim = env_dims(env_id(cfg.env))
    data, val = load_ogbench(cfg.env, cfg.dataset, cfg.data_dir, obs_dim, act_dim)
    if resume:
        run_dir = Path(cfg.run_dir)
    else:
        run_dir = prepare_run_dir(cfg)
        cfg = dataclasses.replace(cfg, run_dir=run_dir)
        write_json_atomic(run_dir / "config.json", config_to_dict(cfg))

    learner = Learner(cfg, data.spec)
    key, init_key = jax.random.split(jax.random.key(cfg.seed))
    state = learner.init(init_key)
    prog = OfflineProgress(next_eval=cfg.eval_every)
    if resume:
        if latest_checkpoint(run_dir) is None:
            raise FileNotFoundError(f"{run_dir} has no checkpoint to resume from")
        _, (state, key), extra = load_checkpoint(run_dir, (state, key))
        prog = OfflineProgress(**extra["progress"])
        truncate_eval_csv(run_dir, prog.updates, column="updates")
    machines = machine_history(extra if resume else None, {"updates": prog.updates}, run_dir)

    evaluator = OGBenchEvaluator(env_id(cfg.env), min(cfg.eval_envs, NUM_TASKS * cfg.eval_episodes),
                                 workers=cfg.eval_workers)
    wandb = WandbSettings(cfg.wandb_project, mode=cfg.wandb_mode) if cfg.wandb_project else None
    logger = RunLogger(run_dir, use_tensorboard=cfg.tensorboard, wandb=wandb, resume=resume, config=config_to_dict(cfg))
    bar = progress_bar(cfg, prog.updates, "upd")
    last_eval: dict[str, float] = {}
    t_start = time.perf_counter() - prog.wall_seconds

    def run_eval():
        nonlocal last_eval
        t0 = time.perf_counter()
        policy = PortablePolicy(learner.eval_policy, state.actor)
        result = evaluator.evaluate(policy, cfg.eval_episodes, eval_seed(cfg, prog.updates))
        if val is not None:
            vm = learner.metrics_call(state, val.traj, jax.random.fold_in(key, prog.updates))
            logger.log_scalars(prog.updates, {k: float(v) for k, v in vm.items()}, prefix="val")
        prog.eval_seconds += time.perf_counter() - t0
        prog.wall_seconds = time.perf_counter() - t_start
        prog.evals += 1
        last_eval = result
        row = {"env_steps": 0, "updates": prog.updates, **result, "wall_seconds": prog.wall_seconds}
        logger.log_eval(row)
        logger.log_scalars(prog.updates, result, prefix="eval")
        if bar is not None:
            bar.set_postfix(success=f"{result['success']:.2f}", refresh=False)

    def checkpoint():
        extra = {"progress": dataclasses.asdict(prog), "machines": machines}
        save_checkpoint(run_dir, prog.updates, (state, key), extra, keep=cfg.checkpoints_kept)

    with interruptible(run_dir, bar, logger, evaluator):
        stop_at = cfg.steps if stop_after_updates is None else min(cfg.steps, stop_after_updates)
        while prog.updates < stop_at:
            # Never run past an evaluation point or the end, so evaluations land exactly on multiples of eval_every.
            k = min(cfg.updates_per_call, prog.next_eval - prog.updates, stop_at - prog.updates)
            t0 = time.perf_counter()
            key, k_train = jax.random.split(key)
            state, metrics = learner.train_call(state, data.traj, k_train, k)
            prog.updates += k
            metrics = finite_metrics(metrics, f"update {prog.updates}", run_dir)
            prog.learner_seconds += time.perf_counter() - t0
            if prog.updates >= prog.next_log:
                logger.log_scalars(prog.updates, metrics, prefix="train")
                prog.next_log = prog.updates + cfg.log_every
            if bar is not None:
                bar.update(k)
            if not evaluate_if_due(prog.updates, stop_at, cfg.eval_every, prog, t_start, run_eval, checkpoint):
                checkpoint_if_due(prog.updates, k, cfg.checkpoint_every, prog, t_start, checkpoint)

    summary = {
        "success": last_eval.get("success", float("nan")),
        **{k: v for k, v in last_eval.items() if k.startswith("task")},
        "success_any": last_eval.get("success_any", float("nan")),
        "env_steps": 0,
        "updates": prog.updates,
        "wall_seconds": prog.wall_seconds,
        "learner_seconds": prog.learner_seconds,
        "eval_seconds": prog.eval_seconds,
        "updates_per_s": prog.updates / max(prog.learner_seconds, 1e-9),
        "env": cfg.env,
        "agent": cfg.agent,
        "seed": cfg.seed,
        "dataset": data.source,
        "dataset_transitions": data.traj.num_transitions,
        "run_dir": str(run_dir),
        "finished": prog.updates >= cfg.steps,
        "machines": machines,
    }
    write_json_atomic(run_dir / "summary.json", summary)
    return summary
