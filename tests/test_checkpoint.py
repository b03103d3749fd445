import os
from typing import NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from crl.train.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from crl.train.io import read_json, write_json_atomic


class MLP(nn.Module):
    hidden: int = 32

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(1)(x)


class Counters(NamedTuple):
    updates: jax.Array
    best: float


@flax.struct.dataclass
class AgentState:
    params: dict
    opt_state: optax.OptState
    key: jax.Array  # typed key
    legacy_key: jax.Array  # raw uint32 PRNGKey
    counters: Counters
    host: np.ndarray
    epoch: int


def make_state(seed: int, hidden: int = 32, steps: int = 1) -> AgentState:
    model, tx = MLP(hidden), optax.adam(1e-3)
    x = jnp.ones((4, 3))
    params = model.init(jax.random.key(seed), x)
    opt_state = tx.init(params)
    for _ in range(steps):
        grads = jax.grad(lambda p: jnp.mean(model.apply(p, x) ** 2))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
    return AgentState(
        params=params,
        opt_state=opt_state,
        key=jax.random.split(jax.random.key(seed + 1), 3),
        legacy_key=jax.random.PRNGKey(seed + 2),
        counters=Counters(updates=jnp.array(steps, jnp.int32), best=0.25 * seed),
        host=np.arange(6, dtype=np.float64).reshape(2, 3) + seed,
        epoch=seed,
    )


def make_extra(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    rng.random(10)
    return {
        "env_steps": 1234,
        "np_rng": rng.bit_generator.state,
        "buffer": {"obs": rng.normal(size=(50, 3)).astype(np.float32), "ptr": 7},
        "history": [0.5, None, "text"],
    }


def assert_leaves_equal(a, b):
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y) or (isinstance(x, jax.Array) and isinstance(y, jax.Array))
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert x.dtype == y.dtype
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        if hasattr(x, "dtype"):
            assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_round_trip(tmp_path):
    state, extra = make_state(0), make_extra(0)
    path = save_checkpoint(tmp_path, 100, state, extra)
    assert path == tmp_path / "checkpoints" / "ckpt_000000100.ckpt"
    template = make_state(7)  # same structure, different values

    for source in (path, tmp_path):
        step, restored, extra2 = load_checkpoint(source, template)
        assert step == 100
        assert_leaves_equal(state, restored)
        assert isinstance(restored.host, np.ndarray) and restored.host.flags.writeable
        assert isinstance(restored.epoch, int) and isinstance(restored.counters.best, float)
        # keys keep working after the round trip
        np.testing.assert_array_equal(
            jax.random.key_data(jax.random.split(restored.key[0])),
            jax.random.key_data(jax.random.split(state.key[0])),
        )
        buf = extra2["buffer"]["obs"]
        np.testing.assert_array_equal(buf, extra["buffer"]["obs"])
        assert buf.dtype == np.float32 and buf.flags.writeable
        assert extra2["buffer"]["ptr"] == 7 and extra2["history"] == [0.5, None, "text"]
        rng_a, rng_b = np.random.default_rng(), np.random.default_rng(0)
        rng_a.bit_generator.state = extra2["np_rng"]
        rng_b.random(10)
        np.testing.assert_array_equal(rng_a.random(5), rng_b.random(5))


def test_abstract_template(tmp_path):
    state = make_state(0)
    save_checkpoint(tmp_path, 1, state)
    template = jax.eval_shape(lambda: make_state(0))
    template = template.replace(host=state.host, epoch=0, counters=Counters(template.counters.updates, 0.0))
    _, restored, extra = load_checkpoint(tmp_path, template)
    assert_leaves_equal(state, restored)
    assert extra == {}


def test_keep_rotation(tmp_path):
    state = {"w": jnp.zeros(3)}
    for step in (10, 20, 30, 40):
        save_checkpoint(tmp_path, step, {"w": jnp.full(3, float(step))}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_000000030.ckpt", "ckpt_000000040.ckpt"]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 40)
    # saving an older step (resumed from an older checkpoint) never deletes the new file
    save_checkpoint(tmp_path, 35, {"w": jnp.zeros(3)}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_000000035.ckpt", "ckpt_000000040.ckpt"]
    assert load_checkpoint(tmp_path, state)[0] == 40
    assert latest_checkpoint(tmp_path / "nope") is None


def test_crash_during_save_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": jnp.ones(4)})
    before = sorted(os.listdir(tmp_path / "checkpoints"))

    def crash(*args):
        raise OSError("simulated crash")

    with monkeypatch.context() as m:
        m.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="simulated crash"):
            save_checkpoint(tmp_path, 2, {"w": jnp.zeros(4)}, keep=1)
    assert sorted(os.listdir(tmp_path / "checkpoints")) == before
    step, state, _ = load_checkpoint(tmp_path, {"w": jnp.zeros(4)})
    assert step == 1 and float(state["w"].sum()) == 4.0

    # a hard kill leaves a partial temp file: it is never taken for a checkpoint
    partial = tmp_path / "checkpoints" / ".ckpt_000000002.ckpt.x1y2.tmp"
    partial.write_bytes(b"CRLCKPT\n{")
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 1)
    assert load_checkpoint(tmp_path, {"w": jnp.zeros(4)})[0] == 1
    save_checkpoint(tmp_path, 3, {"w": jnp.zeros(4)})
    assert not partial.exists()


def _truncate(p):
    p.write_bytes(p.read_bytes()[:-20])


def _flip_payload(p):
    data = bytearray(p.read_bytes())
    data[-100] ^= 0xFF
    p.write_bytes(bytes(data))


def _flip_header(p):
    data = bytearray(p.read_bytes())
    data[12] ^= 0x01
    p.write_bytes(bytes(data))


def _garbage(p):
    p.write_bytes(b"")


@pytest.mark.parametrize("corrupt", [_truncate, _flip_payload, _flip_header, _garbage])
def test_corrupt_file(tmp_path, corrupt):
    template = {"w": jnp.zeros(64), "k": jax.random.key(0)}
    save_checkpoint(tmp_path, 1, {"w": jnp.ones(64), "k": jax.random.key(1)})
    bad = save_checkpoint(tmp_path, 2, {"w": jnp.full(64, 2.0), "k": jax.random.key(2)})
    corrupt(bad)
    snapshot = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()}

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad, template)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)

    fallback = "loading .*ckpt_000000001.ckpt, skipped newer invalid .*ckpt_000000002"
    with pytest.warns(UserWarning, match=fallback):
        step, state, _ = load_checkpoint(tmp_path, template)
    assert step == 1 and float(state["w"][0]) == 1.0
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir()} == snapshot


def test_no_valid_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoints"):
        load_checkpoint(tmp_path, {})
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.ckpt", {})
    path = save_checkpoint(tmp_path, 5, {"w": jnp.ones(2)})
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no valid checkpoint .*bad magic"):
        load_checkpoint(tmp_path, {"w": jnp.ones(2)})


def test_template_mismatch(tmp_path):
    save_checkpoint(tmp_path, 1, make_state(0, hidden=32))
    save_checkpoint(tmp_path, 2, make_state(0, hidden=32), keep=2)
    expected = r"params/params/Dense_0/bias: float32\[32\] in file, float32\[16\] in template"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(tmp_path, jax.eval_shape(lambda: make_state(0, hidden=16)))  # no fallback to step 1

    state = {"w": jnp.ones(3, jnp.float32), "k": jax.random.key(0)}
    path = save_checkpoint(tmp_path / "b", 1, state)
    cases = {
        "float16": {"w": jnp.ones(3, jnp.float16), "k": jax.random.key(0)},
        "not in template": {"w": jnp.ones(3)},
        "missing in file": {**state, "extra_leaf": jnp.ones(1)},
        "key<rbg>": {"w": jnp.ones(3), "k": jax.random.key(0, impl="rbg")},
        "template has an array, file has a PRNG key": {"w": jnp.ones(3), "k": jax.random.PRNGKey(0)},
    }
    for expected, template in cases.items():
        with pytest.raises(CheckpointError, match=expected) as err:
            load_checkpoint(path, template)
        assert str(path) in str(err.value)


def test_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="cannot checkpoint state leaf 'f'"):
        save_checkpoint(tmp_path, 1, {"f": object()})
    with pytest.raises(TypeError, match=r"extra\['x'\]"):
        save_checkpoint(tmp_path, 1, {}, extra={"x": {1, 2}})
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path, 1, {}, keep=0)
    assert latest_checkpoint(tmp_path) is None


def test_write_json_atomic(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "config.json"
    write_json_atomic(path, {"a": 1, "b": [1.5, None]})
    assert read_json(path) == {"a": 1, "b": [1.5, None]}
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        write_json_atomic(path, {"a": 2})
    assert read_json(path)["a"] == 1 and os.listdir(path.parent) == ["config.json"]
