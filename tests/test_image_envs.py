"""Image variants: 64x64x3 uint8 observations and goal images rendered in the goal state (EGL, headless)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from crl.envs import make_gym_env, make_vec_env


@pytest.mark.parametrize("name", ["point_Spiral11x11_image", "fetch_reach_image", "fetch_push_image",
                                  "sawyer_push_image", "sawyer_bin_image"])
def test_image_env_passes_check_env(name):
    env = make_gym_env(name)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["observation"].shape == (64 * 64 * 3,) and obs["observation"].dtype == np.uint8
    env.close()


def red_centroid(image: np.ndarray) -> np.ndarray:
    img = image.reshape(64, 64, 3).astype(int)
    red = (img[..., 0] > 200) & (img[..., 1] < 80)
    return np.argwhere(red).mean(axis=0)


def test_point_image_draws_the_point_and_the_goal_where_they_are():
    env = make_vec_env("point_Spiral11x11_image", 8, seed=1)
    obs, goal = env.reset()
    px_per_cell = 64 / 11
    np.testing.assert_allclose([red_centroid(o) for o in obs], env.maze.state * px_per_cell - 0.5, atol=1.0)
    np.testing.assert_allclose([red_centroid(g) for g in goal], env.maze.goal * px_per_cell - 0.5, atol=1.0)
    walls = env.background[..., 0] < 128
    assert walls[0, 32] and not walls[10, 10]  # row 0 of Spiral11x11 is wall, cell (1, 1) is free
    obs2, success, info = env.step(np.ones((8, 2), np.float32))
    assert obs2.dtype == np.uint8 and success.shape == (8,)
    np.testing.assert_allclose(info["distance"], np.linalg.norm(env.maze.state - env.maze.goal, axis=-1), rtol=1e-5)


def test_fetch_reach_goal_image_shows_the_gripper_at_the_goal():
    env = make_vec_env("fetch_reach_image", 1, seed=0)
    task = env.tasks[0]
    obs, goal = env.reset()
    assert obs.shape == goal.shape == (1, 64 * 64 * 3) and obs.dtype == np.uint8
    start_gap = np.abs(obs.astype(int) - goal.astype(int)).mean()
    # Drive the gripper to the target with the hidden state; the view must converge to the goal image.
    reached = False
    for _ in range(env.horizon):
        grip = task.state_task.env.data.site("robot0:grip").xpos
        action = np.concatenate([np.clip(10 * (task._target - grip), -1, 1), [0.0]])[None]
        obs, success, _ = env.step(action)
        reached |= bool(success[0])
    end_gap = np.abs(obs.astype(int) - goal.astype(int)).mean()
    assert reached and end_gap < 0.3 * start_gap
    env.close()


def test_fetch_push_image_starts_at_the_paper_position_and_scores_the_block_xy():
    env = make_vec_env("fetch_push_image", 2, seed=0)
    obs, goal = env.reset()
    for task in env.tasks:
        block = task._object()[:3]
        np.testing.assert_allclose(block[:2], (1.15, 0.75), atol=0.02)  # the paper's start position
        assert block[2] > 0.4  # on the table
        grip = task.state_task.env.data.site("robot0:grip").xpos
        assert np.linalg.norm(block - grip) < 0.12  # the gripper starts next to the block
    assert not np.array_equal(goal[0], goal[1])  # random goals
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, success, info = env.step(rng.uniform(-1, 1, (2, 4)))
        dist = [np.linalg.norm(t._object()[:2] - t._goal_xy) for t in env.tasks]
        np.testing.assert_allclose(info["distance"], dist, rtol=1e-5)
        np.testing.assert_array_equal(success, np.array(dist) < 0.05)
    env.close()


def image_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(int) - b.astype(int)).mean())


def test_sawyer_push_image_goal_image_is_the_scene_in_the_goal_state():
    env = make_vec_env("sawyer_push_image", 1, seed=3)
    task = env.tasks[0]
    obs, goal = env.reset()
    puck, hand = task._object(), task.env.tcp_center
    assert 0.37 < puck[1] < 0.53 and np.linalg.norm(puck[:2] - hand[:2]) < 0.05  # start: shifted -0.2, hand on it
    assert -0.21 < task._goal[0] < 0.21 and 0.59 < task._goal[1] < 0.96  # reset position + (U(-.1,.1), U(0,.25))
    start_gap = image_gap(obs[0], goal[0])
    # Put the scene in the goal state (puck at the goal, hand on it); the view must match the goal image.
    for _ in range(200):
        task._drive(task._object(), (-1.0, 1.0), hold_object=task._goal)
    end_gap = image_gap(task.camera.render(task.env.data), goal[0])
    assert start_gap > 5 and end_gap < 0.1 * start_gap
    obs, success, info = env.step(np.zeros((1, 4), np.float32))
    assert success[0] and info["distance"][0] == pytest.approx(np.linalg.norm(task._object() - task._goal), rel=1e-5)
    env.close()


def test_sawyer_bin_image_goal_is_in_the_target_bin_and_success_is_planar():
    env = make_vec_env("sawyer_bin_image", 2, seed=0)
    obs, goal = env.reset()
    for task in env.tasks:
        bin_xy = task.env.data.body("bin_goal").xpos[:2]
        assert np.all(np.abs(task._goal[:2] - bin_xy) < 0.08)  # bin centre + U(-0.05, 0.05), after settling
        obj, hand = task._object(), task.env.tcp_center
        assert np.linalg.norm(obj[:2] - hand[:2]) < 0.05 and hand[2] > obj[2]  # start: hand above the object
        assert image_gap(obs[0], goal[0]) > 5
    assert not np.array_equal(goal[0], goal[1])
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, success, info = env.step(rng.uniform(-1, 1, (2, 4)).astype(np.float32))
        dist = [np.linalg.norm(t._object()[:2] - t._goal[:2]) for t in env.tasks]
        np.testing.assert_allclose(info["distance"], dist, rtol=1e-5)
        np.testing.assert_array_equal(success, np.array(dist) < 0.05)
    env.close()


@pytest.mark.parametrize("name", ["sawyer_push_image", "sawyer_bin_image"])
def test_sawyer_image_envs_are_seeded(name):
    images = []
    for _ in range(2):
        env = make_vec_env(name, 1, seed=7)
        obs, goal = env.reset()
        obs2, _, _ = env.step(np.full((1, 4), 0.5, np.float32))
        images.append((obs, goal, obs2))
        env.close()
    for a, b in zip(*images):
        np.testing.assert_array_equal(a, b)
