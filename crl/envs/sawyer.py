"""The paper's Sawyer tasks on the current Meta-World release (3.x: ``push-v3``, ``bin-picking-v3``).

The paper subclassed Meta-World V2 envs and rebuilt small state vectors; we do the same on V3:

* ``sawyer_push``: state = [gripper centre (3), puck (3), finger gap / 0.1 clipped to [0, 1]] (7); the target is
  resampled every episode with xy in [-0.1, 0.1] x [0.5, 0.9] (Meta-World keeps puck and target >= 0.15 apart);
  commanded goal [target, target, 0.5]; success: puck within 0.05 of the target.
* ``sawyer_bin``: state = [hand (3), finger gap (1), object (3)] (7); goal = t * (bin centre + U(-0.05, 0.05)^3) +
  (1 - t) * object start with t ~ U(0, 1), its height drawn from U(0.03, 0.12); commanded goal
  [goal + (0, 0, 0.03), 0.4, goal]; success: object within 0.05 of the goal.

Goal space is the full 7-d state for both. Episodes last 150 steps. All randomness comes from the env's own
seeded generator (Meta-World's ``seeded_rand_vec``), so a seed fixes an episode.
"""

from __future__ import annotations

import warnings

import numpy as np

from crl.envs.task import GoalTask, distance, require

SAWYER_HORIZON = 150


def make_metaworld(env_cls_name: str, module: str):
    """Returns a Meta-World V3 env with a randomised task on every reset and the full observation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = require(f"metaworld.envs.{module}", "robotics")
        env = getattr(mod, env_cls_name)()
    env._partially_observable = False
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True  # draw task randomness from env.np_random (seeded by env.seed)
    env._set_task_called = True
    env.max_path_length = 10**9  # we keep our own time limit
    return env


def finger_gap(env) -> float:
    """Distance between the two finger tips / 0.1, clipped to [0, 1] (the paper's gripper feature)."""
    gap = np.linalg.norm(env.data.site("rightEndEffector").xpos - env.data.site("leftEndEffector").xpos)
    return float(np.clip(gap / 0.1, 0.0, 1.0))


class SawyerTask(GoalTask):
    """Shared reset/step of the Sawyer tasks; subclasses define the state and the goal."""

    obs_dim = goal_dim = 7
    act_dim = 4
    horizon = SAWYER_HORIZON
    success_threshold = 0.05
    env_cls_name = module = ""

    def __init__(self):
        self.env = make_metaworld(self.env_cls_name, self.module)
        self._goal_pos = np.zeros(3)

    def _state(self) -> np.ndarray:
        raise NotImplementedError

    def _commanded_goal(self) -> np.ndarray:
        raise NotImplementedError

    def _sample_goal(self) -> np.ndarray:
        return np.array(self.env._target_pos, np.float64)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        self.env.seed(seed)
        self.env.reset()
        self._goal_pos = self._sample_goal()
        return self._state(), self._commanded_goal()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        self.env.step(np.asarray(action, np.float32))
        dist = distance(self.env._get_pos_objects(), self._goal_pos)
        return self._state(), dist < self.success_threshold, dist

    def close(self) -> None:
        self.env.close()


class SawyerPush(SawyerTask):
    """``sawyer_push`` (Meta-World ``push-v3``); see the module docstring."""

    env_cls_name, module = "SawyerPushEnvV3", "sawyer_push_v3"
    success_start, success_end = 3, 6

    def __init__(self):
        super().__init__()
        space = self.env._random_reset_space  # [puck xyz, target xyz]
        space.low[3:5] = (-0.1, 0.5)
        space.high[3:5] = (0.1, 0.9)

    def _state(self) -> np.ndarray:
        return np.concatenate([self.env.tcp_center, self.env._get_pos_objects(), [finger_gap(self.env)]]).astype(
            np.float32)

    def _commanded_goal(self) -> np.ndarray:
        return np.concatenate([self._goal_pos, self._goal_pos, [0.5]]).astype(np.float32)


class SawyerBin(SawyerTask):
    """``sawyer_bin`` (Meta-World ``bin-picking-v3``); see the module docstring."""

    env_cls_name, module = "SawyerBinPickingEnvV3", "sawyer_bin_picking_v3"
    success_start, success_end = 4, 7

    def _sample_goal(self) -> np.ndarray:
        rng = self.env.np_random
        bin_centre = self.env.data.body("bin_goal").xpos + rng.uniform(-0.05, 0.05, 3)
        start = np.array(self.env._get_pos_objects(), np.float64)
        t = rng.random()
        goal = t * bin_centre + (1.0 - t) * start
        goal[2] = rng.uniform(0.03, 0.12)
        return goal

    def _state(self) -> np.ndarray:
        return np.concatenate([self.env.get_endeff_pos(), [finger_gap(self.env)], self.env._get_pos_objects()]).astype(
            np.float32)

    def _commanded_goal(self) -> np.ndarray:
        return np.concatenate([self._goal_pos + np.array([0.0, 0.0, 0.03]), [0.4], self._goal_pos]).astype(np.float32)
