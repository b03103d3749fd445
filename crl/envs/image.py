"""Image-observation variants of the paper's tasks: 64 x 64 x 3 uint8 state and goal images, flattened.

Observations and goals are both images (goal space = image space, ``obs_to_goal`` is the identity); success and
the reported distance come from the underlying simulator state, as in the paper. Goal images are rendered by
putting the scene in the goal state (the paper's method), then the episode is reset.

* ``point_Spiral11x11_image``: the point maze drawn in NumPy (free cells white, walls grey, the point a red disc of
  radius 0.5 cells); the goal image shows the point at the goal.
* ``fetch_push_image``: Fetch push seen from the paper's ``camera2`` (look-at (1.25, 0.8, 0.4), distance 0.65,
  azimuth 90, elevation -40). Goal: Fetch's random block position (x and y random, the paper's ``rand_y``) with the
  gripper moved next to the block; episode start: block at (1.15, 0.75), gripper next to it. Success: block xy
  within 0.05 of the goal xy.
* ``fetch_reach_image``: Fetch reach seen from the paper's camera (look-at (1.2, 0.8, 0.5), distance 0.8,
  azimuth 180, elevation -30) with the target marker hidden; the goal image is rendered after driving the gripper
  to the target with 10 proportional-control steps, then the arm is reset; the same target stays the goal.

MuJoCo renders headless through EGL (``MUJOCO_GL=egl``, set when a camera is made unless the user chose a backend;
``osmesa`` also works; if mujoco was already imported without a backend it would use GLFW, which needs a display,
so the camera switches it to EGL) with shadows and reflections off, which is about 10x faster than the default flags at this size.
"""

from __future__ import annotations

import atexit
import os

import numpy as np

from crl.envs.base import VecGoalEnv
from crl.envs.point_maze import PointMaze
from crl.envs.task import GoalTask, distance, require

IMAGE_SHAPE = (64, 64, 3)
IMAGE_DIM = int(np.prod(IMAGE_SHAPE))


class Camera:
    """A 64 x 64 offscreen MuJoCo renderer with a free camera; shadows and reflections off."""

    def __init__(self, model, lookat, distance_, azimuth, elevation, size: int = 64):
        # Headless rendering: EGL unless the user chose a backend (MUJOCO_GL=osmesa also works). Set here, not at
        # import, so that state-only envs never load an OpenGL library.
        os.environ.setdefault("MUJOCO_GL", "egl")
        mujoco = require("mujoco", "robotics")
        from mujoco import gl_context

        if gl_context.GLContext is not None and gl_context.GLContext.__module__ == "mujoco.glfw" and not os.environ.get(
                "DISPLAY"):
            # mujoco was imported before MUJOCO_GL was set and chose GLFW, which needs a display: use EGL.
            from mujoco.egl import GLContext

            gl_context.GLContext = GLContext
        self.mujoco = mujoco
        self.renderer = mujoco.Renderer(model, size, size)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.camera.lookat[:] = lookat
        self.camera.distance, self.camera.azimuth, self.camera.elevation = distance_, azimuth, elevation
        # Free the GL context before interpreter teardown (EGL's destructor fails once its module is gone).
        atexit.register(self.close)

    def render(self, data) -> np.ndarray:
        """Returns the current frame, ``[H * W * 3]`` uint8."""
        self.renderer.update_scene(data, camera=self.camera)
        flags = self.renderer.scene.flags
        flags[self.mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[self.mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        return self.renderer.render().reshape(-1).copy()

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


class FetchReachImage(GoalTask):
    """``fetch_reach_image``: see the module docstring."""

    obs_dim = goal_dim = IMAGE_DIM
    act_dim = 4
    image_shape = IMAGE_SHAPE

    def __init__(self):
        from crl.envs.fetch import FetchTask

        self.state_task = FetchTask("reach")
        self.horizon = self.state_task.horizon
        env = self.state_task.env
        env.model.site_rgba[:, 3] = 0.0  # hide the target marker (and other debug sites)
        self.camera = Camera(env.model, (1.2, 0.8, 0.5), 0.8, 180.0, -30.0)
        self._target = np.zeros(3)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = self.state_task.env
        obs, _ = env.reset(seed=seed)
        self._target = obs["desired_goal"].copy()
        for _ in range(10):
            delta = self._target - obs["achieved_goal"]
            obs, *_ = env.step(np.concatenate([np.clip(10 * delta, -1, 1), [0.0]]).astype(np.float32))
        goal_image = self.camera.render(env.data)
        env.reset()  # continues the seeded generator; the initial arm pose is fixed, the new target is unused
        return self.camera.render(env.data), goal_image

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        obs, *_ = self.state_task.env.step(np.asarray(action, np.float32))
        dist = distance(obs["achieved_goal"], self._target)
        return self.camera.render(self.state_task.env.data), dist < self.state_task.success_threshold, dist

    def close(self) -> None:
        self.camera.close()
        self.state_task.close()


class FetchPushImage(GoalTask):
    """``fetch_push_image``: see the module docstring."""

    obs_dim = goal_dim = IMAGE_DIM
    act_dim = 4
    image_shape = IMAGE_SHAPE
    start_xy = (1.15, 0.75)

    def __init__(self):
        from crl.envs.fetch import FetchTask

        self.state_task = FetchTask("push")
        self.horizon = self.state_task.horizon
        env = self.state_task.env
        env.model.site_rgba[:, 3] = 0.0  # hide the target marker
        self.camera = Camera(env.model, (1.25, 0.8, 0.4), 0.65, 90.0, -40.0)
        self._goal_xy = np.zeros(2)

    def _object(self) -> np.ndarray:
        return self.state_task.env.data.joint("object0:joint").qpos

    def _place_object(self, xy=None) -> None:
        """The paper's reset: pull the gripper back for 8 steps, optionally move the block to ``xy``, then bring
        the gripper next to the block (proportional control, at most 100 steps)."""
        env, mj = self.state_task.env, self.camera.mujoco
        for _ in range(8):
            env.step(np.array([-1.0, 0.0, 0.0, 0.0], np.float32))
        if xy is not None:
            self._object()[:2] = xy
            mj.mj_forward(env.model, env.data)
        for _ in range(100):
            delta = self._object()[:3] + np.array([-0.02, 0.0, 0.0]) - env.data.site("robot0:grip").xpos
            if np.linalg.norm(delta) < 0.06:
                break
            env.step(np.concatenate([np.clip(delta, -1, 1), [0.0]]).astype(np.float32))

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = self.state_task.env
        rng = np.random.default_rng(seed)
        while True:  # the paper retries when the block falls off the table
            env.reset(seed=int(rng.integers(2**31 - 1)))
            self._place_object()  # the goal: the block where Fetch's reset put it (x and y random)
            goal_image = self.camera.render(env.data)
            self._goal_xy = self._object()[:2].copy()
            goal_ok = self._object()[2] >= 0.4
            env.reset(seed=int(rng.integers(2**31 - 1)))
            self._place_object(self.start_xy)
            if goal_ok and self._object()[2] >= 0.4:
                return self.camera.render(env.data), goal_image

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        self.state_task.env.step(np.asarray(action, np.float32))
        dist = distance(self._object()[:2], self._goal_xy)
        return self.camera.render(self.state_task.env.data), dist < 0.05, dist

    def close(self) -> None:
        self.camera.close()
        self.state_task.close()


class PointMazeImage(VecGoalEnv):
    """``point_{layout}_image``: a `PointMaze` whose observations and goals are drawn as images."""

    image_shape = IMAGE_SHAPE
    free_colour = np.array([255, 255, 255], np.uint8)
    wall_colour = np.array([90, 90, 90], np.uint8)
    point_colour = np.array([220, 30, 30], np.uint8)

    def __init__(self, layout: str, num_envs: int, seed: int = 0):
        self.maze = PointMaze(layout, num_envs, seed)
        self.name = f"{self.maze.name}_image"
        self.num_envs, self.act_dim, self.horizon = num_envs, self.maze.act_dim, self.maze.horizon
        self.obs_dim = self.goal_dim = IMAGE_DIM
        h, w = self.maze.walls.shape
        size = IMAGE_SHAPE[0]
        # Pixel centres in maze coordinates (row i <-> first coordinate x).
        self._px = (np.arange(size) + 0.5) * h / size
        self._py = (np.arange(size) + 0.5) * w / size
        wall = self.maze.walls[np.floor(self._px).astype(int)][:, np.floor(self._py).astype(int)]
        self.background = np.where(wall[..., None], self.wall_colour, self.free_colour).astype(np.uint8)
        self.success_threshold = 0.0  # success is tested on the hidden state, not in image space

    @property
    def rng(self) -> np.random.Generator:
        return self.maze.rng

    @rng.setter
    def rng(self, value: np.random.Generator) -> None:
        self.maze.rng = value

    def seed(self, seed: int) -> None:
        self.maze.seed(seed)

    def draw(self, xy: np.ndarray) -> np.ndarray:
        """Images ``[N, 64 * 64 * 3]`` uint8 of points ``xy [N, 2]`` in the maze."""
        dx = self._px[None, :, None] - xy[:, 0, None, None]
        dy = self._py[None, None, :] - xy[:, 1, None, None]
        disc = dx**2 + dy**2 <= 0.5**2
        images = np.where(disc[..., None], self.point_colour, self.background[None])
        return images.reshape(len(xy), -1).astype(np.uint8)

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        obs, goal = self.maze.reset()
        return self.draw(obs), self.draw(goal)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        obs, success, info = self.maze.step(action)
        return self.draw(obs), success, info

    def obs_to_goal(self, obs: np.ndarray) -> np.ndarray:
        return obs

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(IMAGE_DIM, np.uint8), np.full(IMAGE_DIM, 255, np.uint8)

    goal_bounds = observation_bounds
