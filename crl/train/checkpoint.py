"""Atomic, checksummed checkpoints of arbitrary JAX pytrees.

File format (``run_dir/checkpoints/ckpt_{step:09d}.ckpt``)::

    b"CRLCKPT\\n"                                          magic
    {"format_version": 1, "payload_bytes": N, "payload_sha256": "..."}\\n
    <N bytes: flax msgpack payload>

The payload (``flax.serialization.msgpack_serialize``) is a dict::

    step:      int
    created:   float, unix time
    versions:  {"jax": ..., "flax": ...}
    state:     {"path/to/leaf": leaf}   # flat, keyed by jax.tree_util.keystr(simple=True, separator="/")
    extra:     str, JSON of ``extra`` with every array replaced by {"__ndarray__": "<i>"}
    arrays:    {"<i>": np.ndarray}      # the arrays pulled out of ``extra``

State leaves are numpy arrays (jax arrays are pulled to host), python scalars/strings, or
typed PRNG keys stored as ``{"__prng_key__": impl_name, "data": key_data}``. Everything
after the header line is covered by the sha256, so any truncation or flipped byte is
reported as a ``CheckpointError``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
from flax.serialization import msgpack_restore, msgpack_serialize

from crl.train.io import atomic_write_bytes

FORMAT_VERSION = 1
MAGIC = b"CRLCKPT\n"
CHECKPOINT_DIR = "checkpoints"
_NAME_RE = re.compile(r"ckpt_(\d{9,})\.ckpt")
_KEY_TAG = "__prng_key__"
_ARRAY_TAG = "__ndarray__"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, truncated, or does not match the template."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).splitlines()))  # always a single line


# ----------------------------------------------------------------------------- paths


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    """Return the path of the checkpoint for ``step``: ``run_dir/checkpoints/ckpt_{step:09d}.ckpt``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"ckpt_{step:09d}.ckpt"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Return the checkpoint files of ``run_dir`` sorted by step, oldest first (contents unchecked)."""
    ckpt_dir = Path(run_dir) / CHECKPOINT_DIR
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _NAME_RE.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """Return the checkpoint file with the highest step in ``run_dir``, or None if there is none.

    Only file names are inspected; use ``load_checkpoint(run_dir, ...)`` to skip invalid files.
    """
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


# ----------------------------------------------------------------------------- save


def _path_str(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/") or "<root>"


def _is_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _encode_leaf(name: str, x: Any) -> Any:
    if _is_key(x):
        return {_KEY_TAG: str(jax.random.key_impl(x)), "data": np.asarray(jax.random.key_data(x))}
    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        return np.asarray(x)
    if isinstance(x, (bool, int, float, str)):
        return x
    raise TypeError(f"cannot checkpoint state leaf {name!r} of type {type(x).__name__}")


def _encode_state(state: Any) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = _path_str(path)
        if name in flat:
            raise ValueError(f"two state leaves share the checkpoint key {name!r}")
        flat[name] = _encode_leaf(name, leaf)
    return flat


def _encode_extra(obj: Any, arrays: dict[str, np.ndarray], where: str = "extra") -> Any:
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{where}: dict keys must be str, got {bad[0]!r}")
        return {k: _encode_extra(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode_extra(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (np.ndarray, jax.Array)):
        ref = str(len(arrays))
        arrays[ref] = np.asarray(obj)
        return {_ARRAY_TAG: ref}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"{where}: cannot checkpoint a {type(obj).__name__}")


def save_checkpoint(
    run_dir: str | Path, step: int, state: Any, extra: dict | None = None, keep: int = 2
) -> Path:
    """Atomically write ``state`` and ``extra`` as the checkpoint for ``step``; return its path.

    ``state`` is any pytree of jax/numpy arrays, python scalars and typed or raw PRNG keys
    (params, optax states, flax struct dataclasses, NamedTuples, ...). ``extra`` is a
    JSON-able dict that may also contain numpy arrays anywhere (replay buffer contents,
    ``np.random.Generator.bit_generator.state``, ...); tuples come back as lists.
    After writing, only the newest ``keep`` checkpoints are kept (the one just written
    always survives). A crash at any point leaves the previous checkpoints intact.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    arrays: dict[str, np.ndarray] = {}
    body = {
        "step": int(step),
        "created": time.time(),
        "versions": {"jax": jax.__version__, "flax": flax.__version__},
        "state": _encode_state(state),
        "extra": json.dumps(_encode_extra(extra or {}, arrays)),
        "arrays": arrays,
    }
    payload = msgpack_serialize(body, in_place=True)
    header = {
        "format_version": FORMAT_VERSION,
        "payload_bytes": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    path = checkpoint_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(".ckpt_*.tmp"):  # left behind by a killed process
        stale.unlink(missing_ok=True)
    atomic_write_bytes(path, MAGIC, json.dumps(header).encode() + b"\n", payload)

    others = [p for p in list_checkpoints(run_dir) if p != path]
    for old in others[: max(0, len(others) - (keep - 1))]:
        old.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- load


def _read(path: Path) -> dict[str, Any]:
    """Read and verify one checkpoint file; return its decoded payload dict."""

    def fail(problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path}: {problem}")

    try:
        data = path.read_bytes()
    except OSError as e:
        raise fail(f"cannot read ({e.strerror or e})") from None
    if not data.startswith(MAGIC):
        raise fail("not a crl checkpoint (bad magic bytes)")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise fail("truncated header")
    try:
        header = json.loads(data[len(MAGIC) : end])
        version, size, digest = (
            header["format_version"], header["payload_bytes"], header["payload_sha256"]
        )
    except (ValueError, TypeError, KeyError):
        raise fail("corrupt header") from None
    if version != FORMAT_VERSION:
        raise fail(f"unsupported format version {version!r} (this code reads {FORMAT_VERSION})")
    payload = memoryview(data)[end + 1 :]
    if len(payload) != size:
        raise fail(f"truncated or padded: payload is {len(payload)} bytes, header says {size}")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise fail("sha256 checksum mismatch (file is corrupted)")
    try:
        body = msgpack_restore(payload)
    except Exception as e:  # checksum passed, so this is a writer bug or foreign file
        raise fail(f"cannot decode payload ({type(e).__name__}: {e})") from None
    if not isinstance(body, dict) or not {"step", "state", "extra", "arrays"} <= body.keys():
        raise fail("payload lacks step/state/extra/arrays")
    return body


def _restore_leaf(name: str, tmpl: Any, saved: Any) -> Any:
    """Return ``saved`` converted to the type of ``tmpl``; raise ValueError on mismatch."""
    sharding = getattr(tmpl, "sharding", None)
    if _is_key(tmpl):
        if not (isinstance(saved, dict) and _KEY_TAG in saved):
            raise ValueError(f"{name}: template has a PRNG key, file has {_describe(saved)}")
        try:
            key = jax.random.wrap_key_data(saved["data"], impl=saved[_KEY_TAG])
        except Exception as e:
            raise ValueError(f"{name}: invalid PRNG key data ({e})") from None
        if key.dtype != tmpl.dtype or key.shape != tuple(tmpl.shape):
            raise ValueError(
                f"{name}: PRNG key {key.dtype}{list(key.shape)} in file, "
                f"{tmpl.dtype}{list(tmpl.shape)} in template"
            )
        return jax.device_put(key, sharding)
    if hasattr(tmpl, "shape") and hasattr(tmpl, "dtype"):  # jax/np array, np scalar, ShapeDtypeStruct
        if not isinstance(saved, np.ndarray):
            raise ValueError(f"{name}: template has an array, file has {_describe(saved)}")
        if saved.shape != tuple(tmpl.shape) or saved.dtype != np.dtype(tmpl.dtype):
            raise ValueError(
                f"{name}: {saved.dtype}{list(saved.shape)} in file, "
                f"{np.dtype(tmpl.dtype)}{list(tmpl.shape)} in template"
            )
        if isinstance(tmpl, np.generic):
            return saved[()]
        if isinstance(tmpl, np.ndarray):
            return saved.copy()  # writable, detached from the file buffer
        return jax.device_put(saved, sharding)
    for kind in (bool, int, float, str):
        if isinstance(tmpl, kind):
            ok = isinstance(saved, kind) and (kind is bool or not isinstance(saved, bool))
            ok = ok or (kind is float and isinstance(saved, int) and not isinstance(saved, bool))
            if not ok:
                raise ValueError(f"{name}: template has a {kind.__name__}, file has {_describe(saved)}")
            return kind(saved)
    raise ValueError(f"{name}: unsupported template leaf type {type(tmpl).__name__}")


def _describe(x: Any) -> str:
    if isinstance(x, dict) and _KEY_TAG in x:
        return "a PRNG key"
    if isinstance(x, np.ndarray):
        return f"an array {x.dtype}{list(x.shape)}"
    return f"a {type(x).__name__}"


def _decode_extra(body: dict[str, Any]) -> dict:
    arrays = body["arrays"]

    def hook(d: dict) -> Any:
        return arrays[d[_ARRAY_TAG]].copy() if d.keys() == {_ARRAY_TAG} else d

    return json.loads(body["extra"], object_hook=hook)


def _restore(path: Path, body: dict[str, Any], template: Any) -> tuple[int, Any, dict]:
    saved = body["state"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [_path_str(p) for p, _ in leaves]
    missing = [n for n in names if n not in saved]
    unexpected = sorted(set(saved) - set(names))
    try:
        if missing or unexpected:
            parts = [f"missing in file: {missing[:3]}"] if missing else []
            parts += [f"not in template: {unexpected[:3]}"] if unexpected else []
            raise ValueError(f"state structure differs from template ({'; '.join(parts)})")
        restored = [_restore_leaf(n, leaf, saved[n]) for n, (_, leaf) in zip(names, leaves)]
        extra = _decode_extra(body)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path}: {e}") from None
    return int(body["step"]), jax.tree_util.tree_unflatten(treedef, restored), extra


def load_checkpoint(path_or_run_dir: str | Path, template: Any) -> tuple[int, Any, dict]:
    """Load a checkpoint into the structure of ``template``; return ``(step, state, extra)``.

    ``path_or_run_dir`` is a checkpoint file, or a run directory, in which case the newest
    *valid* checkpoint is loaded (if newer corrupt ones are skipped, a ``UserWarning`` says so).
    ``state`` has ``template``'s pytree structure; each leaf has the template leaf's
    shape/dtype and kind: jax arrays (placed with the template's sharding), numpy arrays
    (writable copies), python scalars, typed PRNG keys. ``template`` leaves may also be
    ``jax.ShapeDtypeStruct`` (e.g. from ``jax.eval_shape``). ``extra`` is the dict given to
    ``save_checkpoint`` with numpy arrays restored. Files are never modified.

    Raises ``CheckpointError`` naming the file and problem if a file is corrupt, truncated,
    or doesn't match ``template``, or if the run directory holds no valid checkpoint.
    """
    path = Path(path_or_run_dir)
    if not path.is_dir():
        if not path.exists():
            raise CheckpointError(f"checkpoint {path}: no such file")
        return _restore(path, _read(path), template)
    candidates = list_checkpoints(path)[::-1]
    if not candidates:
        raise CheckpointError(f"no checkpoints in {path / CHECKPOINT_DIR}")
    errors = []
    for ckpt in candidates:
        try:
            body = _read(ckpt)
        except CheckpointError as e:  # corrupt file: fall back to an older one
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(
                f"loading {ckpt}, skipped newer invalid checkpoint(s): {'; '.join(errors)}", stacklevel=2
            )
        # A template mismatch is a config problem, not corruption: don't hide it by falling back.
        return _restore(ckpt, body, template)
    raise CheckpointError(f"no valid checkpoint in {path / CHECKPOINT_DIR}; newest: {errors[0]}")
