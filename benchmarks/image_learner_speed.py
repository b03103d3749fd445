"""Image CRL learner speed: updates/s of ``Learner.train_call`` with the paper's image config on 64x64x3 uint8 images.

Fills a uint8 ``EpisodeRing`` with random-pixel episodes (the speed does not depend on the pixels), compiles the
jitted K-update call (sampling inside the jit, exactly what ``crl train --env point_U_image`` runs) and times it,
compilation excluded; the median of ``--repeats`` timed calls. Prints one JSON line with one entry per batch size.

    .venv/bin/python benchmarks/image_learner_speed.py                 # batch 256 (the paper) and batch 32
    .venv/bin/python benchmarks/image_learner_speed.py --batch-sizes 256 --updates 16 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace

os.environ.setdefault("OMP_NUM_THREADS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from crl.data.store import EpisodeRing  # noqa: E402
from crl.train.online import Learner  # noqa: E402
from crl.train.presets import preset_config  # noqa: E402
from crl.types import EnvSpec  # noqa: E402

IMAGE_SHAPE = (64, 64, 3)
HORIZON = 50  # the point-maze image envs' episode length


def filled_store(episodes: int, act_dim: int, seed: int = 0) -> EpisodeRing:
    """A uint8 ring holding ``episodes`` episodes of random 64x64x3 images and random actions."""
    pixels = int(np.prod(IMAGE_SHAPE))
    store = EpisodeRing(episodes * HORIZON, HORIZON, pixels, act_dim, np.uint8)
    rng = np.random.default_rng(seed)
    for start in range(0, episodes, 32):  # in chunks: a few hundred MB at most on the host at once
        n = min(32, episodes - start)
        obs = rng.integers(0, 256, (n, HORIZON + 1, pixels), dtype=np.uint8)
        store.add(obs, rng.uniform(-1, 1, (n, HORIZON, act_dim)).astype(np.float32))
    return store


def time_batch(batch_size: int, updates: int, repeats: int, act_dim: int, store: EpisodeRing) -> dict:
    """Compile and time the image learner at ``batch_size``; returns its figures."""
    cfg = preset_config("point_U_image", updates_per_call=updates)
    cfg = replace(cfg, crl=replace(cfg.crl, batch_size=batch_size))
    pixels = int(np.prod(IMAGE_SHAPE))
    spec = EnvSpec(pixels, pixels, act_dim, image_shape=IMAGE_SHAPE)
    learner = Learner(cfg, spec)
    key = jax.random.key(0)
    state = learner.init(key)
    t0 = time.perf_counter()
    compiled = learner.compile_train_call(state, store.traj, key)
    compile_s = time.perf_counter() - t0
    state, metrics = compiled(state, store.traj, key)  # warm-up
    jax.block_until_ready(state)
    rates = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state, metrics = compiled(state, store.traj, jax.random.fold_in(key, r))
        jax.block_until_ready((state, metrics))
        rates.append(updates / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    return {
        "batch_size": batch_size,
        "updates_per_call": updates,
        "updates_per_s": round(rate, 4),
        "updates_per_s_all": [round(x, 4) for x in rates],
        # images through a CNN per update: the critic's on B states and B goals, the actor's on 2B stacks
        "cnn_images_per_s": round(rate * 4 * batch_size, 1),
        "compile_s": round(compile_s, 1),
        "critic_loss": float(metrics["critic_loss"]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 32])
    p.add_argument("--updates", type=int, default=4, help="updates per jitted call (the image preset uses 16)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--act-dim", type=int, default=2)
    args = p.parse_args()

    store = filled_store(max(max(args.batch_sizes), 64) + 8, args.act_dim)  # enough episodes for distinct rows
    results = [time_batch(b, args.updates, args.repeats, args.act_dim, store) for b in args.batch_sizes]
    print(json.dumps({
        "benchmark": "image_learner_speed", "preset": "paper-image", "image_shape": list(IMAGE_SHAPE),
        "results": results, "backend": jax.default_backend(), "device": str(jax.devices()[0]),
        "loadavg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "jax_version": jax.__version__,
    }))


if __name__ == "__main__":
    main()
