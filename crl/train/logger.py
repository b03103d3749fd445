"""Run logging: eval.csv, TensorBoard event files, and optional Weights & Biases."""

from __future__ import annotations

import csv
import numbers
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

EVAL_CSV = "eval.csv"
WANDB_MODES = ("online", "offline", "disabled")


@dataclass(frozen=True)
class WandbSettings:
    """Weights & Biases options. ``mode='offline'`` writes locally only (sync later with ``wandb sync``)."""

    project: str
    entity: str | None = None
    mode: Literal["online", "offline", "disabled"] = "online"
    name: str | None = None

    def __post_init__(self):
        if self.mode not in WANDB_MODES:
            raise ValueError(f"wandb mode must be one of {WANDB_MODES}, got {self.mode!r}")


def _plain(v: Any) -> Any:
    """numpy/jax scalars -> python scalars, so they print as plain numbers."""
    if hasattr(v, "__array__"):  # numpy and jax arrays/scalars
        arr = np.asarray(v)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    return v


def _init_wandb(settings: WandbSettings, run_dir: Path, config: dict | None, resume: bool):
    try:
        import wandb
    except ImportError as e:
        raise ImportError(
            "W&B logging was requested but wandb is not installed: pip install 'contrastive-rl[wandb]'"
        ) from e
    wandb_dir = run_dir / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    id_file = wandb_dir / "run_id.txt"  # lets a resumed run continue the same W&B run
    if resume and id_file.exists():
        run_id = id_file.read_text().strip()
    else:
        run_id = secrets.token_hex(4)
        id_file.write_text(run_id + "\n")
    run = wandb.init(
        project=settings.project,
        entity=settings.entity,
        name=settings.name,
        mode=settings.mode,
        dir=str(run_dir),  # wandb writes into run_dir/wandb/
        config=dict(config or {}),
        id=run_id,
        resume="allow",
    )
    run.define_metric("global_step")
    run.define_metric("*", step_metric="global_step")
    return run


class RunLogger:
    """Writes ``run_dir/eval.csv``, TensorBoard events in ``run_dir`` and (optionally) W&B.

    With ``resume=True`` an existing eval.csv is appended to (its header is kept) and the
    W&B run id stored in ``run_dir/wandb/run_id.txt`` is reused; otherwise eval.csv is
    started afresh. ``config`` is stored as the W&B run config. Use as a context manager
    or call ``close()``.
    """

    def __init__(
        self,
        run_dir: str | Path,
        use_tensorboard: bool = True,
        wandb: WandbSettings | None = None,
        resume: bool = False,
        config: dict | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.eval_path = self.run_dir / EVAL_CSV
        self._resume = resume
        self._csv_file = None
        self._csv_writer: csv.DictWriter | None = None
        self._dropped: set[str] = set()
        self._closed = False
        self._tb = None
        if use_tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(logdir=str(self.run_dir), flush_secs=10)
        self._wandb = None
        if wandb is not None and wandb.mode != "disabled":
            self._wandb = _init_wandb(wandb, self.run_dir, config, resume)

    # -- eval.csv ------------------------------------------------------------------

    def _open_csv(self, first_row: dict) -> None:
        columns = None
        if self._resume and self.eval_path.exists() and self.eval_path.stat().st_size > 0:
            data = self.eval_path.read_bytes()
            if not data.endswith(b"\n"):  # a crash cut the last row short: drop it
                with open(self.eval_path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
            with open(self.eval_path, newline="") as f:
                columns = next(csv.reader(f), None)
        self._csv_file = open(self.eval_path, "a" if columns else "w", newline="")
        self._csv_writer = csv.DictWriter(
            self._csv_file, fieldnames=columns or list(first_row), restval="", extrasaction="ignore"
        )
        if not columns:
            self._csv_writer.writeheader()

    def log_eval(self, row: dict[str, Any]) -> None:
        """Append ``row`` to eval.csv and flush.

        Columns come from the first row ever written (or the existing header on resume);
        columns missing from ``row`` are left empty, keys not in the header are dropped
        with a one-time warning.
        """
        if self._closed:
            raise RuntimeError("RunLogger is closed")
        if self._csv_writer is None:
            self._open_csv(row)
        new = set(row) - set(self._csv_writer.fieldnames) - self._dropped
        if new:
            warnings.warn(f"{self.eval_path}: dropping keys not in the header: {sorted(new)}", stacklevel=2)
            self._dropped |= new
        self._csv_writer.writerow({k: _plain(v) for k, v in row.items()})
        self._csv_file.flush()

    # -- scalars -------------------------------------------------------------------

    def log_scalars(self, step: int, metrics: dict[str, Any], prefix: str = "") -> None:
        """Log ``metrics`` as ``{prefix}/{name}`` scalars at ``step`` to TensorBoard and W&B.

        Values may be python, numpy or 0-d jax scalars; non-numeric values are skipped.
        """
        values = {f"{prefix}/{k}" if prefix else k: _plain(v) for k, v in metrics.items()}
        tags = {k: float(v) for k, v in values.items() if isinstance(v, numbers.Real)}
        if self._tb is not None:
            for tag, value in tags.items():
                self._tb.add_scalar(tag, value, global_step=step)
        if self._wandb is not None:
            self._wandb.log({**tags, "global_step": step})

    def flush(self) -> None:
        """Flush eval.csv and TensorBoard events to disk."""
        if self._csv_file is not None:
            self._csv_file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close all outputs (finishes the W&B run). Safe to call twice."""
        self._closed = True
        if self._csv_file is not None:
            self._csv_file.close()
            self._csv_file = self._csv_writer = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def truncate_eval_csv(run_dir: str | Path, max_env_steps: int, column: str = "env_steps") -> int:
    """Drops eval.csv rows whose ``column`` exceeds ``max_env_steps`` (rows written after the checkpoint a run
    resumes from; offline runs count ``updates``).

    Rewrites the file atomically; returns the number of rows dropped.
    """
    from crl.train.io import atomic_write_bytes

    path = Path(run_dir) / EVAL_CSV
    if not path.exists():
        return 0
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or column not in rows[0]:
        return 0
    col = rows[0].index(column)
    keep = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and int(float(r[col])) <= max_env_steps]
    dropped = len(rows) - len(keep)
    if dropped:
        import io

        buf = io.StringIO()
        csv.writer(buf).writerows(keep)
        atomic_write_bytes(path, buf.getvalue().encode())
    return dropped
