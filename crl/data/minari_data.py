"""Minari datasets with goal-conditioned (dict) observations, loaded into the trajectory container.

A Minari dataset (https://minari.farama.org) lives in a directory ``<root>/<dataset id>/data`` holding
``metadata.json`` (serialised observation/action spaces, env spec, counts) and the episodes (``main_data.hdf5``
by default, or Arrow/Parquet files). Each episode of ``T`` steps stores ``T + 1`` observations (the initial one
and the one after every step) and ``T`` actions. ``<root>`` is ``$MINARI_DATASETS_PATH`` when set, else
``~/.minari/datasets``.

Goal-conditioned datasets (e.g. ``D4RL/pointmaze/umaze-v2``, ``D4RL/antmaze/*``) have dict observations
``{observation, achieved_goal, desired_goal}``. In the container each row is
``concat(observation, achieved_goal)`` (float32), so with ``o``/``g`` their widths the spec is
``EnvSpec(obs_dim=o+g, goal_dim=g, act_dim=a, goal_start=o, goal_end=o+g)`` and ``spec.obs_to_goal(row)`` is the
row's achieved goal. An episode with ``T`` actions becomes ``T + 1`` rows with ``ep_len = T``; the last row's
action is zero padding. Episodes without transitions are skipped. ``desired_goal`` is validated but not stored:
training goals are relabelled from achieved goals.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crl.data.offline import DatasetError, OfflineDataset
from crl.data.store import from_episode_ends
from crl.types import EnvSpec

OBS_KEYS = ("observation", "achieved_goal", "desired_goal")
INSTALL_HINT = "pip install 'contrastive-rl[minari]'"


def _import_minari():
    try:
        import minari
    except ImportError as e:
        raise ImportError(f"loading Minari datasets needs the minari package ({e}); {INSTALL_HINT}") from e
    return minari


def datasets_root() -> Path:
    """Minari's local dataset directory: ``$MINARI_DATASETS_PATH``, else ``~/.minari/datasets`` (as minari)."""
    root = os.environ.get("MINARI_DATASETS_PATH")
    return Path(root).expanduser() if root else Path("~/.minari/datasets").expanduser()


def resolve_data_path(dataset: str | Path) -> Path:
    """The ``data`` directory (the one holding ``metadata.json``) of a Minari dataset id or directory.

    A path to an existing directory is used as is (either a dataset's root or its ``data`` folder); anything else
    is a dataset id, looked up as ``datasets_root() / id / 'data'``. Nothing is downloaded or created.
    """
    path = Path(dataset).expanduser()
    if path.is_dir():
        if (path / "metadata.json").is_file():
            return path
        if (path / "data" / "metadata.json").is_file():
            return path / "data"
        raise DatasetError(f"{dataset}: not a Minari dataset directory (no metadata.json in it or in its data/)")
    if isinstance(dataset, Path) or str(dataset).startswith((".", "/", "~")):
        raise DatasetError(f"{dataset}: directory not found")
    data = datasets_root() / str(dataset) / "data"
    if not (data / "metadata.json").is_file():
        raise DatasetError(
            f"{dataset}: Minari dataset not found at {data.parent} (the local Minari data dir is "
            f"{datasets_root()}, set by MINARI_DATASETS_PATH); download it with `minari download {dataset}` "
            f"or pass the dataset's directory"
        )
    return data


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def _check_spaces(observation_space: Any, action_space: Any, where: str) -> None:
    """Checks the dataset's declared spaces: dict observations with the three goal keys, a 1-D Box action."""
    from gymnasium import spaces

    if not isinstance(action_space, spaces.Box):
        raise DatasetError(
            f"{where}: action space is {type(action_space).__name__} ({action_space}); only continuous (Box) "
            f"actions are supported"
        )
    if len(action_space.shape) != 1:
        raise DatasetError(f"{where}: action space has shape {action_space.shape}; expected a vector (act_dim,)")
    if not isinstance(observation_space, spaces.Dict):
        raise DatasetError(
            f"{where}: observation space is {type(observation_space).__name__}, not a Dict with keys "
            f"{', '.join(OBS_KEYS)} (goal-conditioned datasets only)"
        )
    missing = [k for k in OBS_KEYS if k not in observation_space.spaces]
    if missing:
        raise DatasetError(
            f"{where}: observation space lacks key(s) {', '.join(missing)} "
            f"(has {', '.join(observation_space.spaces)}); expected {', '.join(OBS_KEYS)}"
        )
    for k in OBS_KEYS:
        sub = observation_space.spaces[k]
        if not isinstance(sub, spaces.Box) or len(sub.shape) != 1:
            raise DatasetError(f"{where}: observation space {k!r} is {sub}; expected a vector Box")


def episodes_to_dataset(episodes: Iterable[tuple[Any, Any, Any]], source: str) -> OfflineDataset:
    """Converts ``(episode id, observations, actions)`` triples into an ``OfflineDataset``, validating them.

    ``observations`` is a dict with (at least) the keys ``observation [T+1, o]``, ``achieved_goal [T+1, g]`` and
    ``desired_goal [T+1, g]``; ``actions`` is ``[T, a]``. Raises ``DatasetError`` (one line naming ``source``, the
    episode and the problem) for a non-dict observation or a missing key, non-numeric or non-vector arrays,
    ``T + 1`` observations not matching ``T`` actions, widths that differ between episodes, NaN or inf values, or
    no transitions at all. Episodes with ``T == 0`` are skipped.
    """
    obs_rows, act_rows, last_row = [], [], []
    dims = None  # (o, g, a) of the first episode
    first_id = None
    num_episodes = 0
    for ep_id, observations, actions in episodes:
        where = f"{source}: episode {ep_id}"
        num_episodes += 1
        if not isinstance(observations, Mapping):
            raise DatasetError(
                f"{where}: observations are {type(observations).__name__}, not a dict with keys {', '.join(OBS_KEYS)}"
            )
        missing = [k for k in OBS_KEYS if k not in observations]
        if missing:
            raise DatasetError(
                f"{where}: observations lack key(s) {', '.join(missing)} (has {', '.join(map(str, observations))})"
            )
        arrays = {}
        for k, value in [*((k, observations[k]) for k in OBS_KEYS), ("actions", actions)]:
            verb = "have" if k == "actions" else "has"
            try:
                arr = np.asarray(value)
            except ValueError as e:  # ragged nested lists
                raise DatasetError(f"{where}: {k} {verb} no array form ({_one_line(e)})") from None
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                raise DatasetError(f"{where}: {k} {verb} dtype {arr.dtype}; expected numbers")
            if arr.ndim != 2:
                what = "actions must be vectors [T, act_dim] (continuous)" if k == "actions" else "expected [T+1, dim]"
                raise DatasetError(f"{where}: {k} {verb} shape {arr.shape}; {what}")
            arrays[k] = arr
        t = len(arrays["actions"])
        for k in OBS_KEYS:
            if len(arrays[k]) != t + 1:
                raise DatasetError(
                    f"{where}: {k} has {len(arrays[k])} entries for {t} actions; expected {t + 1} (T + 1)"
                )
        o, g, gd, a = (arrays[k].shape[1] for k in (*OBS_KEYS, "actions"))
        if gd != g:
            raise DatasetError(f"{where}: desired_goal has {gd} dims but achieved_goal has {g}")
        if dims is None:
            dims, first_id = (o, g, a), ep_id
        elif (o, g, a) != dims:
            raise DatasetError(
                f"{where}: shapes (observation {o}, goal {g}, action {a}) differ from episode {first_id}'s "
                f"(observation {dims[0]}, goal {dims[1]}, action {dims[2]})"
            )
        with np.errstate(over="ignore"):  # values beyond float32 become inf and are reported below
            arrays = {k: v.astype(np.float32, copy=False) for k, v in arrays.items()}
        for k, v in arrays.items():
            bad = ~np.isfinite(v)
            if bad.any():
                step = int(np.argwhere(bad)[0][0])
                raise DatasetError(
                    f"{where}: {k} contain{'' if k == 'actions' else 's'} NaN or inf ({int(bad.sum())} value(s), "
                    f"first at step {step})"
                )
        if t == 0:
            continue
        obs_rows.append(np.concatenate([arrays["observation"], arrays["achieved_goal"]], axis=1))
        act_rows.append(np.concatenate([arrays["actions"], np.zeros((1, a), np.float32)]))
        ends = np.zeros(t + 1, bool)
        ends[-1] = True
        last_row.append(ends)
    if not obs_rows:
        what = "has no episodes" if num_episodes == 0 else f"has {num_episodes} episode(s) but no transitions"
        raise DatasetError(f"{source}: the dataset is empty ({what})")
    o, g, a = dims
    traj = from_episode_ends(np.concatenate(obs_rows), np.concatenate(act_rows), np.concatenate(last_row))
    return OfflineDataset(traj, EnvSpec(obs_dim=o + g, goal_dim=g, act_dim=a, goal_start=o, goal_end=o + g), source)


def load_minari(dataset: str | Path) -> OfflineDataset:
    """A Minari dataset id (e.g. 'D4RL/pointmaze/umaze-v2', resolved in the local Minari data dir; no download) or
    a path to a local Minari dataset directory, with dict observations {observation, achieved_goal, desired_goal}.

    Returns an ``OfflineDataset`` whose rows are ``concat(observation, achieved_goal)`` (see the module docstring)
    and whose ``source`` is ``dataset`` as given. Raises ``DatasetError`` (one line naming the dataset and the
    problem) for a missing or unreadable dataset, non-dict observations or missing keys, a non-Box action space,
    mismatched lengths, inconsistent shapes, NaN/inf values or an empty dataset; ``ImportError`` when the
    ``minari`` package (or its HDF5 backend) is not installed.
    """
    minari = _import_minari()
    source = str(dataset)
    data_path = resolve_data_path(dataset)
    try:
        ds = minari.MinariDataset(data_path)
    except ImportError as e:  # the storage backend (h5py, pyarrow) or pillow is missing
        raise ImportError(f"{source}: reading this Minari dataset needs {_one_line(e)}; {INSTALL_HINT}") from e
    except Exception as e:  # noqa: BLE001 - minari raises ValueError, KeyError, OSError, AssertionError, ...
        raise DatasetError(f"{source}: not a readable Minari dataset ({_one_line(e)})") from None
    _check_spaces(ds.observation_space, ds.action_space, source)
    if len(ds) == 0:
        raise DatasetError(f"{source}: the dataset is empty (has no episodes)")

    def episodes():
        it = iter(ds.iterate_episodes())
        while True:
            try:
                ep = next(it)
            except StopIteration:
                return
            except ImportError as e:
                raise ImportError(f"{source}: reading this Minari dataset needs {_one_line(e)}; {INSTALL_HINT}") from e
            except Exception as e:  # noqa: BLE001 - a corrupt or malformed episode
                raise DatasetError(f"{source}: cannot read an episode ({_one_line(e)})") from None
            yield ep.id, ep.observations, ep.actions

    out = episodes_to_dataset(episodes(), source)
    spec = out.spec
    declared = (ds.observation_space["observation"].shape[0], ds.observation_space["achieved_goal"].shape[0],
                ds.action_space.shape[0])
    if (spec.goal_start, spec.goal_dim, spec.act_dim) != declared:
        raise DatasetError(
            f"{source}: episodes have widths (observation {spec.goal_start}, goal {spec.goal_dim}, action "
            f"{spec.act_dim}) but the dataset's spaces declare (observation {declared[0]}, goal {declared[1]}, "
            f"action {declared[2]})"
        )
    return out
