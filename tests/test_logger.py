import csv
import socket
import struct
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from tensorboardX.proto import event_pb2

from crl.train.logger import RunLogger, WandbSettings


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def read_scalars(run_dir):
    """{(tag, step): value} from all TensorBoard event files in run_dir (TFRecord framing)."""
    out = {}
    for path in run_dir.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # u64 length, u32 length crc, payload, u32 payload crc
            for v in event.summary.value:
                out[(v.tag, event.step)] = v.simple_value
    return out


def test_eval_csv_append_and_resume(tmp_path):
    with RunLogger(tmp_path, use_tensorboard=False) as log:
        log.log_eval({"step": 1, "success": 0.5, "return": np.float32(2.5)})
        log.log_eval({"return": jnp.array(3.0), "step": 2})  # other order, missing key
        assert read_csv(tmp_path / "eval.csv")[-1] == ["2", "", "3.0"]  # flushed per row
        with pytest.warns(UserWarning, match="dropping keys not in the header: \\['new'\\]"):
            log.log_eval({"step": 3, "success": 1.0, "return": 4.0, "new": 1})
    assert read_csv(tmp_path / "eval.csv") == [
        ["step", "success", "return"],
        ["1", "0.5", "2.5"],
        ["2", "", "3.0"],
        ["3", "1.0", "4.0"],
    ]

    with open(tmp_path / "eval.csv", "a") as f:
        f.write("4,0.")  # row cut short by a crash
    with RunLogger(tmp_path, use_tensorboard=False, resume=True) as log:
        log.log_eval({"success": 0.75, "step": 4, "return": 5.0})
    rows = read_csv(tmp_path / "eval.csv")
    assert rows[0] == ["step", "success", "return"] and len(rows) == 5
    assert rows[-1] == ["4", "0.75", "5.0"]

    with RunLogger(tmp_path, use_tensorboard=False) as log:  # fresh run: start over
        log.log_eval({"step": 1, "x": 1})
    assert read_csv(tmp_path / "eval.csv") == [["step", "x"], ["1", "1"]]
    with pytest.raises(RuntimeError, match="closed"):
        log.log_eval({"step": 2})


def test_tensorboard_scalars(tmp_path):
    log = RunLogger(tmp_path)
    log.log_scalars(10, {"loss": 0.5, "acc": jnp.array(0.25), "name": "skip"}, prefix="train")
    log.log_scalars(20, {"loss": np.float64(0.125)}, prefix="train")
    log.log_scalars(20, {"success": 1.0}, prefix="")
    log.close()
    log.close()
    assert read_scalars(tmp_path) == {
        ("train/loss", 10): 0.5,
        ("train/acc", 10): 0.25,
        ("train/loss", 20): 0.125,
        ("success", 20): 1.0,
    }


@pytest.fixture
def offline_wandb(monkeypatch):
    pytest.importorskip("wandb")
    for name, value in {
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # any attempted upload fails locally
    }.items():
        monkeypatch.setenv(name, value)
    connect = socket.socket.connect

    def local_only(sock, address):  # the client may only talk to its local wandb-core service
        if sock.family != socket.AF_UNIX and address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"network access attempted: {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)


def test_wandb_offline(tmp_path, offline_wandb):
    settings = WandbSettings(project="crl-test", mode="offline", name="unit")
    log = RunLogger(tmp_path, use_tensorboard=False, wandb=settings, config={"lr": 3e-4, "env": "point"})
    assert dict(log._wandb.config) == {"lr": 3e-4, "env": "point"}
    run_id = log._wandb.id
    log.log_scalars(5, {"loss": 1.0}, prefix="train")
    log.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and (runs[0] / f"run-{run_id}.wandb").stat().st_size > 0

    log = RunLogger(tmp_path, use_tensorboard=False, wandb=settings, resume=True)
    assert log._wandb.id == run_id  # resumed runs continue the same W&B run
    log.close()


def test_wandb_missing_or_disabled(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` fail
    with pytest.raises(ImportError, match=r"pip install 'contrastive-rl\[wandb\]'"):
        RunLogger(tmp_path, use_tensorboard=False, wandb=WandbSettings(project="p", mode="offline"))
    RunLogger(tmp_path, use_tensorboard=False, wandb=WandbSettings(project="p", mode="disabled")).close()
    with pytest.raises(ValueError, match="mode"):
        WandbSettings(project="p", mode="sometimes")
