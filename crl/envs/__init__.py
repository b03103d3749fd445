"""Env registry: `make_vec_env(name, num_envs)` for training, `make_gym_env(name)` for a gymnasium view.

The gymnasium views are also registered as `crl/<name>-v0`, e.g.
`gymnasium.make("crl/point_FourRooms-v0")`.
"""

import difflib

import gymnasium

from crl.envs.base import VecGoalEnv
from crl.envs.gym_view import GymGoalEnvView, PointMazeGymEnv
from crl.envs.point_maze import LAYOUTS, PointMaze

ENV_NAMES = tuple(f"point_{layout}" for layout in LAYOUTS)


class UnknownEnvError(ValueError):
    """Raised for an env name that is not in `ENV_NAMES`."""


def _check_name(name: str) -> None:
    if name in ENV_NAMES:
        return
    by_lower = {n.lower(): n for n in ENV_NAMES}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    raise UnknownEnvError(
        f"Unknown env {name!r}.{hint} Known envs: {', '.join(ENV_NAMES)}; or an OGBench dataset name for offline "
        f"training, e.g. pointmaze-medium-navigate-v0."
    )


def gym_id(name: str) -> str:
    """Returns the gymnasium id of an env name, e.g. 'crl/point_U-v0'."""
    return f"crl/{name}-v0"


def make_vec_env(name: str, num_envs: int, seed: int = 0) -> VecGoalEnv:
    """Returns the `VecGoalEnv` called `name` with `num_envs` envs, seeded with `seed`."""
    _check_name(name)
    return PointMaze(name.removeprefix("point_"), num_envs, seed)


def make_gym_env(name: str) -> gymnasium.Env:
    """Returns a single-env gymnasium view of env `name` (unwrapped; `spec` set)."""
    _check_name(name)
    env = PointMazeGymEnv(name.removeprefix("point_"))
    env.spec = gymnasium.spec(gym_id(name))
    return env


def register_gym_envs() -> None:
    """Registers every env with gymnasium as `crl/<name>-v0`; safe to call repeatedly."""
    for name in ENV_NAMES:
        if gym_id(name) not in gymnasium.registry:
            gymnasium.register(gym_id(name), entry_point="crl.envs.gym_view:PointMazeGymEnv",
                               kwargs={"layout": name.removeprefix("point_")})


register_gym_envs()

__all__ = ["ENV_NAMES", "GymGoalEnvView", "PointMaze", "PointMazeGymEnv", "UnknownEnvError",
           "VecGoalEnv", "gym_id", "make_gym_env", "make_vec_env", "register_gym_envs"]
