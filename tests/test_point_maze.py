"""Tests of the vectorised point mazes, their gymnasium view and the env registry."""

import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from crl.envs import POINT_ENVS as ENV_NAMES, PointMaze, UnknownEnvError, make_gym_env, make_vec_env
from crl.envs.base import VecGoalEnv
from crl.envs.point_maze import LAYOUTS, parse_layout

MOVES = [(1, 0), (-1, 0), (0, 1), (0, -1)]


def reference_step(walls, state, action):
    """One noise-free step of the original (scalar) point_env.py dynamics."""
    h, w = walls.shape

    def blocked(s):
        if s[0] < 0 or s[1] < 0 or s[0] >= h or s[1] >= w:
            return True
        return bool(walls[int(np.floor(s[0])), int(np.floor(s[1]))])

    state = state.copy()
    action = np.clip(action, -1.0, 1.0)
    for _ in range(10):
        for axis in range(2):
            new_state = state.copy()
            new_state[axis] += 0.1 * action[axis]
            if not blocked(new_state):
                state = new_state
    return state


def cell_moves(walls, want_blocked):
    """All (cell i, j, move di, dj) whose neighbour is blocked (wall/outside) or free."""
    h, w = walls.shape
    out = []
    for i, j in np.argwhere(~walls):
        for di, dj in MOVES:
            ni, nj = i + di, j + dj
            is_blocked = not (0 <= ni < h and 0 <= nj < w) or walls[ni, nj]
            if is_blocked == want_blocked:
                out.append((i, j, di, dj))
    return np.array(out, dtype=np.float64)


def test_layouts_match_paper():
    walls = {name: PointMaze(name, 1).walls for name in LAYOUTS}
    assert {k: v.shape for k, v in walls.items()} == {
        "Small": (4, 4), "Cross": (7, 7), "FourRooms": (11, 11), "U": (9, 3),
        "Spiral11x11": (11, 11), "Maze11x11": (11, 11)}
    assert walls["Small"].sum() == 0
    assert walls["Cross"][3].tolist() == [False] + [True] * 5 + [False]
    assert walls["U"][4].tolist() == [True, True, False]
    assert walls["FourRooms"][6].tolist() == [False] * 5 + [True] * 3 + [False, True, True]
    assert walls["Spiral11x11"][10, 10] == False and walls["Spiral11x11"][0].all()  # noqa: E712
    assert walls["Maze11x11"][9].tolist() == [False] + [True] * 9 + [False]
    assert [int(w.sum()) for w in walls.values()] == [0, 9, 17, 8, 66, 54]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_walls_stop_motion(layout):
    moves = cell_moves(parse_layout(layout), want_blocked=True)
    env = make_vec_env(f"point_{layout}", len(moves))
    env.reset()
    env.state = moves[:, :2] + 0.5  # cell centres
    start = env.state.copy()
    env.step(moves[:, 2:])  # push at full speed into the wall / grid edge
    # The point slides to the cell border but never crosses it.
    assert np.array_equal(np.floor(env.state), moves[:, :2])
    assert np.all(np.abs(env.state - start).sum(-1) > 0.35)
    env.step(moves[:, 2:])  # pushing again keeps it out
    assert np.array_equal(np.floor(env.state), moves[:, :2])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_free_neighbours_are_entered(layout):
    moves = cell_moves(parse_layout(layout), want_blocked=False)
    env = make_vec_env(f"point_{layout}", len(moves))
    env.reset()
    env.state = moves[:, :2] + 0.5
    env.step(moves[:, 2:])
    np.testing.assert_allclose(env.state, moves[:, :2] + moves[:, 2:] + 0.5, atol=0.05)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_random_walk_stays_in_free_space(name):
    env = make_vec_env(name, 512, seed=1)
    rng = np.random.default_rng(0)
    env.reset()
    for t in range(60):
        action = rng.choice([-1.0, 1.0], (512, 2)) if t % 2 else rng.uniform(-1, 1, (512, 2))
        obs, _, _ = env.step(action)
        # The float64 state is never in a wall or off the grid (the float32 obs may round
        # onto a cell border, but stays within the observation bounds).
        cells = np.floor(env.state).astype(int)
        assert np.all(env.state >= 0) and np.all(cells < env.walls.shape)
        assert not env.walls[cells[:, 0], cells[:, 1]].any()
        assert np.all(obs >= 0) and np.all(obs <= env.walls.shape)


def test_free_motion_is_one_unit_per_step():
    env = make_vec_env("point_Small", 4, seed=0)
    env.reset()
    env.state = np.full((4, 2), 1.5)
    action = np.array([[1, 1], [-1, 1], [1, 0], [0, -1]], dtype=np.float32)
    obs, _, _ = env.step(action)
    np.testing.assert_allclose(obs, 1.5 + action, atol=0.03)  # noise std 0.01
    # Clipped to [-1, 1]: a bigger action moves no further.
    env.state = np.full((4, 2), 1.5)
    obs, _, _ = env.step(5 * action)
    np.testing.assert_allclose(obs, 1.5 + action, atol=0.03)
    # Without noise the move is exact.
    env.action_noise = 0.0
    env.state = np.full((4, 2), 1.5)
    obs, _, _ = env.step(action)
    np.testing.assert_allclose(obs, 1.5 + action, atol=1e-6)


def test_action_noise_std():
    env = make_vec_env("point_Small", 4000, seed=0)
    env.reset()
    env.state = np.full((4000, 2), 2.0)
    obs, _, _ = env.step(np.zeros((4000, 2)))
    assert abs((obs - 2.0).std() - 0.01) < 0.001
    assert abs((obs - 2.0).mean()) < 0.001


@pytest.mark.parametrize("name", ENV_NAMES)
def test_reset_covers_exactly_the_free_cells(name):
    env = make_vec_env(name, 20000, seed=0)
    obs, goal = env.reset()
    assert obs.dtype == goal.dtype == np.float32 and obs.shape == goal.shape == (20000, 2)
    expected = 20000 / (~env.walls).sum()
    for points in (obs, goal):
        cells = np.floor(points).astype(int)
        counts = np.zeros(env.walls.shape)
        np.add.at(counts, (cells[:, 0], cells[:, 1]), 1)
        assert counts[env.walls].sum() == 0
        assert counts[~env.walls].min() > 0.6 * expected
        assert counts[~env.walls].max() < 1.4 * expected
    assert not np.allclose(obs, goal)  # start and goal are sampled independently
    assert abs(np.corrcoef(obs[:, 0], goal[:, 0])[0, 1]) < 0.05


def test_success_radius_and_distance():
    env = make_vec_env("point_Small", 3, seed=0)
    env.reset()
    env.action_noise = 0.0
    env.goal = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    env.state = np.array([[0.5, 2.49], [0.5, 2.51], [3.5, 3.5]])  # zero action, no noise: stays
    obs, success, info = env.step(np.zeros((3, 2)))
    np.testing.assert_allclose(info["distance"], [1.99, 2.01, np.hypot(3, 3)], rtol=1e-6)
    assert info["distance"].dtype == np.float32 and success.dtype == bool
    assert success.tolist() == [True, False, False]
    assert env.success_radius == 2.0
    assert env.is_success(obs, env.goal).tolist() == [True, False, False]
    np.testing.assert_array_equal(env.obs_to_goal(obs), obs)


def test_horizons_and_dims():
    horizons = {name: make_vec_env(name, 1).horizon for name in ENV_NAMES}
    assert horizons == {"point_Small": 50, "point_Cross": 50, "point_FourRooms": 50,
                        "point_U": 50, "point_Spiral11x11": 100, "point_Maze11x11": 100}
    env = make_vec_env("point_U", 7)
    assert isinstance(env, VecGoalEnv) and env.name == "point_U"
    assert (env.num_envs, env.obs_dim, env.goal_dim, env.act_dim) == (7, 2, 2, 2)


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError):
        make_vec_env("point_U", 2).step(np.zeros((2, 2)))


def test_seeding_reproducible():
    def rollout(env):
        out = list(env.reset())
        for t in range(10):
            out.append(env.step(np.full((8, 2), np.sin(t)))[0])
        return np.stack(out)

    a = rollout(make_vec_env("point_FourRooms", 8, seed=3))
    b = rollout(make_vec_env("point_FourRooms", 8, seed=3))
    c = rollout(make_vec_env("point_FourRooms", 8, seed=4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    env = make_vec_env("point_FourRooms", 8, seed=99)
    env.seed(3)
    np.testing.assert_array_equal(rollout(env), a)


@pytest.mark.parametrize("name", ["point_FourRooms", "point_Maze11x11", "point_U"])
def test_vectorised_equals_single_envs_and_reference(name):
    n, steps = 16, 40
    vec = make_vec_env(name, n, seed=0)
    vec.reset()
    vec.action_noise = 0.0
    singles = [make_vec_env(name, 1, seed=k) for k in range(n)]
    for k, single in enumerate(singles):
        single.reset()
        single.action_noise = 0.0
        single.state, single.goal = vec.state[k:k + 1].copy(), vec.goal[k:k + 1].copy()
    ref = vec.state.copy()
    rng = np.random.default_rng(0)
    for _ in range(steps):
        action = rng.uniform(-1.2, 1.2, (n, 2))
        obs, success, info = vec.step(action)
        ref = np.stack([reference_step(vec.walls, ref[k], action[k]) for k in range(n)])
        for k, single in enumerate(singles):
            o, s, i = single.step(action[k:k + 1])
            np.testing.assert_array_equal(o[0], obs[k])
            assert s[0] == success[k] and i["distance"][0] == info["distance"][k]
        np.testing.assert_array_equal(vec.state, ref)


@pytest.mark.parametrize("name", ENV_NAMES)
def test_gym_view_passes_check_env(name):
    env = make_gym_env(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    assert [str(w.message) for w in caught] == []


def test_gym_view_episode():
    env = gymnasium.make("crl/point_Spiral11x11-v0")
    obs, info = env.reset(seed=5)
    assert set(obs) == {"observation", "achieved_goal", "desired_goal"}
    assert obs["observation"].dtype == np.float32 and obs["observation"].shape == (2,)
    first = obs
    for t in range(1, 101):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert terminated is False and truncated == (t == 100)
        assert reward == float(info["is_success"])
        assert reward == env.unwrapped.compute_reward(obs["achieved_goal"], obs["desired_goal"], info)
        np.testing.assert_array_equal(obs["desired_goal"], first["desired_goal"])
        assert np.isclose(info["distance"], np.linalg.norm(obs["achieved_goal"] - obs["desired_goal"]))
    again, _ = env.reset(seed=5)
    np.testing.assert_array_equal(again["observation"], first["observation"])
    ag = np.array([[0.5, 0.5], [3.0, 3.0]], np.float32)
    dg = np.array([[1.5, 1.5], [0.5, 0.5]], np.float32)
    np.testing.assert_array_equal(env.unwrapped.compute_reward(ag, dg, None), [1.0, 0.0])


def test_registry_names_and_errors():
    assert ENV_NAMES == ("point_Small", "point_Cross", "point_FourRooms", "point_U",
                         "point_Spiral11x11", "point_Maze11x11")
    with pytest.raises(UnknownEnvError) as err:
        make_vec_env("point_fourroom", 4)
    msg = str(err.value)
    assert isinstance(err.value, ValueError) and "\n" not in msg
    assert "Did you mean 'point_FourRooms'?" in msg and all(n in msg for n in ENV_NAMES)
    with pytest.raises(UnknownEnvError, match="Unknown env 'ant'"):
        make_gym_env("ant")
    import crl.envs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crl.envs.register_gym_envs()  # registering twice is a silent no-op
    assert "crl/point_FourRooms-v0" in gymnasium.registry
