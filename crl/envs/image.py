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
* ``sawyer_push_image``, ``sawyer_bin_image``: Meta-World V3 seen from its ``corner2`` camera moved as in the
  paper, with the paper's goal-image and start procedures (`SawyerPushImage`, `SawyerBinImage`).

MuJoCo renders headless through EGL (``MUJOCO_GL=egl``, set when a camera is made unless the user chose a backend;
OSMesa where only libOSMesa loads; if mujoco was already imported without a backend it would use GLFW, which needs a
display, so the camera switches it to EGL) with shadows and reflections off, which is about 10x faster than the default flags at this size.
"""

from __future__ import annotations

import atexit
import os

import numpy as np

from crl.envs.base import VecGoalEnv
from crl.envs.point_maze import PointMaze
from crl.envs.task import GoalTask, distance, headless_gl, require

IMAGE_SHAPE = (64, 64, 3)
IMAGE_DIM = int(np.prod(IMAGE_SHAPE))


class Camera:
    """A 64 x 64 offscreen MuJoCo renderer with a free camera; shadows and reflections off."""

    def __init__(self, model, lookat=(0.0, 0.0, 0.0), distance_=1.0, azimuth=0.0, elevation=-45.0, size: int = 64,
                 fixed: str | None = None, bottom_up: bool = False):
        """A free camera at (lookat, distance, azimuth, elevation), or the model's camera named `fixed`;
        `bottom_up` returns the rows in OpenGL's bottom-to-top order (what mujoco-py's offscreen render gave)."""
        # Headless rendering: EGL, else OSMesa, unless the user chose a backend. Set here, not at import, so that
        # state-only envs never load an OpenGL library.
        headless_gl(need_render=True)
        mujoco = require("mujoco", "robotics")
        from mujoco import gl_context

        if gl_context.GLContext is not None and gl_context.GLContext.__module__ == "mujoco.glfw" and not os.environ.get(
                "DISPLAY"):
            # mujoco was imported before MUJOCO_GL was set and chose GLFW, which needs a display: use EGL.
            from mujoco.egl import GLContext

            gl_context.GLContext = GLContext
        self.mujoco, self.bottom_up = mujoco, bottom_up
        self.renderer = mujoco.Renderer(model, size, size)
        if fixed is not None:
            self.camera = fixed
        else:
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
        frame = self.renderer.render()
        return (frame[::-1] if self.bottom_up else frame).reshape(-1).copy()

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


class SawyerImageTask(GoalTask):
    """Shared parts of ``sawyer_push_image`` and ``sawyer_bin_image``: a Meta-World V3 env seen from its
    ``corner2`` camera, moved where the paper put it; all sites (goal marker, end-effector markers) hidden; the arm
    is steered through its mocap body during the goal and start procedures (gripper control ``ctrl``, one env
    step = ``frame_skip`` physics steps). Frames keep OpenGL's bottom-up row order, as the paper's mujoco-py
    renders of ``corner2`` did (the paper flipped only its other cameras), so the pixels match the paper's."""

    obs_dim = goal_dim = IMAGE_DIM
    act_dim = 4
    image_shape = IMAGE_SHAPE
    env_cls_name = module = ""
    camera_fovy, camera_pos, camera_quat = 45.0, (0.0, 0.0, 0.0), None

    def __init__(self):
        from crl.envs.sawyer import SAWYER_HORIZON, make_metaworld

        self.horizon = SAWYER_HORIZON
        self.env = make_metaworld(self.env_cls_name, self.module)
        model = self.env.model
        cam = model.camera("corner2").id
        model.cam_fovy[cam] = self.camera_fovy
        model.cam_pos[cam] = self.camera_pos
        if self.camera_quat is not None:
            model.cam_quat[cam] = self.camera_quat
        model.site_rgba[:, 3] = 0.0
        self.camera = Camera(model, fixed="corner2", bottom_up=True)
        self._goal = np.zeros(3)

    def _object(self) -> np.ndarray:
        return np.array(self.env._get_pos_objects(), np.float64)

    def _drive(self, hand_target, ctrl=(0.0, 0.0), hold_object=None) -> None:
        """One env step with the mocap body (the hand) sent to `hand_target`, optionally pinning the object."""
        self.env.data.mocap_pos[0] = hand_target
        self.env.data.mocap_quat[0] = (1.0, 0.0, 1.0, 0.0)
        if hold_object is not None:
            self.env._set_obj_xyz(hold_object)
        self.env.do_simulation(np.asarray(ctrl, np.float64), self.env.frame_skip)

    def _distance(self) -> float:
        return distance(self._object(), self._goal)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        self.env.step(np.asarray(action, np.float32))
        dist = self._distance()
        return self.camera.render(self.env.data), dist < 0.05, dist

    def close(self) -> None:
        self.camera.close()
        self.env.close()


class SawyerPushImage(SawyerImageTask):
    """``sawyer_push_image`` (Meta-World ``push-v3``, default task ranges). Camera ``corner2`` at (0.7, 0.65, 0.1),
    fovy 45, orientation Euler (-pi/2, pi/2, 0) as in the paper. Goal: the puck's reset position shifted by
    (U(-0.1, 0.1), U(0, 0.25)), held there for 200 steps while the hand moves onto it; start: the puck's reset
    position shifted by -0.2 in y, hand moved onto it for 20 steps. Success: puck within 0.05 (3-D) of the goal."""

    env_cls_name, module = "SawyerPushEnvV3", "sawyer_push_v3"
    camera_fovy, camera_pos = 45.0, (0.7, 0.65, 0.1)
    camera_quat = (0.5, -0.5, 0.5, -0.5)  # Euler (-pi/2, pi/2, 0), the paper's setting, as a (w, x, y, z) quaternion

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = self.env
        env.seed(seed)
        env.reset()
        rng = env.np_random
        goal = self._object() + np.array([rng.uniform(-0.1, 0.1), rng.uniform(0.0, 0.25), 0.0])
        env._set_obj_xyz(goal)
        for _ in range(200):
            self._drive(self._object(), (-1.0, 1.0), hold_object=goal)
        self._goal = goal
        goal_image = self.camera.render(env.data)
        env.reset()
        env._set_obj_xyz(self._object() + np.array([0.0, -0.2, 0.0]))
        env.do_simulation(np.array([-1.0, 1.0]), env.frame_skip)
        for _ in range(20):
            self._drive(self._object(), (-1.0, 1.0))
        return self.camera.render(env.data), goal_image


class SawyerBinImage(SawyerImageTask):
    """``sawyer_bin_image`` (Meta-World ``bin-picking-v3``). Camera ``corner2`` at (1.3, -0.05, 0.9), fovy 14, as in
    the paper. Goal: the object put in the target bin (bin centre + U(-0.05, 0.05) in x and y, height 0.05) with
    the hand above it (0 to 0.05 higher), gripper closed after 20 of 40 steps; the goal is where the object is
    then. Start: the env's reset, hand moved 0.05 above the object for 40 steps. Success: object within 0.05 of the
    goal in x and y."""

    env_cls_name, module = "SawyerBinPickingEnvV3", "sawyer_bin_picking_v3"
    camera_fovy, camera_pos = 14.0, (1.3, -0.05, 0.9)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = self.env
        env.seed(seed)
        env.reset()
        rng = env.np_random
        place = np.array(env.data.body("bin_goal").xpos, np.float64)
        place[:2] += rng.uniform(-0.05, 0.05, 2)
        place[2] = 0.05
        env._set_obj_xyz(place)
        hand = place + np.array([0.0, 0.0, rng.uniform(0.0, 0.05)])
        for t in range(40):
            self._drive(hand, (1.0, -1.0) if t > 20 else (0.0, 0.0))
        self._goal = self._object()
        goal_image = self.camera.render(env.data)
        env.reset()
        above = self._object() + np.array([0.0, 0.0, 0.05])
        for _ in range(40):
            self._drive(above)
        return self.camera.render(env.data), goal_image

    def _distance(self) -> float:
        return distance(self._object()[:2], self._goal[:2])


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
