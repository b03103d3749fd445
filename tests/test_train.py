"""End-to-end behaviour of the online trainer, the run directory, the CLI and the Python API."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

import crl
from crl import runtime
from crl.agents import AGENTS, AgentDef
from crl.cli import main
from crl.envs import make_vec_env
from crl.train import online
from crl.train.checkpoint import list_checkpoints, load_checkpoint
from crl.train.online import TrainConfig, evaluate

TINY = dict(
    env="point_Small",
    steps=1200,
    warmup_steps=400,
    eval_every=400,
    eval_episodes=20,
    num_envs=4,
    updates_per_step=0.32,
    updates_per_call=16,
    progress=False,
    tensorboard=True,
    crl=crl.CRLConfig(batch_size=32, hidden_sizes=(32, 32), repr_dim=16, actor_hidden_sizes=(32, 32)),
)


def tiny(tmp_path: Path, name: str = "run", **kw) -> TrainConfig:
    return TrainConfig(**{**TINY, "run_dir": tmp_path / name, **kw})


def read_eval(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv", newline="") as f:
        return list(csv.DictReader(f))


def final_params(run_dir: Path):
    run = crl.load_run(run_dir)
    return jax.tree.leaves((run.state.critic, run.state.actor))


def test_run_directory_contents(tmp_path):
    summary = online.train(tiny(tmp_path))
    run_dir = tmp_path / "run"
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["env"] == "point_Small" and cfg["crl"]["batch_size"] == 32 and "gcbc" not in cfg
    rows = read_eval(run_dir)
    assert [int(r["env_steps"]) for r in rows] == [0, 400, 800, 1200]
    for col in ("updates", "success", "success_final", "min_distance", "wall_seconds"):
        assert col in rows[0]
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert len(list_checkpoints(run_dir)) == 2  # checkpoints_kept
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for k in ("success", "env_steps", "updates", "wall_seconds", "env", "agent", "seed"):
        assert k in on_disk
    assert on_disk["env_steps"] == 1200 and 0.0 <= on_disk["success"] <= 1.0
    # UTD 0.32 over the 800 post-warm-up steps = 256 updates, in calls of 16.
    assert on_disk["updates"] == 256


def test_same_seed_same_metrics(tmp_path):
    online.train(tiny(tmp_path, "a"))
    online.train(tiny(tmp_path, "b"))
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(read_eval(tmp_path / "a")) == strip(read_eval(tmp_path / "b"))
    for x, y in zip(final_params(tmp_path / "a"), final_params(tmp_path / "b")):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    online.train(tiny(tmp_path, "c", seed=1))
    assert any(
        not np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(final_params(tmp_path / "a"), final_params(tmp_path / "c"))
    )


def test_resume_continues_identically(tmp_path):
    online.train(tiny(tmp_path, "full", steps=2000))
    cfg = tiny(tmp_path, "cut", steps=2000)
    partial = online.train(cfg, stop_after_env_steps=1000)
    assert not partial["finished"] and partial["env_steps"] == 1000
    # A row written after the last checkpoint (as by a crash) must be dropped on resume.
    with open(tmp_path / "cut" / "eval.csv", "a", newline="") as f:
        f.write("1200,999,0.5,0.5,1,1,1\r\n")
    online.train(replace(cfg, run_dir=tmp_path / "cut"), resume=True)
    full, cut = read_eval(tmp_path / "full"), read_eval(tmp_path / "cut")
    by_step = {r["env_steps"]: r for r in cut}
    assert [r["env_steps"] for r in cut].count("1200") == 1
    for r in full:
        other = by_step[r["env_steps"]]
        assert {k: v for k, v in r.items() if k != "wall_seconds"} == {
            k: v for k, v in other.items() if k != "wall_seconds"
        }
    for x, y in zip(final_params(tmp_path / "full"), final_params(tmp_path / "cut")):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_runs_record_their_machines_and_warn_when_resumed_on_another(tmp_path, capsys, monkeypatch):
    """summary.json lists the machine of every segment of a run (kept in the checkpoints); a resume on a machine that
    can compute differently (here: another XLA:CPU thread count) says so on stderr, a resume on the same one does not."""
    cfg = tiny(tmp_path, "run", steps=2000)
    first = online.train(cfg, stop_after_env_steps=800)
    here = runtime.machine_info()
    assert [m["from"] for m in first["machines"]] == [{"env_steps": 0, "updates": 0}]
    assert {k: v for k, v in first["machines"][0].items() if k != "from"} == here
    capsys.readouterr()
    second = online.train(cfg, resume=True, stop_after_env_steps=1600)
    assert "warning" not in capsys.readouterr().err
    assert [m["from"]["env_steps"] for m in second["machines"]] == [0, 800]
    other = {**here, "cpu_threads": here["cpu_threads"] + 7}
    monkeypatch.setattr(online, "machine_info", lambda: other)
    third = online.train(cfg, resume=True)
    err = capsys.readouterr().err
    assert "crl: warning:" in err and f"cpu_threads {here['cpu_threads']} -> {here['cpu_threads'] + 7}" in err
    assert [m["from"]["env_steps"] for m in third["machines"]] == [0, 800, 1600]
    assert third["machines"][-1]["cpu_threads"] == here["cpu_threads"] + 7
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["machines"] == third["machines"]


def test_cli_threads_flag_sets_the_thread_count_and_resume_warns(tmp_path, capsys):
    """`crl train --threads 1` runs XLA on one thread (recorded in summary.json); resuming it on more threads warns,
    and `--threads` is one of the flags --resume takes."""
    run_dir = tmp_path / "t1"
    argv = ["--env", "point_Small", "--steps", "800", "--warmup-steps", "400", "--eval-every", "400",
            "--eval-episodes", "5", "--updates-per-step", "0.08", "--updates-per-call", "8",
            "--crl.batch-size", "16", "--crl.hidden-sizes", "16", "--crl.actor-hidden-sizes", "16",
            "--no-progress", "--run-dir", str(run_dir), "--threads", "1"]  # fmt: skip
    code = "import sys; from crl.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "train", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    machines = json.loads((run_dir / "summary.json").read_text())["machines"]
    assert [m["cpu_threads"] for m in machines] == [1]
    here = len(os.sched_getaffinity(0))  # this process: all its cores, its JAX backend already started
    assert main(["train", "--resume", str(run_dir), "--steps", "1200", "--threads", str(here), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("cpu_threads 1 -> " + str(here) in err) == (here > 1)
    assert [m["cpu_threads"] for m in json.loads((run_dir / "summary.json").read_text())["machines"]] == [1, here]
    assert main(["train", "--resume", str(run_dir), "--steps", "1600", "--threads", "0", "--no-progress"]) == 2
    assert "--threads: threads must be >= 1" in capsys.readouterr().err


def test_numerics_differences():
    base = {"backend": "cpu", "device_kind": "cpu", "devices": 1, "cpu": "X", "cpu_threads": 2, "jax": "0.10.2",
            "jaxlib": "0.10.2", "python": "3.11.7"}
    assert runtime.numerics_differences(base, {**base, "python": "3.12.0"}) == []  # python does not compute
    assert runtime.numerics_differences(base, {**base, "cpu_threads": 1, "cpu": "Y"}) == [
        "cpu 'X' -> 'Y'", "cpu_threads 2 -> 1"]
    assert runtime.numerics_differences(base, {**base, "jaxlib": "0.10.3"}) == ["jaxlib '0.10.2' -> '0.10.3'"]
    gpu = {**base, "backend": "gpu", "device_kind": "NVIDIA H100"}
    assert runtime.numerics_differences(gpu, {**gpu, "cpu_threads": 16, "cpu": "Y"}) == []  # host CPU: no math
    assert runtime.numerics_differences({"cpu_threads": 2}, base) == []  # only fields the record has
    assert runtime.numerics_differences(base, gpu) == ["backend 'cpu' -> 'gpu'", "device_kind 'cpu' -> 'NVIDIA H100'"]
    info = runtime.machine_info()
    assert info["backend"] == "cpu" and info["jax"] == jax.__version__
    assert info["cpu_threads"] == len(os.sched_getaffinity(0))


def test_ctrl_c_keeps_last_checkpoint_and_resumes_identically(tmp_path, interrupt_train_call):
    online.train(tiny(tmp_path, "full"))
    restore = interrupt_train_call(10)  # in the collection round after the checkpoint at 800 env steps
    with pytest.raises(KeyboardInterrupt, match="crl train --resume"):
        online.train(tiny(tmp_path, "cut"))
    run_dir = tmp_path / "cut"
    assert not (run_dir / "summary.json").exists()
    assert [int(r["env_steps"]) for r in read_eval(run_dir)] == [0, 400, 800]
    assert list_checkpoints(run_dir)[-1].name == "ckpt_000000800.ckpt"
    restore()
    online.train(tiny(tmp_path, "cut"), resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(read_eval(run_dir)) == strip(read_eval(tmp_path / "full"))
    for x, y in zip(final_params(tmp_path / "full"), final_params(run_dir)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))

def test_checkpoint_every_between_evaluations_resumes_identically(tmp_path, interrupt_train_call):
    """--checkpoint-every adds checkpoints between evaluations (here every collection round of 200 env steps); a run
    killed after one resumes from it (not from the older evaluation checkpoint) with identical results."""
    online.train(tiny(tmp_path, "full"))
    restore = interrupt_train_call(13)  # first call of the round after 1000 env steps (4 calls per round from 600 on)
    with pytest.raises(KeyboardInterrupt):
        online.train(tiny(tmp_path, "cut", checkpoint_every=200, checkpoints_kept=5))
    run_dir = tmp_path / "cut"
    assert [p.name for p in list_checkpoints(run_dir)] == [
        f"ckpt_{n:09d}.ckpt" for n in (200, 400, 600, 800, 1000)
    ]
    assert [int(r["env_steps"]) for r in read_eval(run_dir)] == [0, 400, 800]  # no evaluation at 200, 600, 1000
    restore()
    assert main(["train", "--resume", str(run_dir), "--checkpoint-every", "0", "--no-progress"]) == 0
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]  # noqa: E731
    assert strip(read_eval(run_dir)) == strip(read_eval(tmp_path / "full"))
    for x, y in zip(final_params(tmp_path / "full"), final_params(run_dir)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert json.loads((run_dir / "config.json").read_text())["checkpoint_every"] == 0
    # Flags that would change the results are refused on --resume.
    assert main(["train", "--resume", str(run_dir), "--seed", "3", "--no-progress"]) == 2


def test_sigterm_stops_like_ctrl_c_and_resumes(tmp_path):
    """`kill PID` on a running `crl train` (a background job of a script ignores SIGINT): exit 143 with the resume
    hint, the last checkpoint intact, no summary; --resume then finishes the run."""
    run_dir = tmp_path / "term"
    argv = ["--env", "point_Small", "--steps", "1000000", "--warmup-steps", "400", "--eval-every", "400",
            "--eval-episodes", "5", "--updates-per-step", "0.08", "--updates-per-call", "8",
            "--crl.batch-size", "16", "--crl.hidden-sizes", "16", "--crl.actor-hidden-sizes", "16",
            "--no-progress", "--run-dir", str(run_dir)]  # fmt: skip
    code = "import sys; from crl.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "train", *argv], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while len(list_checkpoints(run_dir)) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert len(list_checkpoints(run_dir)) >= 2, "no checkpoint within 240 s"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "terminated; the last checkpoint is kept" in err and "crl train --resume" in err
    assert not (run_dir / "summary.json").exists()
    last = int(list_checkpoints(run_dir)[-1].name[5:14])
    assert main(["train", "--resume", str(run_dir), "--steps", str(last + 400), "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == last + 400


def test_short_run_learns(tmp_path):
    """CRL on the U maze, ~1 minute: success must clearly beat a uniformly random policy."""
    cfg = TrainConfig(
        env="point_U",
        steps=8000,
        warmup_steps=2000,
        eval_every=4000,
        eval_episodes=200,
        updates_per_step=0.5,
        progress=False,
        tensorboard=False,
        run_dir=tmp_path / "learn",
        crl=crl.CRLConfig(batch_size=128, hidden_sizes=(128, 128), actor_hidden_sizes=(128, 128)),
    )
    summary = online.train(cfg)
    env = make_vec_env("point_U", 200)
    rng = np.random.default_rng(0)
    seed = cfg.seed * 1_000_003 + cfg.steps + 7  # the same episodes as the final evaluation
    random = evaluate(env, lambda o, g: rng.uniform(-1, 1, (len(o), 2)), seed=seed)
    # Reaching the goal at the last step is the hard part for a random walk (it rarely stays there).
    assert summary["success_final"] >= random["success_final"] + 0.3, (summary, random)
    assert summary["success"] >= random["success"] + 0.15, (summary, random)
    assert summary["min_distance"] < 0.8 * random["min_distance"], (summary, random)


def test_td_loss_trains_online(tmp_path):
    # The C-learning target critic must not share buffers with the critic (the trainer donates the state).
    cfg = tiny(tmp_path, steps=800, crl=replace(TINY["crl"], loss="nce_c_learning", twin_critics=True))
    summary = online.train(cfg)
    assert summary["updates"] > 0 and np.isfinite(summary["min_distance"])


def test_gcbc_agent_runs(tmp_path):
    summary = online.train(tiny(tmp_path, agent="gcbc", gcbc=crl.GCBCConfig(batch_size=32, actor_hidden_sizes=(32,))))
    assert summary["agent"] == "gcbc" and summary["updates"] == 256
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "gcbc" in cfg and "crl" not in cfg


def test_divergence_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    real = AGENTS["crl"]

    def poisoned(state, batch, key, *, cfg, spec):
        state, metrics = real.update(state, batch, key, cfg=cfg, spec=spec)
        metrics["critic_loss"] = jax.numpy.where(state.step > 150, jax.numpy.nan, metrics["critic_loss"])
        return state, metrics

    monkeypatch.setattr(online, "get_agent", lambda name: AgentDef(*real[:2], poisoned, real.make_actor))
    with pytest.raises(online.DivergenceError, match="critic_loss"):
        online.train(tiny(tmp_path))
    run_dir = tmp_path / "run"
    assert not (run_dir / "summary.json").exists()
    step, _, _ = load_checkpoint(list_checkpoints(run_dir)[-1], (online.Learner(tiny(tmp_path), online.env_spec(
        make_vec_env("point_Small", 1))).init(jax.random.key(0)), jax.random.key(0)))
    assert step == 800  # the last evaluation before update 150 went bad


def test_python_api_policy_and_critic(tmp_path):
    online.train(tiny(tmp_path))
    run = crl.load_run(tmp_path / "run")
    obs, goal = np.array([0.5, 0.5], np.float32), np.array([3.5, 3.5], np.float32)
    action = run.policy(obs, goal)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    batch = run.policy(np.stack([obs, obs]), np.stack([goal, goal]))
    np.testing.assert_allclose(batch[0], action, rtol=1e-5, atol=1e-6)
    q = run.critic(obs, action, goal)
    assert np.shape(q) == () and np.isfinite(q)
    assert run.summary["env_steps"] == 1200
    result = run.evaluate(episodes=10)
    assert 0.0 <= result["success"] <= 1.0
    # An earlier checkpoint by its step: its own parameters, and a precise error for a step that was not kept.
    steps = [int(p.stem.removeprefix("ckpt_")) for p in list_checkpoints(tmp_path / "run")]
    assert len(steps) >= 2 and steps[-1] == run.env_steps
    early = crl.load_run(tmp_path / "run", step=steps[0])
    assert early.env_steps == steps[0]
    assert not np.allclose(early.policy(obs, goal), action)
    with pytest.raises(FileNotFoundError, match=f"no checkpoint at step 123 \\(kept: {steps[0]}, "):
        crl.load_run(tmp_path / "run", step=123)


def test_cli_train_eval_and_resume(tmp_path, capsys):
    run_dir = tmp_path / "cli"
    args = ["--env", "point_Small", "--steps", "800", "--warmup-steps", "400", "--eval-every", "400",
            "--eval-episodes", "10", "--updates-per-step", "0.08", "--updates-per-call", "8",
            "--crl.batch-size", "16", "--crl.hidden-sizes", "16", "--crl.actor-hidden-sizes", "16",
            "--no-progress", "--run-dir", str(run_dir)]  # fmt: skip
    assert main(["train", *args]) == 0
    out = capsys.readouterr().out
    assert "success" in out and str(run_dir) in out
    assert main(["eval", str(run_dir), "--episodes", "5"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env_steps"] == 800 and 0 <= result["success"] <= 1
    # Extending a finished run with --resume continues from its checkpoint.
    assert main(["train", "--resume", str(run_dir), "--steps", "1200", "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["env_steps"] == 1200
    assert json.loads((run_dir / "config.json").read_text())["steps"] == 1200


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "point_Nowhere"], "Unknown env"),
        (["--steps", "-5"], "steps must be > 0"),
        (["--crl.discount", "1.0"], "discount must be in (0, 1)"),
        (["--crl.batch-size", "4096", "--buffer-size", "1000"], "larger than the buffer"),
        (["--crl.loss", "c_learning"], "needs twin_critics"),
        (["--crl.energy", "manhattan"], "energy must be one of"),
    ],
)
def test_cli_bad_config(tmp_path, capsys, argv, message):
    run_dir = tmp_path / "bad"
    assert main(["train", *argv, "--run-dir", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not run_dir.exists() or not any(run_dir.iterdir())


def test_cli_unknown_agent_and_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--agent", "ppo"])
    assert e.value.code != 0
    assert main(["fly"]) == 2 and "unknown command" in capsys.readouterr().err


def test_existing_run_dir_is_not_overwritten(tmp_path, capsys):
    run_dir = tmp_path / "exists"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{precious}")
    assert main(["train", "--run-dir", str(run_dir), "--steps", "200", "--no-progress"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (run_dir / "config.json").read_text() == "{precious}"


def test_resume_with_corrupt_checkpoints_fails_cleanly(tmp_path, capsys):
    online.train(tiny(tmp_path, steps=800))
    run_dir = tmp_path / "run"
    before = {}
    for p in list_checkpoints(run_dir):
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
        before[p] = bytes(data)
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "checkpoint" in err
    assert {p: p.read_bytes() for p in before} == before
    assert main(["train", "--resume", str(tmp_path / "missing"), "--no-progress"]) == 2


def test_wandb_offline_logging(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # never reach the network
    online.train(tiny(tmp_path, steps=400, wandb_project="crl-test"))
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb"))
