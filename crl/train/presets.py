"""Starting configurations: the paper's online recipe, OGBench's offline recipe with its per-dataset flags, and the
paper's offline recipe.

``preset_config(env, agent)`` is what ``crl train`` starts from before applying flags; with ``preset='auto'`` an
OGBench dataset gets OGBench's recipe and the flags OGBench's README lists for that dataset, anything else the
agent's defaults (the CRL paper's online config), and an image env (name ending in ``_image``) the paper's image
config.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from crl.agents.crl import PRESETS as CRL_PRESETS
from crl.agents.gcbc import GCBCConfig
from crl.data.ogbench_data import is_ogbench_dataset
from crl.train.online import TrainConfig

PRESET_NAMES = ("auto", "none", "paper-online", "paper-image", "ogbench", "paper-offline")

# OGBench impls/agents/gcbc.py: 3x512 GELU actor without LayerNorm, constant-std Gaussian, batch 1024, Adam 3e-4.
OGBENCH_GCBC = GCBCConfig(
    batch_size=1024, policy="gaussian", actor_hidden_sizes=(512, 512, 512), actor_activation="gelu", adam_eps=1e-8
)


def ogbench_flags(name: str) -> dict[str, Any]:
    """OGBench's per-dataset settings for CRL and GCBC (the OGBench paper's hyperparameter table).

    Returns ``bc_coef`` (CRL's alpha), ``discount``, and the actor goal mix ``actor_random_goals`` (the rest are
    uniform future states of the same trajectory).
    """
    family = name.removeprefix("visual-").split("-")[0]
    kind = name.split("-")[-2]
    giant = "-giant-" in name
    humanoid = family == "humanoidmaze"
    discount = 0.995 if giant or humanoid else 0.99
    random_goals = {"stitch": 0.5, "explore": 1.0}.get(kind, 0.0)
    if family == "pointmaze":
        alpha = 0.03
    elif family in ("antmaze", "humanoidmaze"):
        alpha = 0.003 if kind == "explore" else 0.1
    elif family == "antsoccer":
        alpha = 0.3
    elif family in ("cube", "scene", "puzzle"):
        alpha = 3.0 if kind == "play" else 0.1
    else:
        alpha = 0.1
    return {"bc_coef": alpha, "discount": discount, "actor_random_goals": random_goals}


def ogbench_eval_envs(name: str) -> int:
    """Evaluation env copies for an OGBench dataset: all 5 x 50 episodes at once for the state-based mazes (a copy
    takes 2-3 MB, and a larger batch makes the policy cheaper per step), 20 elsewhere (OGBench compiles a
    manipulation env's 66 MB model for every copy: ~170 MB and ~1.3 s each; at ~1 ms per step the physics bounds
    the evaluation, and 20 copies evaluate cube-single as fast as 50)."""
    return 250 if name.split("-")[0] in ("pointmaze", "antmaze", "humanoidmaze") else 20


def preset_config(env: str, agent: str = "crl", preset: str = "auto", **overrides) -> TrainConfig:
    """The config ``crl train --env ENV --agent AGENT --preset PRESET`` starts from, with ``overrides`` applied.

    Presets: ``auto`` (``ogbench`` for an OGBench dataset, ``paper-image`` for an env whose name ends in ``_image``,
    else ``paper-online``); ``none`` (plain defaults); ``paper-online`` (the CRL paper's state-based online config);
    ``paper-image`` (the paper's image-based online config: adaptive entropy with target 0 nats, 10 parallel envs,
    16 updates per jitted call, a 100k-transition replay); ``ogbench`` (OGBench's CRL or GCBC recipe, plus
    per-dataset flags on an OGBench dataset); ``paper-offline`` (the CRL paper's offline AntMaze recipe: BC mix
    0.05, twin-min critics, batch 1024, repr 16, 2x1024). On an OGBench dataset every preset trains offline with
    OGBench's sampler and evaluation protocol (1M updates, evaluation every 100k on 5 tasks x 50 episodes).
    """
    if preset not in PRESET_NAMES:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESET_NAMES}")
    offline = is_ogbench_dataset(env)
    cfg = TrainConfig(env=env, agent=agent)
    if preset == "none":
        return replace(cfg, **overrides)
    if preset == "auto":
        preset = "ogbench" if offline else "paper-image" if env.endswith("_image") else "paper-online"
    if offline:
        cfg = replace(cfg, steps=1_000_000, eval_every=100_000, eval_episodes=50, goal_sampling="ogbench",
                      eval_envs=ogbench_eval_envs(env))
    flags = ogbench_flags(env) if offline else {}
    if preset == "ogbench":
        sampler = {"actor_goals": "uniform", "actor_random_goals": flags.get("actor_random_goals", 0.0)}
        crl = replace(CRL_PRESETS["ogbench-crl"], **{k: flags[k] for k in ("bc_coef", "discount") if k in flags})
        gcbc = replace(OGBENCH_GCBC, **{k: flags[k] for k in ("discount",) if k in flags})
        cfg = replace(cfg, crl=crl, gcbc=gcbc, **sampler)
    elif preset == "paper-image":
        # 100k image transitions take 1.2 GB as uint8 (the paper's 1M would take 12.3 GB, and as much again in every
        # checkpoint), so the replay is smaller than the paper's.
        cfg = replace(cfg, crl=CRL_PRESETS["paper-image"], num_envs=10, updates_per_call=16, buffer_size=100_000)
    elif preset == "paper-offline":
        cfg = replace(cfg, crl=CRL_PRESETS["paper-offline"])
    return replace(cfg, **overrides)


__all__ = ["PRESET_NAMES", "OGBENCH_GCBC", "ogbench_eval_envs", "ogbench_flags", "preset_config"]
