"""Contrastive RL (Eysenbach et al., NeurIPS 2022) and its variants, in one file.

Critic f(s, a, g) = energy(phi(s, a), psi(g)); trained with a contrastive loss whose positives are future states
of the same trajectory and whose negatives are the other rows' goals (or with the C-learning TD loss). The actor
maximises f(s, pi(s, g), g): SAC-style with an entropy term (the paper), or DDPG+BC with Q normalised by its mean
absolute value (OGBench); or, with OGBench's AWR option, weights behaviour cloning by exp(alpha * (Q - V)) with an
extra contrastive value V(s, g) = energy(phi_v(s), psi_v(g)).

Image observations (``spec.image_shape`` set; states and goals are flattened uint8 images): one Atari CNN, shared by
the critic's state and goal encoders and by its twins, turns each image into features that replace the pixels as
the inputs of phi([features(s), a]) and psi(features(g)); the actor has its own CNN on the state and goal images
stacked along the channels. Each image of a batch goes through the critic's CNN once per update: the actor loss
reuses the critic loss's features, and no gradient of the actor loss reaches the critic's CNN (the paper's setup).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax

from crl import losses
from crl.agents import common
from crl.nets import ACTIVATIONS, INITS, AtariCNN, Encoders, ImageActor, cnn_out_dim, ensemble, validate_mlp
from crl.types import Batch, EnvSpec

TD_LOSSES = ("c_learning", "nce_c_learning")
LOSSES = losses.CONTRASTIVE_LOSSES + TD_LOSSES
ACTOR_LOSSES = ("sac", "ddpgbc", "awr")


@dataclass(frozen=True)
class CRLConfig:
    """Contrastive RL hyperparameters (defaults: the paper's online state-based config, binary NCE)."""

    batch_size: int = 256
    """Minibatch size B: each row has one positive and B-1 in-batch negatives."""
    discount: float = 0.99
    """gamma: the geometric law of the goal offset, and the TD discount of the C-learning losses."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of each critic encoder (phi and psi)."""
    repr_dim: int = 64
    """Width of the representations phi(s, a) and psi(g)."""
    activation: str = "relu"
    """Critic activation: relu, gelu, swish, tanh or elu."""
    layer_norm: bool = False
    """LayerNorm after every hidden layer of the critic encoders."""
    residual_depth: int = 0
    """Group the critic's hidden layers after the first into residual blocks of this many layers (0 = none)."""
    init: str = "fan_avg"
    """Critic weight init: fan_avg (Glorot uniform, the paper) or fan_in (LeCun uniform)."""
    energy: str = "dot"
    """Critic energy: dot, scaled_dot (dot/sqrt(d)), l2 (-||phi-psi||), l2sq, cosine (learned temperature)."""
    loss: str = "binary_nce"
    """Critic loss: binary_nce, balanced_nce (positive and negatives weighted 1 : 1 per row), infonce_forward,
    infonce_backward, infonce_symmetric, cpc, c_learning, nce_c_learning."""
    lse_coef: float = 0.0
    """Coefficient of the logsumexp^2 penalty added to a contrastive loss."""
    twin_critics: bool = False
    """Two independent (phi, psi) pairs; needed by the C-learning losses."""
    twin_reduce: Literal["min", "mean"] = "min"
    """How the actor (and the C-learning target) reduces twin critics."""
    tau: float = 0.005
    """Polyak rate of the target critic (C-learning losses only)."""
    critic_lr: float = 3e-4
    """Critic Adam learning rate."""
    policy: Literal["tanh_gaussian", "gaussian"] = "tanh_gaussian"
    """Actor distribution: tanh_gaussian (paper) or gaussian with constant std 1 (OGBench)."""
    actor_loss: Literal["sac", "ddpgbc", "awr"] = "sac"
    """sac: alpha*log pi - Q (paper); ddpgbc: -Q/mean|Q| - bc_coef*log pi(a_data) (OGBench); awr: -w*log pi(a_data)
    with w = min(exp(bc_coef*(Q - V)), awr_max_weight) and a value V(s, g) trained with the critic's loss (OGBench)."""
    awr_max_weight: float = 100.0
    """awr: ceiling of the advantage weight."""
    actor_hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden widths of the actor."""
    actor_activation: str = "relu"
    """Actor activation."""
    actor_layer_norm: bool = False
    """LayerNorm in the actor's hidden layers."""
    actor_residual_depth: int = 0
    """Residual blocks in the actor (as residual_depth)."""
    random_goals: float = 0.5
    """Actor goal mix: 0 = the row's own future goal, 0.5 = both own and another row's, 1 = another row's."""
    bc_coef: float = 0.0
    """sac: weight of behaviour cloning mixed in, (1-c)*actor + c*BC, in [0, 1]; ddpgbc: the BC coefficient alpha;
    awr: the advantage temperature alpha."""
    entropy_coef: float = 0.0
    """Fixed entropy coefficient alpha (the paper's state tasks use 0); ignored when adaptive_entropy is set."""
    adaptive_entropy: bool = False
    """Learn alpha to reach target_entropy (the paper's image tasks)."""
    target_entropy: float = 0.0
    """Target policy entropy in nats for adaptive alpha."""
    log_std_min: float = -5.0
    """Floor of the tanh-Gaussian log-std (keeps the policy from collapsing to std 1e-6)."""
    log_std_max: float = 2.0
    """Ceiling of the tanh-Gaussian log-std."""
    mean_reg: float = 0.0
    """sac: penalty coef on the squared pre-tanh mean (SAC's mean regulariser); keeps tanh from saturating."""
    actor_lr: float = 3e-4
    """Actor Adam learning rate."""
    alpha_lr: float = 3e-4
    """Learning rate of log alpha (adaptive entropy)."""
    adam_eps: float = 1e-7
    """Adam epsilon for actor and critic (the paper uses 1e-7)."""

    def validate(self) -> None:
        """Raises ValueError naming the first impossible field."""
        checks = [
            (self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}"),
            (0.0 < self.discount < 1.0, f"discount must be in (0, 1), got {self.discount}"),
            (self.repr_dim > 0, f"repr_dim must be > 0, got {self.repr_dim}"),
            (self.activation in ACTIVATIONS, f"activation must be one of {tuple(ACTIVATIONS)}"),
            (self.actor_activation in ACTIVATIONS, f"actor_activation must be one of {tuple(ACTIVATIONS)}"),
            (self.init in INITS, f"init must be one of {INITS}"),
            (self.energy in losses.ENERGIES, f"energy must be one of {losses.ENERGIES}, got {self.energy!r}"),
            (self.loss in LOSSES, f"loss must be one of {LOSSES}, got {self.loss!r}"),
            (self.loss not in TD_LOSSES or self.twin_critics, f"loss {self.loss} needs twin_critics=True"),
            (self.twin_reduce in ("min", "mean"), "twin_reduce must be min or mean"),
            (self.random_goals in (0.0, 0.5, 1.0), f"random_goals must be 0, 0.5 or 1, got {self.random_goals}"),
            (self.policy in common.POLICIES, f"policy must be one of {common.POLICIES}"),
            (self.actor_loss in ACTOR_LOSSES, f"actor_loss must be one of {ACTOR_LOSSES}, got {self.actor_loss!r}"),
            (self.actor_loss != "awr" or self.loss not in TD_LOSSES, "actor_loss=awr needs a contrastive loss"),
            (self.awr_max_weight > 0.0, "awr_max_weight must be > 0"),
            (self.actor_loss != "sac" or 0.0 <= self.bc_coef <= 1.0, "bc_coef must be in [0, 1] with actor_loss=sac"),
            (self.bc_coef >= 0.0, "bc_coef must be >= 0"),
            (self.entropy_coef >= 0.0, "entropy_coef must be >= 0"),
            (self.mean_reg >= 0.0, "mean_reg must be >= 0"),
            (self.log_std_min < self.log_std_max, "log_std_min must be below log_std_max"),
            (0.0 < self.tau <= 1.0, "tau must be in (0, 1]"),
            (min(self.critic_lr, self.actor_lr, self.alpha_lr) > 0, "learning rates must be > 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ValueError(msg)
        validate_mlp(self.hidden_sizes, self.residual_depth, "hidden_sizes")
        validate_mlp(self.actor_hidden_sizes, self.actor_residual_depth, "actor_hidden_sizes")


PRESETS: dict[str, CRLConfig] = {
    # The paper's online state-based tasks (google-research contrastive_rl, master).
    "paper-online": CRLConfig(),
    # OGBench impls/agents/crl.py defaults (per-dataset flags are applied on top).
    "ogbench-crl": CRLConfig(
        batch_size=1024,
        hidden_sizes=(512, 512, 512),
        repr_dim=512,
        activation="gelu",
        layer_norm=True,
        energy="scaled_dot",
        twin_critics=True,
        policy="gaussian",
        actor_loss="ddpgbc",
        actor_hidden_sizes=(512, 512, 512),
        actor_activation="gelu",
        random_goals=0.0,
        bc_coef=0.1,
        adam_eps=1e-8,
    ),
    # The paper's image-based online tasks: the state config plus an entropy term, adaptive alpha with target 0 nats.
    "paper-image": CRLConfig(adaptive_entropy=True, target_entropy=0.0),
    # The paper's offline AntMaze recipe (master): BC mixing 0.05, twin-min critics, batch 1024, repr 16.
    "paper-offline": CRLConfig(
        batch_size=1024,
        hidden_sizes=(1024, 1024),
        repr_dim=16,
        twin_critics=True,
        actor_hidden_sizes=(1024, 1024),
        random_goals=0.0,
        bc_coef=0.05,
    ),
}


@struct.dataclass
class CRLState:
    """Everything the update changes (a pytree)."""

    step: jax.Array
    critic: Any  # {'enc': ensemble params, ['cnn': image encoder], ['log_temp': scalar], ['value': V (awr)]}
    actor: Any
    target_critic: Any  # None unless a C-learning loss is used
    log_alpha: jax.Array
    critic_opt: Any
    actor_opt: Any
    alpha_opt: Any


def num_critics(cfg: CRLConfig) -> int:
    return 2 if cfg.twin_critics else 1


def make_critic(cfg: CRLConfig):
    """The critic module: an ensemble of (phi, psi) encoders with outputs ``[E, ..., repr_dim]``."""
    enc = ensemble(Encoders, num_critics(cfg))
    return enc(cfg.hidden_sizes, cfg.repr_dim, cfg.activation, cfg.layer_norm, cfg.residual_depth, cfg.init)


def make_cnn(spec: EnvSpec) -> AtariCNN:
    """The critic's image encoder: flattened images ``[..., H*W*C]`` -> features ``[..., cnn_out_dim]``."""
    return AtariCNN(tuple(spec.image_shape))


def _check_image_spec(spec: EnvSpec) -> None:
    if spec.image_shape is None:
        return
    pixels = math.prod(spec.image_shape)
    if not (spec.obs_dim == spec.goal_dim == pixels and spec.goal_start == 0):
        raise ValueError(
            f"image envs need obs_dim == goal_dim == H*W*C = {pixels} and goal = the whole observation, got "
            f"obs_dim={spec.obs_dim}, goal_dim={spec.goal_dim}, goal_start={spec.goal_start}"
        )


def _features(spec: EnvSpec, critic_params, x: jax.Array) -> jax.Array:
    """What the critic's MLP encoders see of observations or goals ``x``: the CNN features of images, else ``x``."""
    if spec.image_shape is None:
        return x
    return make_cnn(spec).apply(critic_params["cnn"], x)


def _critic_inputs(critic_params, sa: jax.Array, goal: jax.Array, spec: EnvSpec | None):
    """``(sa, goal)`` with image pixels replaced by the critic's CNN features (unchanged for state envs)."""
    if spec is None or spec.image_shape is None:
        if "cnn" in critic_params:
            raise ValueError("an image critic needs spec= to encode its pixel inputs")
        return sa, goal
    obs, action = sa[..., : spec.obs_dim], sa[..., spec.obs_dim :]
    obs_f = _features(spec, critic_params, obs)
    return jnp.concatenate([obs_f, action.astype(obs_f.dtype)], -1), _features(spec, critic_params, goal)


def make_value(cfg: CRLConfig):
    """The AWR value V(s, g): one (phi_v(s), psi_v(g)) pair shaped like a critic's, outputs ``[1, ..., repr_dim]``."""
    enc = ensemble(Encoders, 1)
    return enc(cfg.hidden_sizes, cfg.repr_dim, cfg.activation, cfg.layer_norm, cfg.residual_depth, cfg.init)


def value_logits(cfg: CRLConfig, critic_params, obs: jax.Array, goal: jax.Array, spec: EnvSpec | None = None
                 ) -> jax.Array:
    """Pairwise AWR value logits ``[B, B]``: entry [i, j] = V(s_i, g_j). ``spec`` is needed for image envs."""
    if spec is not None:
        obs, goal = _features(spec, critic_params, obs), _features(spec, critic_params, goal)
    return _value_pairwise(cfg, critic_params, obs, goal)


def _value_pairwise(cfg, critic_params, obs, goal):
    phi, psi = make_value(cfg).apply(critic_params["value"], obs, goal)
    return losses.pairwise_energy(phi[0], psi[0], cfg.energy, critic_params.get("log_temp"))


def state_value(cfg: CRLConfig, critic_params, obs: jax.Array, goal: jax.Array, spec: EnvSpec | None = None
                ) -> jax.Array:
    """Row-wise AWR values ``[B]``: V(s_i, g_i). ``spec`` is needed for image envs."""
    if spec is not None:
        obs, goal = _features(spec, critic_params, obs), _features(spec, critic_params, goal)
    return _value_rowwise(cfg, critic_params, obs, goal)


def _value_rowwise(cfg, critic_params, obs, goal):
    phi, psi = make_value(cfg).apply(critic_params["value"], obs, goal)
    return losses.diag_energy(phi[0], psi[0], cfg.energy, critic_params.get("log_temp"))


def make_actor(cfg: CRLConfig, spec: EnvSpec):
    """The actor module (see ``common.make_actor``); for image envs with its own CNN in front (``nets.ImageActor``,
    on the state and goal images stacked along the channels)."""
    actor = common.make_actor(cfg, spec.act_dim)
    return actor if spec.image_shape is None else ImageActor(tuple(spec.image_shape), actor)


def _optimizers(cfg: CRLConfig):
    return (
        common.adam(cfg.critic_lr, cfg.adam_eps),
        common.adam(cfg.actor_lr, cfg.adam_eps),
        optax.adam(cfg.alpha_lr),
    )


def init(key: jax.Array, spec: EnvSpec, cfg: CRLConfig) -> CRLState:
    """Fresh parameters and optimiser states."""
    _check_image_spec(spec)
    k_c, k_a = jax.random.split(key)
    # the widths the critic's MLPs see: the CNN features of images, else the raw vectors
    obs_width = spec.obs_dim if spec.image_shape is None else cnn_out_dim(spec.image_shape)
    goal_width = spec.goal_dim if spec.image_shape is None else obs_width
    sa = jnp.zeros((1, obs_width + spec.act_dim))
    critic = {"enc": make_critic(cfg).init(k_c, sa, jnp.zeros((1, goal_width)))}
    if spec.image_shape is not None:
        critic["cnn"] = make_cnn(spec).init(jax.random.fold_in(k_c, 1), jnp.zeros((1, spec.obs_dim), jnp.uint8))
    if cfg.energy == "cosine":
        critic["log_temp"] = jnp.zeros(())
    if cfg.actor_loss == "awr":
        k_c, k_v = jax.random.split(k_c)
        critic["value"] = make_value(cfg).init(k_v, jnp.zeros((1, obs_width)), jnp.zeros((1, goal_width)))
    actor = make_actor(cfg, spec).init(k_a, jnp.zeros((1, spec.obs_dim + spec.goal_dim)))
    log_alpha = jnp.log(jnp.maximum(cfg.entropy_coef, 1e-8)) if not cfg.adaptive_entropy else jnp.zeros(())
    c_opt, a_opt, al_opt = _optimizers(cfg)
    return CRLState(
        step=jnp.zeros((), jnp.int32),
        critic=critic,
        actor=actor,
        # Own buffers: the trainer donates the state, and one buffer cannot be donated twice.
        target_critic=jax.tree.map(jnp.copy, critic) if cfg.loss in TD_LOSSES else None,
        log_alpha=jnp.asarray(log_alpha, jnp.float32),
        critic_opt=c_opt.init(critic),
        actor_opt=a_opt.init(actor),
        alpha_opt=al_opt.init(jnp.zeros(())),
    )


def critic_logits(cfg: CRLConfig, critic_params, sa: jax.Array, goal: jax.Array, spec: EnvSpec | None = None
                  ) -> jax.Array:
    """Pairwise logits ``[E, B, B]``: entry [e, i, j] = f_e(s_i, a_i, g_j), for ``sa = [obs, action]``. ``spec`` is
    needed for image envs (their pixels go through the critic's CNN first)."""
    return _pairwise(cfg, critic_params, *_critic_inputs(critic_params, sa, goal, spec))


def _pairwise(cfg, critic_params, sa, goal):
    phi, psi = make_critic(cfg).apply(critic_params["enc"], sa, goal)
    energy = jax.vmap(lambda p, q: losses.pairwise_energy(p, q, cfg.energy, critic_params.get("log_temp")))
    return energy(phi, psi)


def critic_value(cfg: CRLConfig, critic_params, sa: jax.Array, goal: jax.Array, spec: EnvSpec | None = None
                 ) -> jax.Array:
    """Row-wise critic values ``[E, B]``: f_e(s_i, a_i, g_i), without forming the B x B matrix. ``spec`` is needed
    for image envs."""
    return _rowwise(cfg, critic_params, *_critic_inputs(critic_params, sa, goal, spec))


def _rowwise(cfg, critic_params, sa, goal):
    """``critic_value`` on the MLP encoders' inputs (CNN features for image envs)."""
    phi, psi = make_critic(cfg).apply(critic_params["enc"], sa, goal)
    return jax.vmap(lambda p, q: losses.diag_energy(p, q, cfg.energy, critic_params.get("log_temp")))(phi, psi)


def _critic_loss(cfg, spec, actor_params, critic_params, target_params, batch: Batch, key):
    """Returns ``(loss, (metrics, psi [E, B, d], features))``; ``features`` = the CNN features of the batch's
    observations and goals ``([B, F], [B, F])`` for image envs, else None."""
    obs = _features(spec, critic_params, batch.obs)  # batch.obs itself for state envs
    sa = jnp.concatenate([obs, batch.action], axis=-1)
    goal = batch.goal
    if cfg.loss in TD_LOSSES:
        next_goal = spec.obs_to_goal(batch.next_obs)
        if cfg.loss == "c_learning":
            goal = next_goal
        else:
            n_td = losses.num_td_rows(cfg.batch_size, cfg.discount)
            goal = jnp.concatenate([next_goal[:n_td], goal[n_td:]], axis=0)
    goal_f = _features(spec, critic_params, goal)
    phi, psi = make_critic(cfg).apply(critic_params["enc"], sa, goal_f)
    energy = jax.vmap(lambda p, q: losses.pairwise_energy(p, q, cfg.energy, critic_params.get("log_temp")))
    logits = energy(phi, psi)  # [E, B, B], as critic_logits
    if cfg.loss in TD_LOSSES:
        # Row i's random goal is row i+1's goal; the target critic scores it from the next state.
        random_goal = jnp.roll(goal, -1, axis=0)
        mean, log_std = make_actor(cfg, spec).apply(actor_params, jnp.concatenate([batch.next_obs, random_goal], -1))
        next_action, _ = common.sample_action(cfg.policy, key, mean, log_std)
        next_sa = jnp.concatenate([batch.next_obs, next_action], axis=-1)
        next_sa, random_goal = _critic_inputs(target_params, next_sa, random_goal, spec)
        target = losses.reduce_twin(_rowwise(cfg, target_params, next_sa, random_goal), cfg.twin_reduce)
        w = losses.c_learning_weight(target)
        td = losses.c_learning_loss if cfg.loss == "c_learning" else losses.nce_c_learning_loss
        loss = jnp.mean(jax.vmap(lambda lg: td(lg, w, cfg.discount))(logits))
    else:
        loss = jnp.mean(jax.vmap(lambda lg: losses.contrastive_loss(lg, cfg.loss, cfg.lse_coef))(logits))
    # jnp.mean(logits, axis=0) as a sum of the E slices: the same values, but XLA:CPU (jax 0.10) lowers a reduction
    # over the leading axis to a YNNPACK kernel that takes ~25 ms for [2, 1024, 1024], vs <1 ms for the sum.
    mean_logits = functools.reduce(jnp.add, [logits[e] for e in range(logits.shape[0])]) / logits.shape[0]
    metrics = losses.contrastive_metrics(mean_logits)
    metrics["critic_loss"] = loss
    if cfg.actor_loss == "awr":  # the value V(s, g) learns with the same contrastive loss on (s, g) pairs
        v_logits = _value_pairwise(cfg, critic_params, obs, goal_f)  # goal is batch.goal: awr excludes TD losses
        v_loss = losses.contrastive_loss(v_logits, cfg.loss, cfg.lse_coef)
        metrics["value_loss"] = v_loss
        metrics["value_accuracy"] = losses.contrastive_metrics(v_logits)["categorical_accuracy"]
        loss = loss + v_loss
    return loss, (metrics, psi, None if spec.image_shape is None else (obs, goal_f))


def _actor_loss(cfg, spec, critic_params, log_alpha, actor_params, batch: Batch, key, goal_repr=None, features=None):
    """``goal_repr``: psi(batch.actor_goal) ``[E, B, d]`` under ``critic_params`` when the caller has it already (the
    critic loss computes it when the actor's goals are the critic's); psi is then not recomputed. ``features``
    (image envs): the critic CNN's features of ``(batch.obs, batch.actor_goal)`` when the caller has them, either
    may be None; the missing ones are computed here."""
    obs, goal, data_action = batch.obs, batch.actor_goal, batch.action
    psi = goal_repr
    image = spec.image_shape is not None
    if image:  # the critic sees CNN features; the actor sees pixels (through its own CNN)
        obs_f, goal_f = features if features is not None else (None, None)
        obs_f = _features(spec, critic_params, obs) if obs_f is None else obs_f
        goal_f = _features(spec, critic_params, goal) if goal_f is None else goal_f
    if cfg.random_goals == 0.5:
        obs = jnp.concatenate([obs, obs], axis=0)
        goal = jnp.concatenate([goal, jnp.roll(goal, 1, axis=0)], axis=0)
        data_action = jnp.concatenate([data_action, data_action], axis=0)
        if psi is not None:
            psi = jnp.concatenate([psi, jnp.roll(psi, 1, axis=1)], axis=1)
        if image:
            obs_f = jnp.concatenate([obs_f, obs_f], axis=0)
            goal_f = jnp.concatenate([goal_f, jnp.roll(goal_f, 1, axis=0)], axis=0)
    elif cfg.random_goals == 1.0:
        goal = jnp.roll(goal, 1, axis=0)
        if psi is not None:
            psi = jnp.roll(psi, 1, axis=1)
        if image:
            goal_f = jnp.roll(goal_f, 1, axis=0)
    if not image:
        obs_f, goal_f = obs, goal
    mean, log_std = make_actor(cfg, spec).apply(actor_params, jnp.concatenate([obs, goal], axis=-1))
    bc_log_prob = common.log_prob(cfg.policy, mean, log_std, data_action)
    if cfg.actor_loss == "awr":
        return _awr_loss(cfg, critic_params, obs_f, goal_f, data_action, bc_log_prob, mean, log_std)
    if cfg.actor_loss == "sac":
        action, log_prob = common.sample_action(cfg.policy, key, mean, log_std)
    else:
        action, log_prob = jnp.clip(mean, -1.0, 1.0), bc_log_prob
    sa = jnp.concatenate([obs_f, action], -1)
    if psi is None:
        q = _rowwise(cfg, critic_params, sa, goal_f)
    else:  # as critic_value, with psi(goal) given
        phi = make_critic(cfg).apply(critic_params["enc"], sa, method="encode_sa")
        q = jax.vmap(lambda p, g: losses.diag_energy(p, g, cfg.energy, critic_params.get("log_temp")))(phi, psi)
    q = losses.reduce_twin(q, cfg.twin_reduce)
    if cfg.actor_loss == "sac":
        loss = jnp.mean(jnp.exp(log_alpha) * log_prob - q) + cfg.mean_reg * jnp.mean(jnp.sum(mean**2, axis=-1))
        loss = (1.0 - cfg.bc_coef) * loss - cfg.bc_coef * jnp.mean(bc_log_prob)
    else:
        loss = -jnp.mean(q) / jax.lax.stop_gradient(jnp.mean(jnp.abs(q)) + 1e-6) - cfg.bc_coef * jnp.mean(bc_log_prob)
    metrics = {
        "actor_loss": loss,
        "q_actor": jnp.mean(q),
        "entropy": -jnp.mean(log_prob),
        "policy_std": jnp.mean(jnp.exp(log_std)),
        "policy_mean_abs": jnp.mean(jnp.abs(mean)),  # pre-tanh; large values mean a saturated, stuck actor
        "bc_log_prob": jnp.mean(bc_log_prob),
    }
    return loss, (metrics, log_prob)


def _awr_loss(cfg, critic_params, obs, goal, data_action, bc_log_prob, mean, log_std):
    """OGBench's AWR actor: -mean(w * log pi(a_data | s, g)), w = min(exp(alpha * (Q(s, a_data, g) - V(s, g))), max).
    ``obs``, ``goal``: the critic's inputs (CNN features for image envs)."""
    sa = jnp.concatenate([obs, data_action], -1)
    q = losses.reduce_twin(_rowwise(cfg, critic_params, sa, goal), cfg.twin_reduce)
    v = _value_rowwise(cfg, critic_params, obs, goal)
    adv = jax.lax.stop_gradient(q - v)
    weight = jnp.minimum(jnp.exp(cfg.bc_coef * adv), cfg.awr_max_weight)
    loss = -jnp.mean(weight * bc_log_prob)
    metrics = {
        "actor_loss": loss,
        "q_actor": jnp.mean(q),
        "advantage": jnp.mean(adv),
        "awr_weight": jnp.mean(weight),
        "policy_std": jnp.mean(jnp.exp(log_std)),
        "policy_mean_abs": jnp.mean(jnp.abs(mean)),
        "bc_log_prob": jnp.mean(bc_log_prob),
    }
    return loss, (metrics, bc_log_prob)


def update(state: CRLState, batch: Batch, key: jax.Array, *, cfg: CRLConfig, spec: EnvSpec):
    """One gradient step on critic, actor and alpha, all from the current parameters.

    Returns ``(new_state, metrics)`` with scalar metrics.
    """
    k_critic, k_actor = jax.random.split(key)
    c_opt, a_opt, al_opt = _optimizers(cfg)

    def critic_fn(p):
        return _critic_loss(cfg, spec, state.actor, p, state.target_critic, batch, k_critic)

    (_, (c_metrics, psi, feats)), c_grads = jax.value_and_grad(critic_fn, has_aux=True)(state.critic)
    # The critic loss has psi(goal) under the current critic; when the actor's goals are the same array (the
    # sampler's default, seen here as the same traced value), the actor reuses it instead of recomputing it.
    share_psi = cfg.loss not in TD_LOSSES and batch.actor_goal is batch.goal

    # Image envs: the critic's CNN features of the observations are always the actor's (same images, same params);
    # those of the goals when psi is shared. They enter the actor loss as constants: no actor gradient reaches them.
    features = None if feats is None else (feats[0], feats[1] if share_psi else None)

    def actor_fn(p):
        return _actor_loss(cfg, spec, state.critic, state.log_alpha, p, batch, k_actor, psi if share_psi else None,
                           features)

    (_, (a_metrics, log_prob)), a_grads = jax.value_and_grad(actor_fn, has_aux=True)(state.actor)
    c_updates, critic_opt = c_opt.update(c_grads, state.critic_opt, state.critic)
    a_updates, actor_opt = a_opt.update(a_grads, state.actor_opt, state.actor)
    critic = optax.apply_updates(state.critic, c_updates)
    actor = optax.apply_updates(state.actor, a_updates)

    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if cfg.adaptive_entropy:
        excess = jax.lax.stop_gradient(-log_prob - cfg.target_entropy)
        # The original's loss alpha * (-log pi - target): its gradient in log_alpha is alpha * excess, so alpha
        # falls while the entropy is above the target.
        alpha_grad = jnp.exp(state.log_alpha) * jnp.mean(excess)
        al_updates, alpha_opt = al_opt.update(alpha_grad, state.alpha_opt)
        log_alpha = log_alpha + al_updates
        a_metrics["alpha_loss"] = jnp.exp(state.log_alpha) * jnp.mean(excess)

    target = state.target_critic
    if target is not None:
        target = optax.incremental_update(critic, target, cfg.tau)
    metrics = {**c_metrics, **a_metrics, "alpha": jnp.exp(log_alpha)}
    new_state = state.replace(
        step=state.step + 1,
        critic=critic,
        actor=actor,
        target_critic=target,
        log_alpha=log_alpha,
        critic_opt=critic_opt,
        actor_opt=actor_opt,
        alpha_opt=alpha_opt,
    )
    return new_state, metrics


def with_preset(name: str, **overrides) -> CRLConfig:
    """A preset config with fields replaced: ``with_preset('ogbench-crl', bc_coef=0.03)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown CRL preset {name!r}; expected one of {tuple(PRESETS)}")
    return replace(PRESETS[name], **overrides)


__all__ = ["CRLConfig", "CRLState", "PRESETS", "init", "update", "make_actor", "critic_logits", "critic_value",
           "state_value", "value_logits", "make_cnn"]
