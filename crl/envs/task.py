"""Single-env goal-reaching tasks (MuJoCo robots, any gymnasium goal env) and their lock-step `VecGoalEnv`.

A `GoalTask` is one simulator instance with the paper's state and goal layout; `TaskVecEnv` holds N of them and
steps them one after another (on 2 cores, worker processes do not pay off for envs this cheap to step; see
``docs/RESULTS.md``). Each reset is seeded from the vec env's generator, so a run resumed from a checkpoint (taken
at an episode boundary) replays the same episodes.
"""

from __future__ import annotations

import abc
from typing import Callable

import numpy as np

from crl.envs.base import GoalLayout, VecGoalEnv


class MissingPackageError(ImportError):
    """An env needs an optional package that is not installed."""


def require(module: str, extra: str):
    """Imports ``module`` or raises MissingPackageError telling which pip extra installs it.

    Import-time notices printed to stderr (gymnasium-robotics prints one about Adroit rewards) are dropped.
    """
    import contextlib
    import importlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return importlib.import_module(module)
    except ImportError as e:
        raise MissingPackageError(
            f"this env needs the Python package {module!r} ({e}); install it with "
            f"pip install -e '.[{extra}]' (or pip install 'contrastive-rl[{extra}]')"
        ) from None


_GL_LIBRARIES = (("egl", ("libEGL.so.1", "libEGL.so")), ("osmesa", ("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so")))


def _loadable(library: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def headless_gl(need_render: bool) -> str:
    """Sets ``MUJOCO_GL`` before mujoco is imported, unless the user chose a backend, and returns the backend.

    EGL where libEGL loads, else OSMesa where libOSMesa loads. With neither (a GPU container without the GL
    libraries, say) state-only envs get ``disable``, which imports mujoco without an OpenGL library; forcing
    ``egl`` there would make ``import mujoco`` itself fail. An env that renders raises a message saying what to
    install.
    """
    import os

    chosen = os.environ.get("MUJOCO_GL")
    if chosen is not None:
        return chosen
    for backend, libraries in _GL_LIBRARIES:
        if any(_loadable(library) for library in libraries):
            os.environ["MUJOCO_GL"] = backend
            return backend
    if need_render:
        raise MissingPackageError(
            "rendering needs EGL or OSMesa and neither library loads: install one (Debian: apt install libegl1, "
            "or libosmesa6) or set MUJOCO_GL to a backend that works here")
    os.environ["MUJOCO_GL"] = "disable"
    return "disable"


class GoalTask(GoalLayout, abc.ABC):
    """One goal-conditioned task instance.

    Attributes have the meaning of the same names on `VecGoalEnv`. Observations are float32 vectors (uint8
    flattened images when ``image_shape`` is set); the commanded goal lives in goal space, i.e. has the layout of
    ``obs[goal_start:goal_end]``.
    """

    @abc.abstractmethod
    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Starts an episode whose randomness is fully determined by ``seed``; returns (obs, commanded goal)."""

    @abc.abstractmethod
    def step(self, action: np.ndarray) -> tuple[np.ndarray, bool, float]:
        """Applies ``action`` in [-1, 1]^act_dim; returns (obs, goal reached, distance to the goal)."""

    def close(self) -> None:
        """Frees simulator/renderer resources (optional)."""

    def obs_dtype(self):
        return np.uint8 if self.image_shape is not None else np.float32


class TaskVecEnv(VecGoalEnv):
    """N `GoalTask` copies stepped in lock-step; see `VecGoalEnv` for the contract."""

    def __init__(self, name: str, make_task: Callable[[], GoalTask], num_envs: int, seed: int = 0):
        self.name = name
        self.num_envs = num_envs
        self.tasks = [make_task() for _ in range(num_envs)]
        t = self.tasks[0]
        for attr in self.LAYOUT_FIELDS:
            setattr(self, attr, getattr(t, attr))
        self.obs_dtype = t.obs_dtype()
        self.seed(seed)

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        seeds = self.rng.integers(0, 2**31 - 1, size=self.num_envs)
        pairs = [task.reset(int(s)) for task, s in zip(self.tasks, seeds)]
        obs = np.stack([p[0] for p in pairs]).astype(self.obs_dtype, copy=False)
        goal = np.stack([p[1] for p in pairs]).astype(self.obs_dtype, copy=False)
        return obs, goal

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        out = [task.step(a) for task, a in zip(self.tasks, action)]
        obs = np.stack([o[0] for o in out]).astype(self.obs_dtype, copy=False)
        success = np.array([o[1] for o in out], bool)
        distance = np.array([o[2] for o in out], np.float32)
        return obs, success, {"distance": distance}

    def obs_to_goal(self, obs: np.ndarray) -> np.ndarray:
        end = self.obs_dim if self.goal_end is None else self.goal_end
        return obs[..., self.goal_start:end]

    def is_success(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        if self.success_threshold <= 0:
            raise NotImplementedError(f"{self.name} has no distance-threshold success test")
        end = self.goal_dim if self.success_end is None else self.success_end
        diff = np.asarray(achieved_goal, np.float64)[..., self.success_start:end] - np.asarray(
            desired_goal, np.float64)[..., self.success_start:end]
        return np.linalg.norm(diff, axis=-1) < self.success_threshold

    def observation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.image_shape is not None:
            return np.zeros(self.obs_dim, np.uint8), np.full(self.obs_dim, 255, np.uint8)
        return super().observation_bounds()

    def goal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        if self.image_shape is not None:
            return np.zeros(self.goal_dim, np.uint8), np.full(self.goal_dim, 255, np.uint8)
        return super().goal_bounds()

    def close(self) -> None:
        for task in self.tasks:
            task.close()


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two vectors as a Python float."""
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
