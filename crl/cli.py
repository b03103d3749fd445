"""The `crl` command: train, resume, evaluate, benchmark, list environments.

    crl train [--env ENV] [--agent crl|gcbc] [--steps N] [--seed S] [--run-dir DIR] [--crl.FIELD ...]
    crl train --resume DIR [--steps N]
    crl eval DIR [--episodes N]
    crl bench learner --preset paper-online|ogbench-crl
    crl envs
"""

from __future__ import annotations

import os
import sys

# Set thread counts before numpy/jax load: BLAS threads only fight XLA's for the two cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
from dataclasses import dataclass, fields  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Literal  # noqa: E402

import tyro  # noqa: E402

from crl.train.online import TrainConfig  # noqa: E402

USAGE = __doc__


@dataclass(frozen=True)
class TrainCommand(TrainConfig):
    """Train an agent online. Every field below is a flag; `--resume DIR` continues a run instead."""

    resume: Path | None = None
    """Continue the run in this directory from its newest valid checkpoint (only --steps may change)."""


@dataclass(frozen=True)
class EvalCommand:
    """Re-evaluate the newest checkpoint of a run (deterministic policy); prints one JSON line."""

    run_dir: Annotated[Path, tyro.conf.Positional]
    """Run directory."""
    episodes: int | None = None
    """Evaluation episodes (default: the run's eval_episodes)."""
    seed: int = 12345
    """Seed of the evaluation episodes."""


@dataclass(frozen=True)
class BenchCommand:
    """Benchmark the learner alone (jitted updates on synthetic trajectories); prints one JSON line."""

    what: Annotated[Literal["learner"], tyro.conf.Positional]
    """What to benchmark."""
    preset: Literal["paper-online", "ogbench-crl"] = "paper-online"
    """Network/batch preset: paper-online (batch 256, 2x256, repr 64) or ogbench-crl (batch 1024, 3x512, latent 512)."""
    calls: int | None = None
    """Timed jitted calls per repeat (default: the preset's)."""
    threads: int | None = None
    """Limit the process to this many CPU threads (default: all cores)."""


def _fail(msg: str, code: int = 2) -> int:
    print(f"crl: error: {msg}", file=sys.stderr)
    return code


def _train(argv: list[str]) -> int:
    from crl.train import online
    from crl.train.checkpoint import CheckpointError
    from crl.train.io import write_json_atomic

    args = tyro.cli(TrainCommand, args=argv, prog="crl train", description=TrainCommand.__doc__)
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    try:
        if args.resume is not None:
            cfg = online.load_config(args.resume)
            given = {a.split("=")[0] for a in argv if a.startswith("--")}
            extra_flags = given - {"--resume", "--steps", "--progress", "--no-progress"}
            if extra_flags:
                return _fail(f"--resume takes only --steps; got {', '.join(sorted(extra_flags))}")
            if "--steps" in given:
                cfg = TrainConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}, "steps": args.steps})
                online.validate(cfg)
                write_json_atomic(Path(args.resume) / "config.json", online.config_to_dict(cfg))
            cfg = TrainConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}, "run_dir": args.resume,
                                 "progress": args.progress})
            summary = online.train(cfg, resume=True)
        else:
            summary = online.train(cfg)
    except KeyboardInterrupt as e:
        return _fail(str(e) or "interrupted", 130)
    except (ValueError, FileExistsError, FileNotFoundError, CheckpointError, online.DivergenceError) as e:
        return _fail(str(e))
    print(
        f"success {summary['success']:.3f} (goal reached at any step; at the last step: "
        f"{summary['success_final']:.3f}) after {summary['env_steps']} env steps, {summary['updates']} updates, "
        f"{summary['wall_seconds']:.0f} s\nrun dir: {summary['run_dir']}"
    )
    return 0


def _eval(argv: list[str]) -> int:
    from crl.train.checkpoint import CheckpointError
    from crl.train.run import load_run

    args = tyro.cli(EvalCommand, args=argv, prog="crl eval", description=EvalCommand.__doc__)
    try:
        run = load_run(args.run_dir)
        result = run.evaluate(episodes=args.episodes, seed=args.seed)
    except (ValueError, FileNotFoundError, CheckpointError) as e:
        return _fail(str(e))
    print(json.dumps({"run_dir": str(args.run_dir), "env_steps": run.env_steps, **result}))
    return 0


def _bench(argv: list[str]) -> int:
    args = tyro.cli(BenchCommand, args=argv, prog="crl bench", description=BenchCommand.__doc__)
    from crl.runtime import configure_cpu_threads

    configure_cpu_threads(args.threads)
    from crl.bench import bench_learner

    print(json.dumps(bench_learner(args.preset, calls=args.calls)))
    return 0


def _envs(argv: list[str]) -> int:
    from crl.envs import ENV_NAMES, make_vec_env

    for name in ENV_NAMES:
        env = make_vec_env(name, 1)
        print(f"{name}\tobs {env.obs_dim}\tgoal {env.goal_dim}\tact {env.act_dim}\thorizon {env.horizon}")
    return 0


COMMANDS = {"train": _train, "eval": _eval, "bench": _bench, "envs": _envs}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `crl` command; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE.strip())
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        return _fail(f"unknown command {argv[0]!r}; commands: {', '.join(COMMANDS)}")
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
