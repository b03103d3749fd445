"""Env registry: `make_vec_env(name, num_envs)` for training, `make_gym_env(name)` for a gymnasium view.

Built in (NumPy, no MuJoCo): the paper's six point mazes. With the ``robotics`` extra: the paper's Fetch, Sawyer and
ant-maze tasks on current MuJoCo packages. ``gym:ENV_ID`` wraps any gymnasium goal env (``crl.envs.gym_goal``).
The gymnasium views are also registered as `crl/<name>-v0`, e.g. `gymnasium.make("crl/point_FourRooms-v0")`.
"""

import difflib
from functools import partial

import gymnasium

from crl.envs.base import VecGoalEnv
from crl.envs.gym_view import GymGoalEnvView, PointMazeGymEnv
from crl.envs.point_maze import LAYOUTS, PointMaze
from crl.envs.task import GoalTask, MissingPackageError, TaskVecEnv

POINT_ENVS = tuple(f"point_{layout}" for layout in LAYOUTS)


def _fetch(kind):
    from crl.envs.fetch import FetchTask

    return FetchTask(kind)


def _sawyer(kind):
    from crl.envs import sawyer

    return sawyer.SawyerPush() if kind == "push" else sawyer.SawyerBin()


def _ant(map_name):
    from crl.envs.ant_maze import AntMazeTask

    return AntMazeTask(map_name)


def _fetch_reach_image():
    from crl.envs.image import FetchReachImage

    return FetchReachImage()


def _fetch_push_image():
    from crl.envs.image import FetchPushImage

    return FetchPushImage()


def _sawyer_image(kind):
    from crl.envs import image

    return image.SawyerPushImage() if kind == "push" else image.SawyerBinImage()


def _gym(env_id):
    from crl.envs.gym_goal import GymGoalTask

    return GymGoalTask(env_id)


# name -> factory of one GoalTask (MuJoCo envs; need the `robotics` extra).
TASKS = {
    "fetch_reach": partial(_fetch, "reach"),
    "fetch_push": partial(_fetch, "push"),
    "sawyer_push": partial(_sawyer, "push"),
    "sawyer_bin": partial(_sawyer, "bin"),
    "ant_umaze": partial(_ant, "umaze"),
    "fetch_reach_image": _fetch_reach_image,
    "fetch_push_image": _fetch_push_image,
    "sawyer_push_image": partial(_sawyer_image, "push"),
    "sawyer_bin_image": partial(_sawyer_image, "bin"),
}
POINT_IMAGE_ENVS = tuple(f"{name}_image" for name in POINT_ENVS)
ENV_NAMES = POINT_ENVS + tuple(TASKS) + POINT_IMAGE_ENVS
GYM_PREFIX = "gym:"


class UnknownEnvError(ValueError):
    """Raised for an env name that is not in `ENV_NAMES` (nor ``gym:ENV_ID``)."""


def _check_name(name: str) -> None:
    if name in ENV_NAMES or (name.startswith(GYM_PREFIX) and len(name) > len(GYM_PREFIX)):
        return
    by_lower = {n.lower(): n for n in ENV_NAMES}
    close = difflib.get_close_matches(name.lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f" Did you mean {by_lower[close[0]]!r}?" if close else ""
    raise UnknownEnvError(
        f"Unknown env {name!r}.{hint} Known envs: {', '.join(ENV_NAMES)}; gym:ENV_ID for any gymnasium goal env; "
        f"or an OGBench dataset name for offline training, e.g. pointmaze-medium-navigate-v0."
    )


def gym_id(name: str) -> str:
    """Returns the gymnasium id of an env name, e.g. 'crl/point_U-v0'."""
    return f"crl/{name}-v0"


def make_vec_env(name: str, num_envs: int, seed: int = 0) -> VecGoalEnv:
    """Returns the `VecGoalEnv` called `name` with `num_envs` envs, seeded with `seed`.

    Raises UnknownEnvError for an unknown name, MissingPackageError when the env's packages are not installed.
    """
    _check_name(name)
    if name in POINT_ENVS:
        return PointMaze(name.removeprefix("point_"), num_envs, seed)
    if name in POINT_IMAGE_ENVS:
        from crl.envs.image import PointMazeImage

        return PointMazeImage(name.removeprefix("point_").removesuffix("_image"), num_envs, seed)
    if name.startswith(GYM_PREFIX):
        return TaskVecEnv(name, partial(_gym, name[len(GYM_PREFIX):]), num_envs, seed)
    return TaskVecEnv(name, TASKS[name], num_envs, seed)


def make_gym_env(name: str) -> gymnasium.Env:
    """Returns a single-env gymnasium view of env `name` (unwrapped; `spec` set for built-in names)."""
    _check_name(name)
    if name in POINT_ENVS:
        env = PointMazeGymEnv(name.removeprefix("point_"))
    else:
        env = GymGoalEnvView(partial(make_vec_env, name))
    if name in ENV_NAMES:
        env.spec = gymnasium.spec(gym_id(name))
    return env


def register_gym_envs() -> None:
    """Registers every built-in env with gymnasium as `crl/<name>-v0`; safe to call repeatedly."""
    for name in ENV_NAMES:
        if gym_id(name) in gymnasium.registry:
            continue
        if name in POINT_ENVS:
            layout = name.removeprefix("point_")
            gymnasium.register(gym_id(name), entry_point="crl.envs.gym_view:PointMazeGymEnv",
                               kwargs={"layout": layout}, max_episode_steps=PointMaze(layout, 1).horizon)
        else:
            gymnasium.register(gym_id(name), entry_point="crl.envs.gym_view:GymGoalEnvView",
                               kwargs={"vec_env_factory": partial(make_vec_env, name)})


register_gym_envs()

__all__ = ["ENV_NAMES", "GoalTask", "GymGoalEnvView", "MissingPackageError", "POINT_ENVS", "PointMaze",
           "PointMazeGymEnv", "TASKS", "TaskVecEnv", "UnknownEnvError", "VecGoalEnv", "gym_id", "make_gym_env",
           "make_vec_env", "register_gym_envs"]
