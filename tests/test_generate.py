"""Tests of crl.data.generate: OGBench-format files (read back with ``ogbench.load_dataset``), the point-maze fast
path against the env's own ``step``/oracle, the manipulation oracles, determinism, and the file-safety rules.

Kept fast with few episodes and, for the manipulation envs, the private ``_episode_steps`` override.
"""

from __future__ import annotations

import math
import os

import gymnasium
import numpy as np
import ogbench
import pytest

from crl.data import generate as gen
from crl.data.generate import SUPPORTED, GenerationError, generate_dataset

PM = "pointmaze-medium-navigate-v0"
REQUIRED = [f"pointmaze-{m}-{t}-v0" for m in ("medium", "large", "giant", "teleport") for t in ("navigate", "stitch")]
REQUIRED += [f"cube-{k}-{t}-v0" for k in ("single", "double") for t in ("play", "noisy")]
REQUIRED += [f"scene-{t}-v0" for t in ("play", "noisy")]
REQUIRED += [f"puzzle-{k}-{t}-v0" for k in ("3x3", "4x4") for t in ("play", "noisy")]


def _load(path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def pointmaze(tmp_path_factory):
    out = tmp_path_factory.mktemp("pointmaze")
    stats: dict = {}
    paths = generate_dataset(PM, out, episodes=4, workers=1, seed=3, progress=False, _stats=stats)
    return out, paths, stats


# ----------------------------------------------------------------------------- format


def test_supported_covers_the_required_datasets():
    assert set(REQUIRED) <= set(SUPPORTED)
    assert len(set(SUPPORTED)) == len(SUPPORTED)


def test_pointmaze_files_keys_dtypes_shapes_terminals(pointmaze):
    out, (train_path, val_path), _ = pointmaze
    assert (train_path, val_path) == (out / f"{PM}.npz", out / f"{PM}-val.npz")
    assert sorted(os.listdir(out)) == sorted([f"{PM}.npz", f"{PM}-val.npz"])  # no temporary files left
    for path, n_eps in ((train_path, 4), (val_path, 1)):  # val: max(1, 4 // 10) episodes
        a = _load(path)
        n = n_eps * 1001
        assert set(a) == {"observations", "actions", "terminals", "qpos", "qvel"}
        assert a["observations"].dtype == a["actions"].dtype == a["qpos"].dtype == a["qvel"].dtype == np.float32
        assert a["terminals"].dtype == np.bool_
        for k in ("observations", "actions", "qpos", "qvel"):
            assert a[k].shape == (n, 2), k
            assert np.isfinite(a[k]).all()
        assert a["terminals"].shape == (n,)
        np.testing.assert_array_equal(np.flatnonzero(a["terminals"]), np.arange(1000, n, 1001))
        assert np.abs(a["actions"]).max() <= 1.0
        # No teleports in the medium maze: the observation is the position (qpos) of the same row.
        np.testing.assert_array_equal(a["observations"], a["qpos"])
        # The point moves by 0.2 * action per step, except where a wall stops it.
        step = np.diff(a["qpos"], axis=0)[~a["terminals"][:-1]]
        moved_as_commanded = np.abs(step - 0.2 * a["actions"][:-1][~a["terminals"][:-1]]).max(axis=1) < 1e-4
        assert moved_as_commanded.mean() > 0.5


def test_ogbench_load_dataset_reads_pointmaze(pointmaze):
    _, (train_path, val_path), _ = pointmaze
    for path, n_eps in ((train_path, 4), (val_path, 1)):
        raw = _load(path)
        n = n_eps * 1001
        d = ogbench.load_dataset(str(path))  # compact_dataset=False: (s, a, s') transitions
        assert d["observations"].shape == d["next_observations"].shape == (n - n_eps, 2)
        assert d["terminals"].sum() == n_eps
        keep = ~raw["terminals"]
        np.testing.assert_array_equal(d["observations"], raw["observations"][keep])
        np.testing.assert_array_equal(d["next_observations"], raw["observations"][np.concatenate([[False], keep[:-1]])])
        c = ogbench.load_dataset(str(path), compact_dataset=True, add_info=True)
        assert c["observations"].shape == (n, 2) and c["qpos"].shape == (n, 2)
        assert c["valids"].sum() == n - n_eps
        assert c["terminals"].sum() == 2 * n_eps


def test_val_split_is_a_tenth(tmp_path):
    name = "pointmaze-large-stitch-v0"
    train, val = generate_dataset(name, tmp_path, episodes=25, workers=1, progress=False, _episode_steps=3)
    assert _load(train)["terminals"].sum() == 25
    assert _load(val)["terminals"].sum() == 2 and len(_load(val)["terminals"]) == 6


# ----------------------------------------------------------------------------- point-maze oracle and dynamics


def _random_walk_goals(name: str, episodes: int, steps: int, seed: int) -> int:
    """Goals reached by uniform random actions under the same navigate protocol (baseline for the oracle)."""
    rec = gen._RECIPES[name]
    env = gymnasium.make(rec.env_id, terminate_at_goal=False, max_episode_steps=steps)
    u = env.unwrapped
    maze = gen._MazeTables(u)
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    reached = 0
    for _ in range(episodes):
        init = maze.all_cells[rng.integers(len(maze.all_cells))]
        goal = maze.vertex_cells[rng.integers(len(maze.vertex_cells))]
        env.reset(seed=int(rng.integers(2**31)), options=dict(task_info=dict(init_ij=init, goal_ij=goal)))
        done = False
        while not done:
            _, _, term, trunc, info = env.step(rng.uniform(-1, 1, size=2))
            done = term or trunc
            if info["success"]:
                reached += 1
                u.set_goal(maze.vertex_cells[rng.integers(len(maze.vertex_cells))])
    return reached


def test_navigate_oracle_reaches_several_goals(pointmaze):
    _, _, stats = pointmaze
    oracle = stats["goals_reached"]  # over the 5 episodes (4 train + 1 val) of 1001 steps
    random = _random_walk_goals(PM, episodes=5, steps=1001, seed=0)
    assert oracle >= 15, stats
    assert oracle > 3 * random + 5, (oracle, random)


def _reference_episode(env, maze, kind, steps, sigma, rng, exact_norm):
    """OGBench's loop, literally through ``env.step`` (gymnasium wrappers included) and ``get_oracle_subgoal``,
    consuming the random streams in the order ``_pointmaze_episode`` documents."""
    u = env.unwrapped
    init = maze.all_cells[int(rng.integers(len(maze.all_cells)))]
    if kind == "navigate":
        goal = maze.vertex_cells[int(rng.integers(len(maze.vertex_cells)))]
    else:
        cands = maze.stitch_goals[init]
        goal = cands[int(rng.integers(len(cands)))] if cands else init
    noise = rng.normal(0.0, sigma, size=(steps, 2))
    ob, _ = env.reset(options=dict(task_info=dict(init_ij=init, goal_ij=goal)))
    rows, dones, goals, done, t = [], [], 0, False, 0
    while not done:
        xy = u.get_xy()
        subgoal, _ = u.get_oracle_subgoal(xy, u.cur_goal_xy)
        d = subgoal - xy
        norm = math.sqrt(d[0] * d[0] + d[1] * d[1]) if exact_norm else np.linalg.norm(d)
        action = np.clip(d / (norm + 1e-6) + noise[t], -1, 1)
        next_ob, _, term, trunc, info = env.step(action)
        done = term or trunc
        if info["success"] and kind == "navigate":
            goals += 1
            u.set_goal(maze.vertex_cells[int(rng.integers(len(maze.vertex_cells)))])
        rows.append(np.concatenate([ob, action, info["prev_qpos"], info["prev_qvel"]]))
        dones.append(done)
        ob, t = next_ob, t + 1
    return np.array(rows), goals, dones


@pytest.mark.parametrize(
    "name, episode",
    [(PM, 0), ("pointmaze-teleport-navigate-v0", 1), ("pointmaze-giant-stitch-v0", 0)],
)
def test_pointmaze_fast_path_matches_env_step(name, episode):
    """Seed 0, episode 1 of teleport-navigate goes through two teleports."""
    rec = gen._RECIPES[name]
    env = gymnasium.make(rec.env_id, terminate_at_goal=False, max_episode_steps=rec.steps)
    u = gen._make_env(rec, rec.steps)
    maze = gen._MazeTables(u)
    s = gen._episode_streams(name, 0, episode)
    u.np_random = s.env
    np.random.seed(s.legacy_seed)
    stats: dict = {}
    mine = gen._pointmaze_episode(u, maze, rec.kind, rec.steps, rec.noise, s.policy, stats)
    if name.startswith("pointmaze-teleport"):
        assert stats["teleports"] > 0
    for exact_norm in (True, False):
        s = gen._episode_streams(name, 0, episode)
        env.unwrapped.np_random = s.env
        np.random.seed(s.legacy_seed)
        ref, goals, dones = _reference_episode(env, maze, rec.kind, rec.steps, rec.noise, s.policy, exact_norm)
        assert len(dones) == rec.steps and dones[-1] and not any(dones[:-1])  # truncation = our terminal
        assert goals == stats["goals_reached"]
        if exact_norm:  # same arithmetic: bit-identical observations, actions, qpos, qvel
            np.testing.assert_array_equal(mine, ref)
        else:  # OGBench's np.linalg.norm differs from math.sqrt in the last bit at most
            np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("maze_name", ["medium", "large", "giant", "teleport"])
def test_subgoal_table_matches_get_oracle_subgoal(maze_name):
    rec = gen._RECIPES[f"pointmaze-{maze_name}-navigate-v0"]
    u = gen._make_env(rec, rec.steps)
    maze = gen._MazeTables(u)
    rng = np.random.default_rng(0)
    cells = maze.all_cells
    pairs = [(g, c) for g in cells for c in cells]
    if len(pairs) > 1500:
        pairs = [pairs[i] for i in rng.choice(len(pairs), 1500, replace=False)]
    for goal, cell in pairs:
        gx, gy = np.array(maze.cell_xy(goal)) + rng.uniform(-1, 1, 2)  # the goal noise range
        x, y = np.array(maze.cell_xy(cell)) + rng.uniform(-1.99, 1.99, 2)  # anywhere in the cell
        expected, _ = u.get_oracle_subgoal(np.array([x, y]), (gx, gy))
        gi, gj = maze.goal_cell(gx, gy)
        got = maze.subgoal[gi][gj][int((y + maze.offset_y + 2.0) / 4.0)][int((x + maze.offset_x + 2.0) / 4.0)]
        assert tuple(expected) == got, (goal, cell)
    for cell in cells:
        assert all(_bfs_steps(maze, cell, g) == 4 for g in maze.stitch_goals[cell])


def _bfs_steps(maze, a, b) -> int:
    dist = {a: 0}
    frontier = [a]
    free = set(maze.all_cells)
    while frontier:
        nxt = []
        for i, j in frontier:
            for n in ((i - 1, j), (i, j - 1), (i + 1, j), (i, j + 1)):
                if n in free and n not in dist:
                    dist[n] = dist[(i, j)] + 1
                    nxt.append(n)
        frontier = nxt
    return dist.get(b, -1)


# ----------------------------------------------------------------------------- manipulation


def test_cube_play_files_and_the_cube_moves(tmp_path):
    name, steps = "cube-single-play-v0", 150
    train, val = generate_dataset(name, tmp_path, episodes=2, workers=1, progress=False, _episode_steps=steps)
    for path, n_eps in ((train, 2), (val, 1)):
        a = _load(path)
        n = n_eps * steps
        assert set(a) == {"observations", "actions", "terminals", "qpos", "qvel"}
        assert a["observations"].shape == (n, 28) and a["actions"].shape == (n, 5)
        assert a["qpos"].shape == (n, 21) and a["qvel"].shape == (n, 20)
        assert all(a[k].dtype == np.float32 for k in ("observations", "actions", "qpos", "qvel"))
        assert a["terminals"].dtype == np.bool_
        np.testing.assert_array_equal(np.flatnonzero(a["terminals"]), np.arange(steps - 1, n, steps))
        assert np.abs(a["actions"]).max() <= 1.0
        d = ogbench.load_dataset(str(path))
        assert d["observations"].shape == (n - n_eps, 28)
        c = ogbench.load_dataset(str(path), compact_dataset=True)
        assert c["valids"].sum() == n - n_eps
        # The plan oracle picks the cube up and places it elsewhere within ~100 steps.
        cube = a["qpos"][:, 14:17].reshape(n_eps, steps, 3)
        moved = np.linalg.norm(cube - cube[:, :1], axis=-1).max(axis=1)
        assert (moved > 0.05).all(), moved
        assert (cube[:, :, 2].max(axis=1) > 0.06).all()  # lifted off the table (rest height 0.02)


@pytest.mark.parametrize(
    "name, obs_dim, buttons",
    [("cube-double-noisy-v0", 37, 0), ("scene-play-v0", 40, 2), ("puzzle-3x3-noisy-v0", 55, 9)],
)
def test_manipulation_families(tmp_path, name, obs_dim, buttons):
    steps = 40
    train, _ = generate_dataset(name, tmp_path, episodes=1, workers=1, progress=False, _episode_steps=steps)
    a = _load(train)
    assert a["observations"].shape == (steps, obs_dim)
    if buttons:
        assert a["button_states"].dtype == np.int64 and a["button_states"].shape == (steps, buttons)
        assert set(np.unique(a["button_states"])) <= {0, 1}
    else:
        assert "button_states" not in a
    d = ogbench.load_dataset(str(train), add_info=True)
    assert d["observations"].shape == (steps - 1, obs_dim)


def test_manipulation_episodes_do_not_depend_on_their_predecessors():
    rec, steps = gen._RECIPES["cube-single-noisy-v0"], 30
    both = gen._run_share(rec, 0, 2, 7, steps, lambda n: None)
    second = gen._run_share(rec, 1, 1, 7, steps, lambda n: None)
    for k in both:
        np.testing.assert_array_equal(both[k][steps:], second[k], err_msg=k)
    assert not np.array_equal(both["observations"][:steps], second["observations"])


def test_scene_health_check():
    ok = np.zeros((5, 25))
    ok[:, 14:17] = (0.4, 0.0, 0.02)
    assert gen._scene_healthy(ok)
    right = ok.copy()
    right[3, 15] = 0.29
    assert not gen._scene_healthy(right)
    left_on_table = ok.copy()
    left_on_table[2, 15:17] = (-0.31, 0.02)
    assert not gen._scene_healthy(left_on_table)
    in_drawer = ok.copy()
    in_drawer[2, 15:17] = (-0.31, 0.07)
    assert gen._scene_healthy(in_drawer)


# ----------------------------------------------------------------------------- determinism, workers, safety


def test_deterministic_for_a_seed_and_independent_of_workers(tmp_path):
    name = "pointmaze-large-stitch-v0"
    one = generate_dataset(name, tmp_path / "w1", episodes=6, workers=1, seed=11, progress=False)
    three = generate_dataset(name, tmp_path / "w3", episodes=6, workers=3, seed=11, progress=True)
    other = generate_dataset(name, tmp_path / "s12", episodes=6, workers=1, seed=12, progress=False)
    for p1, p3, po in zip(one, three, other):
        a, b, c = _load(p1), _load(p3), _load(po)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert not np.array_equal(a["observations"], c["observations"])
    assert sorted(os.listdir(tmp_path / "w3")) == sorted(p.name for p in three)


def test_refuses_to_overwrite_without_force(tmp_path):
    name = "pointmaze-medium-stitch-v0"
    kw = dict(episodes=1, workers=1, progress=False, _episode_steps=3)
    train, val = generate_dataset(name, tmp_path, seed=1, **kw)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (train, val)}
    with pytest.raises(GenerationError, match="already exist"):
        generate_dataset(name, tmp_path, seed=2, **kw)
    val.unlink()
    with pytest.raises(GenerationError, match="already exist"):  # either file blocks
        generate_dataset(name, tmp_path, seed=2, **kw)
    assert (train.read_bytes(), train.stat().st_mtime_ns) == before[train]
    generate_dataset(name, tmp_path, seed=2, force=True, **kw)
    assert train.read_bytes() != before[train][0] and val.exists()
    assert sorted(os.listdir(tmp_path)) == sorted([train.name, val.name])


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_no_partial_files_on_error(tmp_path, monkeypatch, error):
    calls = []
    real = gen._pointmaze_episode

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise error("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(gen, "_pointmaze_episode", failing)
    with pytest.raises(error):
        generate_dataset("pointmaze-medium-stitch-v0", tmp_path / "out", episodes=3, workers=1, progress=False)
    assert os.listdir(tmp_path / "out") == []


def test_no_partial_files_when_a_worker_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "_WORKER_BOOT", "import sys; sys.stderr.write('worker exploded'); sys.exit(3)")
    with pytest.raises(RuntimeError, match="worker exploded"):
        generate_dataset("pointmaze-medium-stitch-v0", tmp_path, episodes=2, workers=2, progress=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "name, why",
    [
        ("antmaze-large-navigate-v0", "expert"),
        ("humanoidmaze-medium-stitch-v0", "expert"),
        ("antsoccer-arena-navigate-v0", "expert"),
        ("antmaze-medium-explore-v0", "expert"),
        ("visual-cube-single-play-v0", "visual"),
        ("visual-antmaze-medium-navigate-v0", "visual"),
        ("powderworld-easy-play-v0", "not supported yet"),
    ],
)
def test_unsupported_datasets_explain_and_point_to_official_files(tmp_path, name, why):
    with pytest.raises(GenerationError) as e:
        generate_dataset(name, tmp_path / "out")
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert why in msg
    for part in (f"DIR/{name}.npz", f"DIR/{name}-val.npz", "~/.ogbench/data", f"crl train --env {name} --data-dir DIR"):
        assert part in msg, part
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["pointmaze-huge-navigate-v0", "cube-single-v0", "hello"])
def test_unknown_names_list_the_supported_ones(tmp_path, name):
    with pytest.raises(GenerationError, match="unknown dataset") as e:
        generate_dataset(name, tmp_path)
    assert all(n in str(e.value) for n in REQUIRED)


@pytest.mark.parametrize("kwargs", [dict(episodes=0), dict(workers=0), dict(seed=-1), dict(episodes=2.5)])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises(GenerationError):
        generate_dataset(PM, tmp_path / "out", progress=False, **kwargs)
    assert not (tmp_path / "out").exists()
