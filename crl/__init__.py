"""contrastive-rl: Contrastive RL (Eysenbach et al., 2022) and goal-conditioned baselines in JAX.

Quick use::

    import crl
    cfg = crl.TrainConfig(env="point_U", steps=50_000, run_dir="runs/u")
    summary = crl.train(cfg)
    run = crl.load_run("runs/u")
    action = run.policy(obs, goal)

Offline on an OGBench dataset, with OGBench's per-dataset recipe::

    cfg = crl.preset_config("pointmaze-medium-navigate-v0", agent="crl", steps=100_000, run_dir="runs/pm")
    summary = crl.train(cfg)   # summary["success"]: mean over OGBench's 5 evaluation tasks
"""

from crl.agents.crl import CRLConfig
from crl.agents.gcbc import GCBCConfig
from crl.agents.td3 import TD3Config
from crl.envs import ENV_NAMES, make_gym_env, make_vec_env
from crl.train.online import TrainConfig, train
from crl.train.presets import PRESET_NAMES, preset_config
from crl.train.run import Run, load_run

__all__ = [
    "CRLConfig",
    "GCBCConfig",
    "TD3Config",
    "TrainConfig",
    "train",
    "preset_config",
    "PRESET_NAMES",
    "load_run",
    "Run",
    "ENV_NAMES",
    "make_vec_env",
    "make_gym_env",
]
__version__ = "0.1.0"
