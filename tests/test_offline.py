"""Offline training on OGBench datasets: loading and validation, presets, the OGBench evaluation protocol, the
offline loop (run directory, resume, learning) and the CLI.

Datasets here are small files in OGBench's format recorded from the real OGBench pointmaze env with random
actions (no download, no generator needed).
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import pytest

import crl
from crl.cli import main
from crl.data.offline import DatasetError
from crl.data.ogbench_data import dataset_paths, env_id, is_ogbench_dataset, load_ogbench
from crl.envs.ogbench_env import OGBenchEvaluator, PortablePolicy, make_ogbench_env, policy_rows
from crl.train import online
from crl.train.checkpoint import list_checkpoints
from crl.train.presets import ogbench_flags, preset_config

ogbench = pytest.importorskip("ogbench")

NAME = "pointmaze-medium-navigate-v0"


def record_episodes(num_episodes: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Random-action episodes of the real pointmaze-medium env, stored as OGBench stores them; episodes start in
    turn at the 10 start and goal cells of the env's evaluation tasks."""
    import gymnasium

    env = gymnasium.make(env_id(NAME))
    tasks = env.unwrapped.task_infos
    cells = [t["init_ij"] for t in tasks] + [t["goal_ij"] for t in tasks]
    rng = np.random.default_rng(seed)
    obs, actions, terminals = [], [], []
    for e in range(num_episodes):
        np.random.seed(seed * 1000 + e)  # the maze env's start noise comes from the global generator
        cell = cells[(e + seed) % len(cells)]
        o, _ = env.reset(options=dict(task_info=dict(init_ij=cell, goal_ij=cell)))
        for t in range(steps + 1):
            a = rng.uniform(-1, 1, 2).astype(np.float32)
            obs.append(o)
            actions.append(a)
            terminals.append(t == steps)
            if t < steps:
                o, *_ = env.step(a)
    return {
        "observations": np.asarray(obs, np.float32),
        "actions": np.asarray(actions, np.float32),
        "terminals": np.asarray(terminals, bool),
    }


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ogbench")
    np.savez_compressed(d / f"{NAME}.npz", **record_episodes(24, 60, seed=0))
    np.savez_compressed(d / f"{NAME}-val.npz", **record_episodes(10, 60, seed=1))
    return d


def small(data_dir: Path, run_dir: Path, agent: str = "crl", **kw) -> crl.TrainConfig:
    """The OGBench preset with tiny networks: 5 tasks x 1 episode per evaluation."""
    cfg = preset_config(NAME, agent)
    net = dict(batch_size=32, actor_hidden_sizes=(32, 32))
    agent_cfg = {"crl": replace(cfg.crl, hidden_sizes=(32, 32), repr_dim=16, **net), "gcbc": replace(cfg.gcbc, **net)}
    base = dict(data_dir=data_dir, run_dir=run_dir, steps=40, eval_every=20, eval_episodes=1, updates_per_call=10,
                progress=False, eval_workers=0)
    return replace(cfg, **{agent: agent_cfg[agent]}, **{**base, **kw})


# ----------------------------------------------------------------------------- names, files, loading


def test_dataset_names():
    for name in ("pointmaze-medium-navigate-v0", "scene-play-v0", "cube-single-noisy-v0", "puzzle-3x3-play-v0",
                 "antmaze-large-explore-v0", "visual-cube-single-play-v0", "antsoccer-arena-stitch-v0"):
        assert is_ogbench_dataset(name), name
    for name in ("point_U", "pointmaze-medium-v0", "cube-single-v0", "antmaze-large-navigate-singletask-v0", "fetch_reach"):
        assert not is_ogbench_dataset(name), name
    assert env_id("antmaze-large-navigate-v0") == "antmaze-large-v0"
    assert env_id("scene-play-v0") == "scene-v0"
    train, val = dataset_paths(NAME, data_dir="/d")
    assert (str(train), str(val)) == (f"/d/{NAME}.npz", f"/d/{NAME}-val.npz")
    train, val = dataset_paths(NAME, dataset="/x/mine.npz")
    assert (str(train), str(val)) == ("/x/mine.npz", "/x/mine-val.npz")


def test_loader_matches_ogbench_compact_semantics(data_dir):
    data, val = load_ogbench(NAME, data_dir=data_dir, obs_dim=2, act_dim=2)
    ref = ogbench.load_dataset(str(data_dir / f"{NAME}.npz"), compact_dataset=True)
    valid = np.flatnonzero(ref["valids"] > 0)
    assert data.traj.num_transitions == len(valid) == 24 * 60
    assert val.traj.num_transitions == 10 * 60
    assert (data.spec.obs_dim, data.spec.goal_dim, data.spec.act_dim) == (2, 2, 2)
    # every valid row of OGBench's compact dataset is a state of our container, with the same successor
    starts, lens = np.asarray(data.traj.ep_start), np.asarray(data.traj.ep_len)
    ours = np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lens)])
    np.testing.assert_array_equal(ours, valid)
    obs = np.asarray(data.traj.obs)
    np.testing.assert_array_equal(obs[ours], ref["observations"][valid])
    np.testing.assert_array_equal(obs[ours + 1], ogbench.load_dataset(str(data_dir / f"{NAME}.npz"))["next_observations"])


def _write(path: Path, arrays: dict) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _corruptions(good: dict) -> dict:
    n = len(good["observations"])
    nan_obs = good["observations"].copy()
    nan_obs[7, 1] = np.nan
    no_last = good["terminals"].copy()
    no_last[-1] = False
    single = good["terminals"].copy()
    single[[0, 1]] = True
    return {
        "missing key": ({k: v for k, v in good.items() if k != "actions"}, "missing key"),
        "mismatched lengths": ({**good, "actions": good["actions"][:-3]}, "mismatched lengths"),
        "integer observations": ({**good, "observations": good["observations"].astype(np.int64)}, "dtype int64"),
        "NaN": ({**good, "observations": nan_obs}, "NaN or inf .* first at row 7"),
        "no boundaries": ({**good, "terminals": np.zeros(n, bool)}, "no episode boundaries"),
        "open last episode": ({**good, "terminals": no_last}, "does not end an episode"),
        "single-row episode": ({**good, "terminals": single}, "single row"),
        "pixels": ({**good, "observations": np.zeros((n, 8, 8, 3), np.float32)}, "pixel observations"),
        "wrong obs dim": ({**good, "observations": np.zeros((n, 3), np.float32)}, "3 dims but env pointmaze-medium-v0 has 2"),
        "bad terminal values": ({**good, "terminals": good["terminals"].astype(np.int32) * 2}, "0 or 1"),
    }


@pytest.mark.parametrize("case", list(_corruptions(record_episodes(2, 5, 0))))
def test_malformed_datasets_are_rejected_with_a_precise_message(tmp_path, case):
    arrays, pattern = _corruptions(record_episodes(2, 5, 0))[case]
    path = _write(tmp_path / "bad.npz", arrays)
    with pytest.raises(DatasetError, match=pattern) as e:
        load_ogbench(NAME, dataset=path, obs_dim=2, act_dim=2)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_unreadable_and_missing_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_ogbench(NAME, dataset=junk)
    with pytest.raises(DatasetError, match="crl data generate"):
        load_ogbench(NAME, data_dir=tmp_path / "nowhere")


def test_val_file_must_match_train(tmp_path, data_dir):
    train = tmp_path / "d.npz"
    train.write_bytes((data_dir / f"{NAME}.npz").read_bytes())
    val = record_episodes(2, 5, 0)
    _write(tmp_path / "d-val.npz", {**val, "actions": np.zeros((len(val["actions"]), 3), np.float32)})
    with pytest.raises(DatasetError, match="d-val.npz: shapes"):
        load_ogbench(NAME, dataset=train)


def test_cli_rejects_a_bad_dataset_and_writes_nothing(tmp_path, capsys):
    path = _write(tmp_path / "bad.npz", {**record_episodes(2, 5, 0), "actions": np.zeros((3, 2), np.float32)})
    run_dir = tmp_path / "run"
    code = main(["train", "--env", NAME, "--dataset", str(path), "--run-dir", str(run_dir), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "mismatched lengths" in err and err.count("\n") == 1
    assert not run_dir.exists()
    assert main(["data", "check", NAME, "--dataset", str(path)]) == 2


def test_cli_data_check(data_dir, capsys):
    assert main(["data", "check", NAME, "--data-dir", str(data_dir)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train"]["episodes"] == 24 and out["train"]["transitions"] == 1440 and out["val"]["episodes"] == 10


# ----------------------------------------------------------------------------- presets


def test_ogbench_per_dataset_flags():
    # (alpha, discount, actor random-goal fraction) from OGBench's hyperparameter table
    expected = {
        "pointmaze-medium-navigate-v0": (0.03, 0.99, 0.0),
        "pointmaze-giant-stitch-v0": (0.03, 0.995, 0.5),
        "antmaze-large-navigate-v0": (0.1, 0.99, 0.0),
        "antmaze-teleport-explore-v0": (0.003, 0.99, 1.0),
        "humanoidmaze-medium-navigate-v0": (0.1, 0.995, 0.0),
        "antsoccer-arena-stitch-v0": (0.3, 0.99, 0.5),
        "cube-single-play-v0": (3.0, 0.99, 0.0),
        "puzzle-4x4-noisy-v0": (0.1, 0.99, 0.0),
        "scene-play-v0": (3.0, 0.99, 0.0),
    }
    for name, (alpha, gamma, rand) in expected.items():
        f = ogbench_flags(name)
        assert (f["bc_coef"], f["discount"], f["actor_random_goals"]) == (alpha, gamma, rand), name


def test_preset_config():
    cfg = preset_config("pointmaze-giant-stitch-v0")
    assert (cfg.steps, cfg.eval_every, cfg.eval_episodes) == (1_000_000, 100_000, 50)
    assert (cfg.goal_sampling, cfg.actor_goals, cfg.actor_random_goals) == ("ogbench", "uniform", 0.5)
    assert cfg.crl.batch_size == 1024 and cfg.crl.hidden_sizes == (512, 512, 512) and cfg.crl.twin_critics
    assert (cfg.crl.bc_coef, cfg.crl.discount, cfg.crl.energy, cfg.crl.actor_loss) == (0.03, 0.995, "scaled_dot", "ddpgbc")
    # evaluation pool: the whole protocol at once for the light maze envs, 50 copies for the heavy manipulation ones
    assert cfg.eval_envs == 250 and preset_config("cube-single-play-v0").eval_envs == 20
    assert preset_config("pointmaze-medium-navigate-v0", eval_envs=7).eval_envs == 7
    gcbc = preset_config(NAME, "gcbc").gcbc
    assert (gcbc.batch_size, gcbc.policy, gcbc.actor_hidden_sizes) == (1024, "gaussian", (512, 512, 512))
    paper = preset_config(NAME, preset="paper-offline")
    assert (paper.crl.bc_coef, paper.crl.repr_dim, paper.goal_sampling, paper.actor_goals) == (0.05, 16, "ogbench", "same")
    assert preset_config("point_U") == crl.TrainConfig(env="point_U")
    assert preset_config(NAME, steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown preset"):
        preset_config(NAME, preset="d4rl")


def test_cli_flags_override_the_dataset_preset(tmp_path, data_dir, capsys):
    run_dir = tmp_path / "run"
    code = main(["train", "--env", NAME, "--data-dir", str(data_dir), "--run-dir", str(run_dir), "--steps", "10",
                 "--eval-workers", "0",
                 "--eval-every", "10", "--eval-episodes", "1", "--updates-per-call", "5", "--no-progress",
                 "--crl.bc-coef", "0.5", "--crl.batch-size", "16", "--crl.hidden-sizes", "16", "16",
                 "--crl.repr-dim", "8", "--crl.actor-hidden-sizes", "16"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OGBench" in out and "after 10 updates" in out
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["crl"]["bc_coef"] == 0.5 and cfg["crl"]["discount"] == 0.99 and cfg["crl"]["twin_critics"]
    assert cfg["crl"]["energy"] == "scaled_dot" and cfg["goal_sampling"] == "ogbench" and cfg["actor_goals"] == "uniform"
    assert cfg["steps"] == 10 and cfg["eval_episodes"] == 1


# ----------------------------------------------------------------------------- evaluation protocol


def test_teleport_draws_do_not_depend_on_the_other_envs_in_the_group():
    """The teleport mazes pick a teleport's exit with the global np.random inside step: each env keeps its own
    generator state (seeded by its reset), so two envs reset with the same seed take the same exit, whatever order
    they are stepped in, and the caller's global generator is left as it was."""
    from crl.envs.ogbench_env import EnvGroup

    group = EnvGroup("pointmaze-teleport-v0", 2)
    exits = set()
    np.random.seed(5)
    before = np.random.get_state()[1].copy()
    for seed in range(6):
        group.reset([0, 1], [seed, seed], 1)
        for raw in group.raw:
            raw.set_xy(np.array(raw._teleport_info["teleport_in_xys"][0]))
        group.step([0, 1], np.zeros((2, 2), np.float32))
        xy0, xy1 = (raw.get_xy() for raw in group.raw)
        np.testing.assert_array_equal(xy0, xy1)
        exits.add(tuple(xy0))
    assert len(exits) > 1  # the exits are random across seeds
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    group.close()


@pytest.mark.parametrize("name", ["cube-single-v0", "antmaze-medium-v0"])
def test_reset_seed_determines_the_episode(name):
    """OGBench's task resets take random actions (from an unseeded action space) before they record the goal: with
    make_ogbench_env, the reset's seed fixes them, so the goal and a deterministic policy's episode repeat exactly
    (in two envs, and in one env after another episode), and other seeds still give other goals."""
    def episode(env, seed):
        np.random.seed(seed)  # the maze envs draw their start/goal noise from the global generator
        obs, info = env.reset(seed=seed, options=dict(task_id=2))
        goal, trajectory = info["goal"], [obs]
        for _ in range(15):
            action = np.tanh(np.resize(goal - obs, env.action_space.shape)).astype(np.float32)
            obs, *_ = env.step(action)
            trajectory.append(obs)
        return goal, np.array(trajectory)

    a, b = make_ogbench_env(name), make_ogbench_env(name)
    goal, traj = episode(a, 3)
    episode(b, 4)
    for env in (a, b):
        g, t = episode(env, 3)
        np.testing.assert_array_equal(g, goal)
        np.testing.assert_array_equal(t, traj)
    assert not np.array_equal(episode(a, 4)[0], goal)
    a.close()
    b.close()


def test_lockstep_evaluation_equals_one_episode_at_a_time():
    def towards_goal(obs, goal):
        return np.clip(3.0 * (goal - obs), -1, 1)

    seq = OGBenchEvaluator(env_id(NAME), 1)
    par = OGBenchEvaluator(env_id(NAME), 3)
    with OGBenchEvaluator(env_id(NAME), 3, workers=2) as procs:  # 3 copies split over 2 worker processes
        for task in (1, 4):
            a = seq.run_task(towards_goal, task, episodes=4, seed=11)
            b = par.run_task(towards_goal, task, episodes=4, seed=11)  # a wave of 3, then a wave of 1
            assert a == b
            assert procs.run_task(towards_goal, task, episodes=4, seed=11) == a
        # a policy that fails mid-episode leaves the workers ready for the next evaluation
        calls = []

        def failing(obs, goal):
            calls.append(1)
            if len(calls) == 3:
                raise ValueError("policy failed")
            return towards_goal(obs, goal)

        with pytest.raises(ValueError, match="policy failed"):
            procs.run_task(failing, 1, episodes=4, seed=11)
        assert procs.run_task(towards_goal, 4, episodes=4, seed=11) == a
    # the greedy policy reaches the goal on some tasks and not others; success is the episode's final state
    res = par.evaluate(towards_goal, episodes=2, seed=0)
    assert set(res) >= {"success", "success_any"} | {f"task{k}_success" for k in range(1, 6)}
    assert res["success"] == pytest.approx(np.mean([res[f"task{k}_success"] for k in range(1, 6)]))
    assert 0 < res["episode_length"] <= 1000
    # all tasks' episodes queued together (copies restart into other tasks' episodes) give each task its results alone
    alone = {k: seq.run_task(towards_goal, k, episodes=2, seed=0) for k in range(1, 6)}
    for k in range(1, 6):
        assert res[f"task{k}_success"] == alone[k]["success"]
    assert res["episode_length"] == pytest.approx(np.mean([alone[k]["episode_length"] for k in range(1, 6)]))
    # and each episode is OGBench's own loop: one gymnasium env, reset with the episode's seed and task
    queue = [(4, 7), (2, 8), (4, 9)]
    for (task, seed), (final, _, length) in zip(queue, par.run_episodes(towards_goal, queue)):
        env = make_ogbench_env(env_id(NAME))
        np.random.seed(seed)
        obs, info = env.reset(seed=seed, options=dict(task_id=task))
        goal, n, done = info["goal"], 0, False
        while not done:
            obs, _, terminated, truncated, info = env.step(towards_goal(obs[None], goal[None])[0].astype(np.float32))
            n, done = n + 1, terminated or truncated
        env.close()
        assert (final, length) == (bool(info["success"]), n)


def test_point_maze_fast_step_is_ogbench_step():
    """EnvGroup steps plain point mazes itself (_step_points): observations, success and done equal, bit for bit,
    those of OGBench's own step, through wall contacts, goals reached and resets; teleport mazes keep OGBench's."""
    from crl.envs.ogbench_env import EnvGroup

    fast, slow = EnvGroup("pointmaze-medium-v0", 3), EnvGroup("pointmaze-medium-v0", 3)
    assert fast.points
    slow.points = False
    rng = np.random.default_rng(0)
    seeds = iter(range(100, 10_000))
    idx, successes, blocked, free = np.arange(3), 0, 0, 0
    for group in (fast, slow):
        group.reset(idx, [1, 2, 3], 2)
    obs, goal = fast.reset(idx, [1, 2, 3], 2)
    for _ in range(600):
        actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        actions[1] = np.clip(3.0 * (goal[1] - obs[1]), -1, 1)  # heads for its goal: reaches it, or a wall
        o_fast, d_fast, s_fast = fast.step(idx, actions)
        o_slow, d_slow, s_slow = slow.step(idx, actions)
        np.testing.assert_array_equal(o_fast, o_slow)
        np.testing.assert_array_equal(d_fast, d_slow)
        np.testing.assert_array_equal(s_fast, s_slow)
        successes += s_fast.sum()
        moved, commanded = np.linalg.norm(o_fast - obs, axis=1), 0.2 * np.linalg.norm(actions, axis=1)
        blocked += ((commanded > 0.1) & (moved < 0.5 * commanded)).sum()
        free += ((commanded > 0.1) & (np.abs(moved - commanded) < 0.01)).sum()
        obs = o_fast
        for i in np.flatnonzero(d_fast):
            seed, task = next(seeds), int(rng.integers(1, 6))
            (obs[i],), (goal[i],) = fast.reset([i], [seed], task)
            slow.reset([i], [seed], task)
    assert successes > 0 and blocked > 0 and free > 0  # goals reached, steps stopped by walls, free steps
    assert not EnvGroup("pointmaze-teleport-v0", 1).points
    for group in (fast, slow):
        group.close()


def test_policy_rows_are_the_running_copies_rounded_up_to_a_power_of_two():
    assert [policy_rows(live, 125) for live in (1, 2, 3, 5, 33, 64, 65, 125)] == [1, 2, 4, 8, 64, 64, 125, 125]
    assert [policy_rows(live, 125, 33) for live in (1, 20, 33, 40, 100)] == [33, 33, 64, 64, 125]
    assert [policy_rows(live, 25, 33) for live in (1, 25)] == [25, 25]  # never more rows than copies


def test_portable_policy_runs_in_the_workers_with_the_same_results():
    import jax.numpy as jnp

    def towards_goal(params, obs, goal):
        return jnp.clip(params["gain"] * (goal - obs), -1, 1)

    policy = PortablePolicy(towards_goal, {"gain": np.float32(3.0)})
    queue = [(task, 100 + e) for task in (1, 4, 5) for e in range(3)]
    with OGBenchEvaluator(env_id(NAME), 4, workers=2) as procs:
        # the workers run the exported policy themselves; the same function called here every step gives the same
        pipelined = procs.run_episodes(lambda o, g: policy(o, g), queue)
        assert procs.run_episodes(policy, queue) == pipelined
        assert len({length for _, _, length in pipelined}) > 1  # some episodes end early at the goal, some do not
        # the workers run the policy on their running copies only (1 or 2 rows here): the same episodes
        procs.min_policy_batch = 1
        assert procs.run_episodes(policy, queue) == pipelined
        # a policy that cannot be exported, or that a worker cannot load, is reported; the workers stay usable
        with pytest.raises(ValueError, match="Incompatible shapes"):
            procs.run_episodes(PortablePolicy(towards_goal, {"gain": np.ones(3, np.float32)}), queue)
        broken = PortablePolicy(towards_goal, {"gain": np.float32(3.0)})
        broken.export = lambda *shape: b"not an exported function"
        with pytest.raises(RuntimeError, match="evaluation worker failed"):
            procs.run_episodes(broken, queue)
        assert procs.run_episodes(policy, queue) == pipelined
    with OGBenchEvaluator(env_id(NAME), 3) as local:  # in-process: called here as a function
        assert local.run_episodes(policy, queue) == pipelined


def test_evaluation_workers_work_from_an_unguarded_script(tmp_path):
    # A user script without `if __name__ == "__main__"`: workers must not re-run it (multiprocessing's spawn would),
    # and a worker that cannot make its env reports the error instead of hanging.
    script = tmp_path / "user_script.py"
    script.write_text(
        "import numpy as np\n"
        "from crl.envs.ogbench_env import OGBenchEvaluator\n"
        "print('script body ran')\n"
        f"with OGBenchEvaluator({env_id(NAME)!r}, 2, workers=2) as ev:\n"
        "    r = ev.run_task(lambda o, g: np.clip(3.0 * (g - o), -1, 1), 1, episodes=2, seed=0)\n"
        "print('RESULT', r['episode_length'])\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("script body ran") == 1 and "RESULT" in out.stdout
    with pytest.raises(RuntimeError, match="evaluation worker failed"):
        from crl.envs.ogbench_env import _RemoteGroup
        g = _RemoteGroup("no-such-env-v0", 1)
        try:
            g.result()
        finally:
            g.close()


def test_state_envs_run_where_no_gl_library_loads(tmp_path):
    # A machine without libEGL/libOSMesa (a CUDA container, say): forcing MUJOCO_GL=egl would make `import mujoco`
    # fail; a state-only OGBench env must still run, and a rendering env must say what to install.
    script = (
        "import os, numpy as np\n"
        "import crl.envs.task as task\n"
        "task._loadable = lambda library: False\n"
        "from crl.envs.ogbench_env import make_ogbench_env\n"
        f"env = make_ogbench_env({env_id(NAME)!r})\n"
        "obs, info = env.reset(seed=0)\n"
        "obs, *_ = env.step(np.zeros(2, np.float32))\n"
        "print('BACKEND', os.environ['MUJOCO_GL'], obs.shape)\n"
        "os.environ.pop('MUJOCO_GL')\n"
        "try:\n"
        "    task.headless_gl(need_render=True)\n"
        "except task.MissingPackageError as e:\n"
        "    print('RENDER', e)\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k != "MUJOCO_GL"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "BACKEND disable (2,)" in out.stdout
    assert "RENDER rendering needs EGL or OSMesa" in out.stdout and "libegl1" in out.stdout


def test_headless_gl_keeps_the_users_choice_and_prefers_egl(monkeypatch):
    import os

    from crl.envs import task

    loadable = task._loadable
    assert not loadable("libcertainly-not-a-library.so.9")
    monkeypatch.setattr(os, "environ", {"MUJOCO_GL": "osmesa"})
    assert task.headless_gl(need_render=True) == "osmesa"
    monkeypatch.setattr(os, "environ", {})
    monkeypatch.setattr(task, "_loadable", lambda library: library.startswith("libOSMesa"))
    assert task.headless_gl(need_render=True) == "osmesa" and os.environ["MUJOCO_GL"] == "osmesa"
    monkeypatch.setattr(os, "environ", {})
    monkeypatch.setattr(task, "_loadable", lambda library: True)
    assert task.headless_gl(need_render=False) == "egl" and os.environ["MUJOCO_GL"] == "egl"


# ----------------------------------------------------------------------------- the offline loop


def _eval_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "eval.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("agent", ["crl", "gcbc"])
def test_offline_run_directory(tmp_path, data_dir, agent):
    summary = online.train(small(data_dir, tmp_path / "run", agent))
    run_dir = tmp_path / "run"
    rows = _eval_rows(run_dir)
    assert [int(r["updates"]) for r in rows] == [20, 40]
    for col in ("success", "success_any", "task1_success", "task5_success", "wall_seconds"):
        assert col in rows[0]
    for key in ("success", "updates", "wall_seconds", "env", "agent", "seed", "task3_success", "dataset_transitions"):
        assert key in summary
    assert summary["updates"] == 40 and summary["finished"] and 0.0 <= summary["success"] <= 1.0
    assert json.loads((run_dir / "summary.json").read_text())["success"] == summary["success"]
    assert len(list_checkpoints(run_dir)) == 2
    # the finished run loads back and acts, and `crl eval` uses the OGBench protocol
    run = crl.load_run(run_dir)
    assert run.policy(np.zeros(2), np.ones(2)).shape == (2,)
    result = run.evaluate(episodes=1)
    assert "task1_success" in result


def test_offline_resume_continues_identically(tmp_path, data_dir):
    straight = online.train(small(data_dir, tmp_path / "a"))
    # the resumed run also evaluates in 2 worker processes (each runs the exported policy): the same rows
    cfg = small(data_dir, tmp_path / "b", eval_workers=2)
    online.train(cfg, stop_after_env_steps=20)
    assert [int(r["updates"]) for r in _eval_rows(tmp_path / "b")] == [20]
    resumed = online.train(cfg, resume=True)
    _assert_same_run(tmp_path / "a", straight, tmp_path / "b", resumed)
    assert [m["from"] for m in resumed["machines"]] == [{"updates": 0}, {"updates": 20}]  # both segments recorded


def test_offline_checkpoint_every_resumes_identically(tmp_path, data_dir, interrupt_train_call):
    straight = online.train(small(data_dir, tmp_path / "a"))
    restore = interrupt_train_call(4)  # after the checkpoint at update 30, between the evaluations at 20 and 40
    cfg = small(data_dir, tmp_path / "b", checkpoint_every=5, checkpoints_kept=3)
    with pytest.raises(KeyboardInterrupt):
        online.train(cfg)
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == [f"ckpt_{n:09d}.ckpt" for n in (10, 20, 30)]
    restore()
    _assert_same_run(tmp_path / "a", straight, tmp_path / "b", online.train(cfg, resume=True))


def _assert_same_run(dir_a, summary_a, dir_b, summary_b):
    """Two offline runs have the same evaluation rows (but wall times), final success and final state."""
    assert _strip_wall(_eval_rows(dir_a)) == _strip_wall(_eval_rows(dir_b))
    assert summary_a["success"] == summary_b["success"]
    a, b = crl.load_run(dir_a), crl.load_run(dir_b)
    for x, y in zip(jax.tree.leaves(a.state), jax.tree.leaves(b.state)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _strip_wall(rows):
    return [{k: v for k, v in r.items() if k != "wall_seconds"} for r in rows]


def test_offline_critic_learns(data_dir):
    """The critic's in-batch accuracy on the held-out -val file rises far above chance (1/B = 0.03; about 0.2 is
    reached after 600 updates: random-walk rows from episodes that start in the same cell are hard to tell apart)."""
    cfg = small(data_dir, None)
    cfg = replace(cfg, crl=replace(cfg.crl, hidden_sizes=(64, 64), repr_dim=32))
    data, val = load_ogbench(NAME, data_dir=data_dir)
    learner = online.Learner(cfg, data.spec)
    state = learner.init(jax.random.key(0))

    def val_accuracy(state):
        return np.mean([float(learner.metrics_call(state, val.traj, jax.random.key(j))["categorical_accuracy"])
                        for j in range(10)])

    before = val_accuracy(state)
    for i in range(6):
        state, _ = learner.train_call(state, data.traj, jax.random.key(10 + i), 100)
    after = val_accuracy(state)
    assert before < 0.07 and after > 0.12, (before, after)
