"""The `crl` command: train, resume, evaluate, benchmark, list environments.

    crl train [--env ENV] [--agent crl|gcbc|td3] [--preset P] [--steps N] [--seed S] [--run-dir DIR] [--crl.FIELD ...]
    crl train --env pointmaze-medium-navigate-v0 [--data-dir DIR | --dataset FILE]   (offline, OGBench)
    crl train --resume DIR [--steps N] [--checkpoint-every N]
    crl data generate NAME --out DIR [--episodes N] [--workers W]
    crl data check NAME [--data-dir DIR | --dataset FILE]
    crl eval DIR [--episodes N]
    crl bench learner --preset paper-online|ogbench-crl
    crl envs
"""

from __future__ import annotations

import os
import signal
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
    """Train an agent online on a built-in env, or offline on an OGBench dataset (ENV = dataset name). The
    defaults shown come from --preset for the given --env/--agent; every field is a flag that overrides them.
    `--resume DIR` continues a run instead."""

    preset: str = "auto"
    """Starting config: auto (OGBench dataset -> ogbench with that dataset's flags; *_image env -> paper-image; else
    paper-online), none, paper-online, paper-image, ogbench, paper-offline."""
    resume: Path | None = None
    """Continue the run in this directory from its newest checkpoint (only --steps, --checkpoint-every, --threads may
    change)."""
    threads: int | None = None
    """CPU threads for this process (default: all cores it may use). Same seed gives the same numbers only at the same
    thread count: resume a run with its own (summary.json `machines`) to continue it exactly."""


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


@dataclass(frozen=True)
class GenerateCommand:
    """Regenerate an OGBench dataset locally with OGBench's environments and scripted oracles; writes
    OUT/NAME.npz and OUT/NAME-val.npz in OGBench's format."""

    name: Annotated[str, tyro.conf.Positional]
    """Dataset name, e.g. pointmaze-medium-navigate-v0 (one of the datasets listed above)."""
    out: Path = Path("~/.ogbench/data")
    """Output directory (the default is where `crl train` and OGBench look)."""
    episodes: int | None = None
    """Training episodes (default: OGBench's count); the -val file gets a tenth as many."""
    workers: int | None = None
    """Worker processes (default: all cores)."""
    seed: int = 0
    """Random seed."""
    force: bool = False
    """Overwrite existing files."""


@dataclass(frozen=True)
class CheckCommand:
    """Validate an OGBench dataset (and its -val file) and print its size as one JSON line."""

    name: Annotated[str, tyro.conf.Positional]
    """Dataset name, e.g. pointmaze-medium-navigate-v0."""
    dataset: Path | None = None
    """The .npz file (default DATA_DIR/NAME.npz)."""
    data_dir: Path | None = None
    """Dataset directory (default ~/.ogbench/data)."""


def _fail(msg: str, code: int = 2) -> int:
    print(f"crl: error: {msg}", file=sys.stderr)
    return code


def _flag_value(argv: list[str], flag: str, default: str) -> str:
    """The value of ``--flag V`` or ``--flag=V`` in argv (last one wins), else ``default``."""
    value = default
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            value = argv[i + 1]
        elif a.startswith(flag + "="):
            value = a.split("=", 1)[1]
    return value


def _train(argv: list[str]) -> int:
    from crl.train import online
    from crl.train.checkpoint import CheckpointError
    from crl.train.io import write_json_atomic
    from crl.train.presets import preset_config

    try:
        if "--resume" in argv or any(a.startswith("--resume=") for a in argv):
            args = tyro.cli(TrainCommand, args=argv, prog="crl train", description=TrainCommand.__doc__)
        else:
            env = _flag_value(argv, "--env", TrainConfig.env)
            agent = _flag_value(argv, "--agent", TrainConfig.agent)
            preset = _flag_value(argv, "--preset", "auto")
            base = preset_config(env, agent if agent in ("crl", "gcbc", "td3") else "crl", preset)
            default = TrainCommand(**{f.name: getattr(base, f.name) for f in fields(TrainConfig)}, preset=preset)
            args = tyro.cli(TrainCommand, args=argv, prog="crl train", description=TrainCommand.__doc__,
                            default=default)
    except ValueError as e:
        return _fail(str(e))
    from crl.runtime import configure_cpu_threads

    try:
        configure_cpu_threads(args.threads)
    except (ValueError, RuntimeError) as e:
        return _fail(f"--threads: {e}")
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig)})
    # SIGTERM (a scheduler, `kill PID`; background jobs of a script ignore Ctrl-C's SIGINT) stops the run like
    # Ctrl-C: the last checkpoint is kept and the logs are closed.
    signal.signal(signal.SIGTERM, online.raise_terminated)
    try:
        if args.resume is not None:
            cfg = online.load_config(args.resume)
            given = {a.split("=")[0] for a in argv if a.startswith("--")}
            changeable = {"--steps": "steps", "--checkpoint-every": "checkpoint_every"}  # do not change the results
            extra_flags = given - {"--resume", "--progress", "--no-progress", "--threads", *changeable}
            if extra_flags:
                got = ", ".join(sorted(extra_flags))
                return _fail(f"--resume takes only --steps, --checkpoint-every and --threads; got {got}")
            changed = {name: getattr(args, name) for flag, name in changeable.items() if flag in given}
            if changed:
                cfg = TrainConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}, **changed})
                online.validate(cfg)
                write_json_atomic(Path(args.resume) / "config.json", online.config_to_dict(cfg))
            cfg = TrainConfig(**{**{f.name: getattr(cfg, f.name) for f in fields(TrainConfig)}, "run_dir": args.resume,
                                 "progress": args.progress})
            summary = online.train(cfg, resume=True)
        else:
            summary = online.train(cfg)
    except KeyboardInterrupt as e:
        return _fail(str(e) or "interrupted", 143 if isinstance(e, online.Terminated) else 130)
    except (ValueError, FileExistsError, FileNotFoundError, CheckpointError, online.DivergenceError) as e:
        return _fail(str(e))
    if online.is_offline(cfg):
        tasks = " ".join(f"{summary[k]:.2f}" for k in sorted(summary) if k.startswith("task"))
        print(
            f"success {summary['success']:.3f} (OGBench: mean over tasks of success at the episode's end; per task "
            f"{tasks}) after {summary['updates']} updates, {summary['wall_seconds']:.0f} s\nrun dir: {summary['run_dir']}"
        )
        return 0
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


def _data(argv: list[str]) -> int:
    if not argv or argv[0] not in ("generate", "check"):
        return _fail("usage: crl data generate NAME --out DIR | crl data check NAME [--dataset FILE]")
    from crl.data.offline import DatasetError

    if argv[0] == "generate":
        from crl.data.generate import SUPPORTED, GenerationError, generate_dataset

        description = (f"{GenerateCommand.__doc__}\n\nDatasets: {', '.join(SUPPORTED)}. The ant, humanoid and "
                       "ant-soccer datasets need OGBench's trained expert policies, which are not in the ogbench package "
                       "(they come from OGBench's dataset server): place the official dataset files in the data "
                       "directory instead.")
        args = tyro.cli(GenerateCommand, args=argv[1:], prog="crl data generate", description=description)

        try:
            paths = generate_dataset(args.name, args.out.expanduser(), episodes=args.episodes, workers=args.workers,
                                     seed=args.seed, force=args.force)
        except (GenerationError, DatasetError, ValueError) as e:
            return _fail(str(e))
        except KeyboardInterrupt:
            return _fail("interrupted; nothing was written", 130)
        print(json.dumps({"train": str(paths[0]), "val": str(paths[1])}))
        return 0
    args = tyro.cli(CheckCommand, args=argv[1:], prog="crl data check", description=CheckCommand.__doc__)
    from crl.data.ogbench_data import load_ogbench

    try:
        data, val = load_ogbench(args.name, args.dataset, args.data_dir)
    except DatasetError as e:
        return _fail(str(e))
    out = {}
    for split, d in (("train", data), ("val", val)):
        if d is not None:
            out[split] = {"file": d.source, "episodes": int(d.traj.ep_len.shape[0]),
                          "transitions": d.traj.num_transitions, "obs_dim": d.spec.obs_dim, "act_dim": d.spec.act_dim}
    print(json.dumps(out))
    return 0


def _envs(argv: list[str]) -> int:
    from crl.envs import ENV_NAMES, MissingPackageError, make_vec_env

    for name in ENV_NAMES:
        try:
            env = make_vec_env(name, 1)
        except MissingPackageError as e:
            print(f"{name}\tunavailable: {e}")
            continue
        print(f"{name}\tobs {env.obs_dim}\tgoal {env.goal_dim}\tact {env.act_dim}\thorizon {env.horizon}")
        if hasattr(env, "close"):
            env.close()
    print("gym:ENV_ID\tany gymnasium env with observation/achieved_goal/desired_goal observations")
    return 0


COMMANDS = {"train": _train, "eval": _eval, "bench": _bench, "data": _data, "envs": _envs}


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
