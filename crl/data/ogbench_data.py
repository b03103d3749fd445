"""OGBench datasets: names, file locations, and a validating loader into the trajectory container.

File format (OGBench's ``NAME.npz`` and ``NAME-val.npz``): ``observations [N, obs_dim]``, ``actions [N, act_dim]``,
``terminals [N]`` (1 on the last stored row of every episode), optionally ``qpos``, ``qvel``, ``button_states``.
Each episode is stored as all its rows; the last row's action has no successor. Loaded the way OGBench's
agents load them (``compact_dataset=True``): every row except an episode's last is a state with a successor, and
the last row is only ever a successor; with ``GoalSampler(style='ogbench')`` it is never a state or a goal.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np

from crl.data.offline import DatasetError, OfflineDataset
from crl.data.store import from_episode_ends
from crl.types import EnvSpec

DEFAULT_DATA_DIR = Path("~/.ogbench/data")
FAMILIES = ("pointmaze", "antmaze", "humanoidmaze", "antsoccer", "cube", "scene", "puzzle", "powderworld")
TYPES = ("navigate", "stitch", "explore", "play", "noisy")
_NAME = re.compile(rf"^(visual-)?({'|'.join(FAMILIES)})-(?:[a-z0-9x]+-)?({'|'.join(TYPES)})-v0$")
REQUIRED_KEYS = ("observations", "actions", "terminals")


def is_ogbench_dataset(name: str) -> bool:
    """True for an OGBench dataset name such as ``pointmaze-medium-navigate-v0`` or ``scene-play-v0``."""
    return _NAME.match(name) is not None


def check_supported(name: str) -> None:
    """Raises DatasetError for OGBench datasets this library cannot train on yet (pixels, discrete actions)."""
    m = _NAME.match(name)
    if m is None:
        raise DatasetError(f"{name!r} is not an OGBench dataset name (expected e.g. pointmaze-medium-navigate-v0)")
    if m.group(1):
        raise DatasetError(f"{name}: visual (pixel) OGBench datasets are not supported yet; use the state version")
    if m.group(2) == "powderworld":
        raise DatasetError(f"{name}: powderworld (discrete actions, pixels) is not supported yet")


def env_id(name: str) -> str:
    """The OGBench env id of a dataset: the name without its type (``antmaze-large-navigate-v0`` -> ``antmaze-large-v0``)."""
    parts = name.split("-")
    return "-".join(parts[:-2] + parts[-1:])


def dataset_paths(name: str, dataset: str | Path | None = None, data_dir: str | Path | None = None) -> tuple[Path, Path]:
    """``(train, val)`` file paths: ``dataset`` itself (val = ``*-val.npz`` beside it) or ``DATA_DIR/NAME.npz``."""
    if dataset is not None:
        train = Path(dataset).expanduser()
    else:
        train = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser() / f"{name}.npz"
    return train, train.with_name(train.name.removesuffix(".npz") + "-val.npz")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Reads the arrays of an OGBench file, validated (raises DatasetError naming the file and the problem)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in REQUIRED_KEYS if k not in f.files]
            if missing:
                raise DatasetError(f"{path}: missing key(s) {', '.join(missing)} (has {', '.join(f.files) or 'none'})")
            arrays = {k: f[k] for k in f.files}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from None
    validate_arrays(arrays, str(path))
    return arrays


def validate_arrays(a: dict[str, np.ndarray], where: str) -> None:
    """Checks shapes, dtypes, finiteness and episode boundaries of OGBench arrays; raises DatasetError."""
    obs, act, term = a["observations"], a["actions"], a["terminals"]
    if obs.ndim != 2:
        what = "pixel observations are not supported yet" if obs.ndim == 4 else "expected [N, obs_dim]"
        raise DatasetError(f"{where}: observations have shape {obs.shape}; {what}")
    if act.ndim != 2:
        raise DatasetError(f"{where}: actions have shape {act.shape}; expected [N, act_dim] (continuous actions)")
    if term.ndim != 1:
        raise DatasetError(f"{where}: terminals have shape {term.shape}; expected [N]")
    n = len(obs)
    if n == 0:
        raise DatasetError(f"{where}: the dataset is empty")
    if len(act) != n or len(term) != n:
        raise DatasetError(
            f"{where}: mismatched lengths: observations {n}, actions {len(act)}, terminals {len(term)}"
        )
    for key in ("qpos", "qvel", "button_states"):
        if key in a and len(a[key]) != n:
            raise DatasetError(f"{where}: {key} has {len(a[key])} rows, observations {n}")
    if not np.issubdtype(obs.dtype, np.floating):
        raise DatasetError(f"{where}: observations have dtype {obs.dtype}; expected a float type (float32)")
    if not np.issubdtype(act.dtype, np.floating):
        raise DatasetError(f"{where}: actions have dtype {act.dtype}; expected a float type (float32)")
    if not (term.dtype == np.bool_ or np.issubdtype(term.dtype, np.integer) or np.issubdtype(term.dtype, np.floating)):
        raise DatasetError(f"{where}: terminals have dtype {term.dtype}; expected bool")
    if not np.all((term == 0) | (term == 1)):
        raise DatasetError(f"{where}: terminals must be 0 or 1")
    for key, arr in (("observations", obs), ("actions", act)):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(f"{where}: {key} contain NaN or inf ({int(bad.sum())} values, first at row {row})")
    ends = np.flatnonzero(term)
    if len(ends) == 0:
        raise DatasetError(f"{where}: no episode boundaries (terminals are all 0)")
    if ends[-1] != n - 1:
        raise DatasetError(f"{where}: the last row ({n - 1}) does not end an episode (terminals[-1] = 0)")
    lengths = np.diff(np.concatenate([[-1], ends]))
    if lengths.min() < 2:
        row = int(ends[np.argmin(lengths)])
        raise DatasetError(f"{where}: an episode ending at row {row} has a single row (no transition)")


def load_ogbench(
    name: str,
    dataset: str | Path | None = None,
    data_dir: str | Path | None = None,
    obs_dim: int | None = None,
    act_dim: int | None = None,
) -> tuple[OfflineDataset, OfflineDataset | None]:
    """Loads and validates an OGBench dataset and its ``-val`` file (``None`` when that file does not exist).

    ``obs_dim``/``act_dim``: the env's spaces, checked against the files. Goals are full observations
    (OGBench's convention), so ``spec.goal_dim == spec.obs_dim``.
    """
    train_path, val_path = dataset_paths(name, dataset, data_dir)
    if not train_path.is_file():
        raise DatasetError(
            f"{train_path}: file not found. Generate it with `crl data generate {name} --out {train_path.parent}`, "
            f"or place OGBench's official {name}.npz and {name}-val.npz there "
            f"(or point to them with --dataset / --data-dir)"
        )
    out = []
    for path in (train_path, val_path):
        if path is val_path and not path.is_file():
            out.append(None)
            continue
        a = read_npz(path)
        o, d = a["observations"].shape[1], a["actions"].shape[1]
        if obs_dim is not None and o != obs_dim:
            raise DatasetError(f"{path}: observations have {o} dims but env {env_id(name)} has {obs_dim}")
        if act_dim is not None and d != act_dim:
            raise DatasetError(f"{path}: actions have {d} dims but env {env_id(name)} has {act_dim}")
        if out and (o, d) != (out[0].spec.obs_dim, out[0].spec.act_dim):
            raise DatasetError(f"{path}: shapes (obs {o}, act {d}) differ from {train_path}")
        traj = from_episode_ends(a["observations"], a["actions"], a["terminals"].astype(bool))
        out.append(OfflineDataset(traj, EnvSpec(o, o, d), str(path)))
    return out[0], out[1]
