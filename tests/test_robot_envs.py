"""The paper's MuJoCo tasks (Fetch, Sawyer, ant maze) and the gym:ENV_ID adapter, on their real packages."""

from __future__ import annotations

import warnings

import gymnasium
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from crl.envs import TASKS, UnknownEnvError, make_gym_env, make_vec_env
from crl.envs.gym_goal import GymEnvError

LAYOUT = {  # name: (obs_dim, goal_dim, act_dim, horizon, success slice in goal space, threshold)
    "fetch_reach": (10, 10, 4, 50, (0, 3), 0.05),
    "fetch_push": (25, 25, 4, 50, (3, 6), 0.05),
    "sawyer_push": (7, 7, 4, 150, (3, 6), 0.05),
    "sawyer_bin": (7, 7, 4, 150, (4, 7), 0.05),
    "ant_umaze": (29, 2, 8, 700, (0, None), 0.5),
}
ROBOT_ENVS = tuple(LAYOUT)


def test_every_state_task_is_covered():
    assert set(LAYOUT) == {name for name in TASKS if not name.endswith("_image")}


@pytest.mark.parametrize("name", ROBOT_ENVS)
def test_gym_view_passes_check_env(name):
    env = make_gym_env(name)
    check_env(env, skip_render_check=True)
    env.close()


@pytest.mark.parametrize("name", ROBOT_ENVS)
def test_layout_and_step_success_agree_with_goal_space_test(name):
    obs_dim, goal_dim, act_dim, horizon, (s0, s1), thr = LAYOUT[name]
    env = make_vec_env(name, 2, seed=3)
    assert (env.obs_dim, env.goal_dim, env.act_dim, env.horizon) == (obs_dim, goal_dim, act_dim, horizon)
    assert (env.success_start, env.success_end, env.success_threshold) == (s0, s1, thr)
    obs, goal = env.reset()
    assert obs.shape == (2, obs_dim) and goal.shape == (2, goal_dim) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, success, info = env.step(rng.uniform(-1, 1, (2, act_dim)))
        dist = np.linalg.norm(env.obs_to_goal(obs)[:, s0:s1] - goal[:, s0:s1], axis=-1)  # s1 None: to the end
        np.testing.assert_allclose(info["distance"], dist, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(success, env.is_success(env.obs_to_goal(obs), goal))
    env.close()


@pytest.mark.parametrize("name", ROBOT_ENVS)
def test_seed_fixes_the_episode(name):
    runs = []
    for _ in range(2):
        env = make_vec_env(name, 2, seed=11)
        obs, goal = env.reset()
        obs2, _, _ = env.step(np.full((2, env.act_dim), 0.5, np.float32))
        runs.append((obs, goal, obs2))
        env.close()
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(runs[0][1][0], runs[0][1][1])  # the two copies get different episodes


def test_fetch_reach_goal_layout_and_a_controller_reaches_it():
    env = make_vec_env("fetch_reach", 3, seed=0)
    obs, goal = env.reset()
    assert np.all(goal[:, 3:] == 0) and np.all(np.abs(goal[:, :3]) > 0)  # zeros except the target position
    reached = np.zeros(3, bool)
    for _ in range(env.horizon):
        grip = obs[:, :3]
        action = np.concatenate([np.clip(10 * (goal[:, :3] - grip), -1, 1), np.zeros((3, 1))], axis=1)
        obs, success, _ = env.step(action)
        reached |= success
    assert reached.all()  # a proportional controller on the gripper solves reach
    env.close()


def test_fetch_push_goal_puts_gripper_and_object_at_the_target():
    env = make_vec_env("fetch_push", 4, seed=0)
    obs, goal = env.reset()
    np.testing.assert_array_equal(goal[:, 0:3], goal[:, 3:6])
    assert np.all(goal[:, 6:] == 0)
    np.testing.assert_allclose(obs[:, 6:9], obs[:, 3:6] - obs[:, 0:3], atol=1e-5)  # object relative to gripper
    env.close()


def test_sawyer_push_target_range():
    env = make_vec_env("sawyer_push", 1, seed=0)
    targets = []
    for _ in range(40):
        obs, goal = env.reset()
        np.testing.assert_array_equal(goal[0, 0:3], goal[0, 3:6])
        assert goal[0, 6] == np.float32(0.5)
        assert np.linalg.norm(obs[0, 3:5] - goal[0, 3:5]) >= 0.15 - 1e-6  # Meta-World keeps them apart
        assert 0.0 <= obs[0, 6] <= 1.0
        targets.append(goal[0, 3:5])
    targets = np.array(targets)
    assert np.all(targets[:, 0] >= -0.1) and np.all(targets[:, 0] <= 0.1)
    assert np.all(targets[:, 1] >= 0.5) and np.all(targets[:, 1] <= 0.9)
    assert targets[:, 1].max() - targets[:, 1].min() > 0.2  # the paper's widened range, not push-v3's 0.8..0.9
    env.close()


def test_sawyer_bin_goal_between_object_and_bin():
    env = make_vec_env("sawyer_bin", 1, seed=0)
    bin_xy = env.tasks[0].env.data.body("bin_goal").xpos[:2].copy()
    for _ in range(30):
        obs, goal = env.reset()
        target = goal[0, 4:7]
        np.testing.assert_allclose(goal[0, 0:3], target + np.array([0, 0, 0.03], np.float32), atol=1e-6)
        assert goal[0, 3] == np.float32(0.4)
        assert 0.03 <= target[2] <= 0.12
        lo = np.minimum(obs[0, 4:6], bin_xy - 0.05) - 1e-5
        hi = np.maximum(obs[0, 4:6], bin_xy + 0.05) + 1e-5
        assert np.all(target[:2] >= lo) and np.all(target[:2] <= hi)
    env.close()


def run_scripted(task, seed: int, controller) -> bool:
    """One episode of `task` driven by ``controller(task, t) -> action``; True if it succeeded at any step."""
    task.reset(seed)
    reached = False
    for t in range(task.horizon):
        _, success, _ = task.step(np.asarray(controller(task, t), np.float32))
        reached |= bool(success)
    return reached


def test_fetch_push_is_solved_by_a_pushing_script():
    """Put the gripper behind the block (seen from the target), lower it to the table, push towards the target:
    the block reaches Fetch's target in most episodes of 50 steps."""

    def push(task, t):
        data, target = task.env.data, task._target
        grip, block = data.site("robot0:grip").xpos.copy(), data.site("object0").xpos.copy()
        direction = (target[:2] - block[:2]) / (np.linalg.norm(target[:2] - block[:2]) + 1e-8)
        behind = block - 0.06 * np.r_[direction, 0.0]
        if np.linalg.norm(grip[:2] - behind[:2]) > 0.02 and (
                grip[2] > block[2] + 0.03 or np.dot(grip[:2] - block[:2], direction) > -0.04):
            aim = behind + np.array([0.0, 0.0, 0.08])  # over the point behind the block, clear of it
        elif grip[2] > block[2] + 0.01:
            aim = behind  # down to the table
        else:
            aim = np.r_[target[:2] - 0.02 * direction, block[2]]  # push
        return np.concatenate([np.clip(10 * (aim - grip), -1, 1), [-1.0]])

    task = TASKS["fetch_push"]()
    solved = [run_scripted(task, seed, push) for seed in range(8)]
    task.close()
    assert sum(solved) >= 6, solved


def test_sawyer_push_is_solved_by_metaworlds_scripted_policy():
    """Meta-World's own push policy, reading the env's full observation, pushes the puck onto our resampled target
    within the 150-step episode: the goal, the success test and the time limit fit together."""
    from metaworld.policies.sawyer_push_v3_policy import SawyerPushV3Policy

    policy = SawyerPushV3Policy()
    task = TASKS["sawyer_push"]()
    with warnings.catch_warnings():  # the policy warns that its gain saturates actions; they are clipped
        warnings.simplefilter("ignore")
        solved = [run_scripted(task, seed, lambda tk, t: np.clip(policy.get_action(tk.env._get_obs()), -1, 1))
                  for seed in range(4)]
    task.close()
    assert all(solved)


def test_sawyer_bin_is_solved_by_a_pick_and_place_script():
    """Grasp the object, carry it over the goal (which may hang in the air between the start and the target bin)
    and hold it there: most goals are reached, so the paper's goal procedure makes a solvable task."""
    grasped = {}

    def pick_and_place(task, t):
        env, goal = task.env, task._goal_pos
        hand, obj = env.tcp_center, env._get_pos_objects()
        if t == 0:
            grasped.clear()
        if "t" not in grasped:
            close_enough = np.linalg.norm(hand[:2] - obj[:2]) <= 0.015
            target = obj + np.array([0.0, 0.0, -0.01 if close_enough else 0.1])
            if close_enough and abs(hand[2] - obj[2]) < 0.015:
                grasped["t"] = t
            grip = -1.0
        else:
            grip = 1.0
            if t - grasped["t"] < 10:  # close the fingers
                target = hand
            elif np.linalg.norm(obj[:2] - goal[:2]) > 0.02:  # carry it over the goal, high enough to clear the bins
                target = np.array([goal[0], goal[1], max(goal[2], 0.15)]) + (hand - obj)
            else:
                target = goal + (hand - obj)
        return np.concatenate([np.clip(10 * (target - hand), -1, 1), [grip]])

    task = TASKS["sawyer_bin"]()
    solved = [run_scripted(task, seed, pick_and_place) for seed in range(6)]
    task.close()
    assert sum(solved) >= 5, solved


def test_ant_umaze_d4rl_physics_and_goals():
    env = make_vec_env("ant_umaze", 1, seed=0)
    task = env.tasks[0]
    m = task.model
    assert m.opt.timestep == pytest.approx(0.02) and m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    np.testing.assert_allclose(m.actuator_gear[:, 0], 1.0)
    np.testing.assert_allclose(m.actuator_ctrlrange, np.tile([-30.0, 30.0], (8, 1)))
    goals = np.array([env.reset()[1][0] for _ in range(40)])
    # Goals lie in the U's free corridor: never inside the wall cells (1, 2) = x in [2, 6], y in [2, 6].
    in_inner_wall = (goals[:, 0] > 2) & (goals[:, 0] < 6) & (goals[:, 1] > 2) & (goals[:, 1] < 6)
    assert not in_inner_wall.any() and goals.min() > -0.5 and goals.max() < 10  # settling moves the ant a little
    # Full action: torque 30 on every joint after scaling.
    env.reset()
    env.step(np.ones((1, 8), np.float32))
    np.testing.assert_allclose(task.data.ctrl, 30.0)


def test_ant_cannot_walk_through_the_inner_wall():
    env = make_vec_env("ant_umaze", 1, seed=0)
    task = env.tasks[0]
    task.reset(0)
    task._reset_body(np.array([0.0, 0.0]))
    task.data.qvel[1] = 20.0  # throw the ant towards +y, into the wall between the U's arms (y in [2, 6])
    for _ in range(30):
        task.step(np.zeros(8))
    assert task.data.qpos[1] < 2.0


def test_gym_adapter_on_a_gymnasium_robotics_env():
    env = make_vec_env("gym:FetchReach-v4", 2, seed=0)
    assert (env.obs_dim, env.goal_dim, env.goal_start, env.goal_end, env.horizon) == (13, 3, 10, 13, 50)
    obs, goal = env.reset()
    np.testing.assert_array_equal(env.obs_to_goal(obs), obs[:, 0:3])  # Fetch's achieved goal is the gripper
    obs, success, info = env.step(np.zeros((2, 4)))
    assert success.dtype == bool and info["distance"].shape == (2,)
    check_env(make_gym_env("gym:FetchReach-v4"), skip_render_check=True)


class _Terminating(gymnasium.Env):
    """A 1-d goal env that terminates when it reaches x >= 3 and reports no success flag."""

    def __init__(self):
        box = gymnasium.spaces.Box(-10, 10, (1,), np.float32)
        self.observation_space = gymnasium.spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = gymnasium.spaces.Box(-2, 2, (1,), np.float32)
        self.distance_threshold = 0.5

    def _obs(self):
        x = np.array([self.x], np.float32)
        return {"observation": x, "achieved_goal": x, "desired_goal": np.array([3.0], np.float32)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x = 0.0
        return self._obs(), {}

    def step(self, action):
        self.x += float(action[0])
        return self._obs(), 0.0, self.x >= 3, False, {}


def test_gym_adapter_scales_actions_holds_terminated_episodes_and_uses_the_threshold():
    gymnasium.register("crl_test/Terminating-v0", entry_point=_Terminating, max_episode_steps=6)
    env = make_vec_env("gym:crl_test/Terminating-v0", 1)
    env.reset()
    obs, success, _ = env.step(np.array([[1.0]]))  # +1 in [-1, 1] -> +2 in the env's [-2, 2]
    assert obs[0, 0] == 2.0 and not success[0]
    obs, success, _ = env.step(np.array([[0.5]]))  # -> +1: x = 3, terminated, within 0.5 of the goal 3
    assert obs[0, 0] == 3.0 and success[0]
    obs, success, _ = env.step(np.array([[-1.0]]))  # terminated: held, not stepped
    assert obs[0, 0] == 3.0 and success[0]


@pytest.mark.parametrize("env_id, message", [
    ("gym:Pendulum-v1", "Dict observation space"),
    ("gym:NoSuchEnv-v0", "cannot make"),
])
def test_gym_adapter_rejects_bad_envs(env_id, message):
    with pytest.raises(GymEnvError, match=message):
        make_vec_env(env_id, 1)


def test_unknown_robot_name_suggests_the_right_one():
    with pytest.raises(UnknownEnvError, match="fetch_reach"):
        make_vec_env("fetch_rech", 1)
