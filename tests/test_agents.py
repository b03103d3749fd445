"""Behavioural checks of the tanh-Gaussian policy, the CRL agent (every loss and energy, configs, presets, actor
goals, entropy tuning) and tiny learning checks of CRL and GCBC.

Networks are tiny and each jitted function is compiled once (compiles dominate the runtime on a CPU).
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from crl import losses
from crl.agents import crl, gcbc
from crl.data.store import GoalSampler, from_episode_ends
from crl.nets import TanhGaussianActor, tanh_gaussian_log_prob, tanh_gaussian_sample
from crl.types import Batch, EnvSpec

# XLA's CPU optimisation passes cost seconds per compile and buy nothing for these tiny networks.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
fast_jit = partial(jax.jit, compiler_options=FAST_COMPILE)

SPEC = EnvSpec(obs_dim=4, goal_dim=2, act_dim=2, goal_start=0, goal_end=2)
B = 8


def tiny(**kw) -> crl.CRLConfig:
    base = dict(batch_size=B, hidden_sizes=(16, 16), repr_dim=8, actor_hidden_sizes=(16, 16))
    cfg = crl.CRLConfig(**{**base, **kw})
    cfg.validate()
    return cfg


def random_batch(key, batch_size=B, spec=SPEC) -> Batch:
    ks = jax.random.split(key, 5)
    return Batch(
        jax.random.normal(ks[0], (batch_size, spec.obs_dim)),
        jax.random.uniform(ks[1], (batch_size, spec.act_dim), minval=-0.99, maxval=0.99),
        jax.random.normal(ks[2], (batch_size, spec.obs_dim)),
        jax.random.normal(ks[3], (batch_size, spec.goal_dim)),
        jax.random.normal(ks[4], (batch_size, spec.goal_dim)),
    )


def num_params(tree) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def mlp_params(sizes, layer_norm=False) -> int:
    """Dense weights + biases of an MLP with layer sizes ``sizes`` (input first), LayerNorm on hidden layers."""
    dense = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    return dense + (2 * sum(sizes[1:-1]) if layer_norm else 0)


def leaves_all_changed(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb) > 0
    return all(np.any(np.asarray(x) != np.asarray(y)) for x, y in zip(la, lb))


# ----------------------------------------------------------------------------- tanh-Gaussian


def test_tanh_gaussian_log_prob_matches_sample_and_change_of_variables():
    @fast_jit
    def draw(key):
        k1, k2, k3 = jax.random.split(key, 3)
        mean = 1.5 * jax.random.normal(k1, (4096, 3))
        mean = mean.at[:64].set(12.0 * jnp.sign(mean[:64]))  # saturated: |tanh(u)| > 0.999
        log_std = jax.random.uniform(k2, (4096, 3), minval=-2.0, maxval=0.5)
        action, lp_sample = tanh_gaussian_sample(k3, mean, log_std)
        clipped = jnp.clip(action, -0.999, 0.999)
        lp, lp_clipped = tanh_gaussian_log_prob(mean, log_std, action), tanh_gaussian_log_prob(mean, log_std, clipped)
        lp_at_one = tanh_gaussian_log_prob(mean, log_std, jnp.sign(action))  # actions exactly +-1 (e.g. data)
        lp_at_clip = tanh_gaussian_log_prob(mean, log_std, 0.999 * jnp.sign(action))
        return mean, log_std, action, lp_sample, lp, lp_clipped, lp_at_one, lp_at_clip

    out = map(np.asarray, draw(jax.random.PRNGKey(0)))
    mean, log_std, action, lp_sample, lp, lp_clipped, lp_at_one, lp_at_clip = out
    assert action.shape == (4096, 3) and lp.shape == lp_sample.shape == (4096,)
    assert np.all(np.abs(action) <= 1.0) and np.all(np.isfinite(lp)) and np.all(np.isfinite(lp_sample))
    inside = np.all(np.abs(action) < 0.99, axis=-1)
    assert inside.mean() > 0.5
    np.testing.assert_allclose(lp[inside], lp_sample[inside], rtol=1e-4, atol=2e-3)
    # independent float64 reference: log N(atanh a; mean, std) - log(1 - a^2)
    a = action[inside].astype(np.float64)
    u = np.arctanh(a)
    ref = stats.norm.logpdf(u, mean[inside], np.exp(log_std[inside])) - np.log1p(-(a**2))
    np.testing.assert_allclose(lp[inside], ref.sum(-1), rtol=1e-4, atol=2e-3)
    # saturated samples (|a| >= 0.999): the log-prob is evaluated at the clip, and stays finite at exactly +-1
    edge = np.any(np.abs(action) >= 0.999, axis=-1)
    assert edge.sum() >= 64
    np.testing.assert_allclose(lp[edge], lp_clipped[edge], rtol=1e-5)
    assert np.all(np.isfinite(lp_at_one))
    np.testing.assert_allclose(lp_at_one, lp_at_clip, rtol=1e-6)


@fast_jit
def _density_and_samples(a, mean, log_std):
    """log-density on the grid ``a [N]`` and the sampler's log-probs of 100k samples, for a 1-d tanh-Gaussian."""
    lp = tanh_gaussian_log_prob(jnp.full((a.size, 1), mean), jnp.full((a.size, 1), log_std), a[:, None])
    n = 100_000
    _, lp_s = tanh_gaussian_sample(jax.random.PRNGKey(1), jnp.full((n, 1), mean), jnp.full((n, 1), log_std))
    return lp, lp_s


@pytest.mark.parametrize("mean, log_std", [(0.0, 0.0), (0.7, -0.7), (-1.0, -1.5), (0.3, -3.0)])
def test_tanh_gaussian_density_integrates_to_one(mean, log_std):
    a = np.linspace(-1.0, 1.0, 400_001)[1:-1]
    lp, lp_s = map(np.asarray, _density_and_samples(jnp.asarray(a), mean, log_std))
    density = np.exp(lp.astype(np.float64))
    integral = np.trapezoid(density, a)
    assert abs(integral - 1.0) < 2e-3
    # the sampler's log-prob at its own samples averages to minus the entropy: check it against the density
    entropy_quad = -np.trapezoid(density * lp, a)
    assert abs(-float(np.mean(lp_s)) - entropy_quad) < 0.02


def test_tanh_gaussian_actor_log_std_floor_and_ceiling():
    actor = TanhGaussianActor(hidden=(16,), act_dim=3, log_std_min=-3.0, log_std_max=1.0)
    x = 100.0 * np.random.default_rng(0).normal(size=(512, 5)).astype(np.float32)  # saturates the log-std head
    mean, log_std = fast_jit(lambda k, x: actor.apply(actor.init(k, x), x))(jax.random.PRNGKey(1), x)
    assert mean.shape == log_std.shape == (512, 3)
    assert float(log_std.min()) >= -3.0 and float(log_std.max()) <= 1.0
    assert float(log_std.min()) < -2.9 and float(log_std.max()) > 0.9  # both bounds are reached
    # and the CRL config's bounds reach the actor
    mod = crl.make_actor(tiny(log_std_min=-4.0, log_std_max=0.5), SPEC)
    assert (mod.log_std_min, mod.log_std_max) == (-4.0, 0.5)


# ----------------------------------------------------------------------------- CRL: every loss, every energy

# Each loss once and each energy at least once (a full cross product costs ~35 compiles).
SWEEP = [
    ("binary_nce", "dot"),
    ("balanced_nce", "dot"),
    ("infonce_forward", "scaled_dot"),
    ("infonce_backward", "l2"),
    ("infonce_symmetric", "l2sq"),
    ("cpc", "cosine"),
    ("c_learning", "cosine"),
    ("nce_c_learning", "l2"),
]
assert {loss for loss, _ in SWEEP} == set(crl.LOSSES) and {e for _, e in SWEEP} == set(losses.ENERGIES)


def sweep_config(loss, energy) -> crl.CRLConfig:
    return tiny(loss=loss, energy=energy, twin_critics=loss in crl.TD_LOSSES)


ADAPTIVE = tiny(adaptive_entropy=True, target_entropy=-100.0)  # see test_adaptive_entropy_moves_alpha_towards_target
_INITIAL: dict = {}
_UPDATED: dict = {}


def initial_state(cfg: crl.CRLConfig):
    """crl.init for ``cfg``. Loss and energy shape the state only through a target critic (TD losses) and a
    temperature (cosine), so configs that agree on those share one compiled init (compiles dominate here)."""
    shape_cfg = replace(
        cfg,
        loss="c_learning" if cfg.loss in crl.TD_LOSSES else "binary_nce",
        energy="cosine" if cfg.energy == "cosine" else "dot",
    )
    if shape_cfg not in _INITIAL:
        _INITIAL[shape_cfg] = fast_jit(lambda k: crl.init(k, SPEC, shape_cfg))(jax.random.PRNGKey(0))
    return _INITIAL[shape_cfg]


def updated(cfg: crl.CRLConfig):
    """(initial state, state after one jitted update, its metrics) on a fixed random batch."""
    if cfg not in _UPDATED:
        state = initial_state(cfg)

        def step(st, k):
            batch = random_batch(k)
            if cfg is not ADAPTIVE:  # the sampler's default: one goal array for critic and actor (psi is shared)
                batch = batch._replace(actor_goal=batch.goal)
            return crl.update(st, batch, jax.random.fold_in(k, 1), cfg=cfg, spec=SPEC)

        step = fast_jit(step)
        _UPDATED[cfg] = jax.tree.map(np.asarray, (state, *step(state, jax.random.PRNGKey(1))))
    return _UPDATED[cfg]


@pytest.mark.parametrize("loss, energy", SWEEP)
def test_update_runs_and_changes_parameters(loss, energy):
    """One jitted update: finite scalar metrics, every critic and actor parameter moves."""
    cfg = sweep_config(loss, energy)
    state, new, metrics = updated(cfg)
    for k in ("critic_loss", "actor_loss", "categorical_accuracy", "binary_accuracy", "logits_pos", "alpha", "entropy"):
        assert k in metrics, k
    for k, v in metrics.items():
        assert v.shape == () and np.isfinite(v), (k, v)
    assert int(new.step) == 1
    assert leaves_all_changed(state.critic, new.critic)
    assert leaves_all_changed(state.actor, new.actor)
    assert ("log_temp" in state.critic) == (energy == "cosine")
    n_critics = 2 if loss in crl.TD_LOSSES else 1
    assert all(x.shape[0] == n_critics for x in jax.tree.leaves(state.critic["enc"]))
    if loss in crl.TD_LOSSES:  # Polyak target: moved towards the new critic, by tau
        assert leaves_all_changed(state.target_critic, new.target_critic)
        for old_t, new_t, c in zip(*map(jax.tree.leaves, (state.target_critic, new.target_critic, new.critic))):
            np.testing.assert_allclose(new_t, (1 - cfg.tau) * old_t + cfg.tau * c, rtol=1e-5, atol=1e-7)
    else:
        assert state.target_critic is None and new.target_critic is None
    # with entropy_coef 0 (fixed), alpha stays negligible
    assert float(metrics["alpha"]) < 1e-6 and float(new.log_alpha) == float(state.log_alpha)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(discount=1.0), "discount"),
        (dict(discount=0.0), "discount"),
        (dict(random_goals=0.3), "random_goals"),
        (dict(loss="c_learning"), "twin_critics"),
        (dict(loss="nce_c_learning"), "twin_critics"),
        (dict(residual_depth=2), "hidden_sizes"),  # 2 hidden layers: 1 + k*2 impossible
        (dict(hidden_sizes=(16, 16, 16, 16), residual_depth=2), "hidden_sizes"),  # 3 after the first
        (dict(actor_residual_depth=2), "actor_hidden_sizes"),
        (dict(energy="manhattan"), "energy"),
        (dict(loss="hinge"), "loss"),
        (dict(batch_size=1), "batch_size"),
        (dict(bc_coef=1.5), "bc_coef"),
        (dict(log_std_min=2.0, log_std_max=1.0), "log_std_min"),
        (dict(actor_loss="awr", loss="c_learning", twin_critics=True), "awr"),
        (dict(actor_loss="awr", awr_max_weight=0.0), "awr_max_weight"),
        (dict(actor_loss="reinforce"), "actor_loss"),
    ],
)
def test_validate_rejects_impossible_configs(overrides, field):
    cfg = crl.CRLConfig(**overrides)
    with pytest.raises(ValueError, match=field):
        cfg.validate()


def test_valid_configs_pass():
    for name in crl.PRESETS:
        crl.PRESETS[name].validate()
    crl.CRLConfig(hidden_sizes=(16, 16, 16), residual_depth=2).validate()
    crl.CRLConfig(loss="c_learning", twin_critics=True).validate()
    with pytest.raises(ValueError, match="preset"):
        crl.with_preset("nope")
    assert crl.with_preset("ogbench-crl", bc_coef=0.03).bc_coef == 0.03


def _shapes(cfg, spec):
    state = jax.eval_shape(lambda k: crl.init(k, spec, cfg), jax.random.PRNGKey(0))
    return num_params(state.critic), num_params(state.actor)


def test_paper_online_parameter_count():
    spec = EnvSpec(obs_dim=29, goal_dim=2, act_dim=8, goal_start=0, goal_end=2)  # ant: XY goals
    critic, actor = _shapes(crl.PRESETS["paper-online"], spec)
    assert critic == mlp_params([29 + 8, 256, 256, 64]) + mlp_params([2, 256, 256, 64])
    assert actor == mlp_params([29 + 2, 256, 256]) + 2 * (256 * 8 + 8)  # trunk + mean and log-std heads


def test_ogbench_crl_parameter_count():
    spec = EnvSpec(obs_dim=29, goal_dim=29, act_dim=8)
    critic, actor = _shapes(crl.PRESETS["ogbench-crl"], spec)
    enc = mlp_params([37, 512, 512, 512, 512], layer_norm=True) + mlp_params([29, 512, 512, 512, 512], layer_norm=True)
    assert critic == 2 * enc  # twin critics
    assert actor == mlp_params([58, 512, 512, 512, 8])  # constant std: mean head only
    assert 3.7e6 <= critic + actor <= 3.8e6  # OGBench reports 3.7-3.8M
    critic_awr, _ = _shapes(replace(crl.PRESETS["ogbench-crl"], actor_loss="awr"), spec)
    value = mlp_params([29, 512, 512, 512, 512], layer_norm=True) * 2  # phi_v(s) and psi_v(g)
    assert critic_awr == critic + value
    assert 5.2e6 <= critic_awr + actor <= 5.5e6  # OGBench reports ~5.3M with AWR (its count is for another env)


# ----------------------------------------------------------------------------- the actor uses the diagonal


@pytest.fixture(scope="module")
def critic_outputs():
    """Pairwise logits and row-wise values of one twin critic under every energy: {energy: (logits, values)}."""

    @fast_jit
    def run(key):
        k_init, k_sa, k_g = jax.random.split(key, 3)
        sa = jax.random.normal(k_sa, (B, SPEC.obs_dim + SPEC.act_dim))
        goal = jax.random.normal(k_g, (B, SPEC.goal_dim))
        enc = crl.make_critic(tiny(twin_critics=True)).init(k_init, sa, goal)
        out = {}
        for energy in losses.ENERGIES:
            cfg = tiny(twin_critics=True, energy=energy)
            params = {"enc": enc, "log_temp": jnp.asarray(0.7)} if energy == "cosine" else {"enc": enc}
            out[energy] = crl.critic_logits(cfg, params, sa, goal), crl.critic_value(cfg, params, sa, goal)
        return out

    return jax.tree.map(np.asarray, run(jax.random.PRNGKey(3)))


@pytest.mark.parametrize("energy", losses.ENERGIES)
def test_critic_value_is_diagonal_of_logits(critic_outputs, energy):
    logits, value = critic_outputs[energy]
    assert logits.shape == (2, B, B) and value.shape == (2, B)
    np.testing.assert_allclose(value, np.diagonal(logits, axis1=1, axis2=2), rtol=1e-5, atol=1e-5)
    off = logits[:, ~np.eye(B, dtype=bool)]
    assert np.std(off) > 1e-3  # the matrix is not trivially constant, so the diagonal check is meaningful
    assert not np.allclose(logits[0], logits[1])  # twin critics are independent
    if energy == "cosine":  # the temperature exp(0.7) divides a cosine
        assert np.max(np.abs(logits)) <= math.exp(-0.7) + 1e-5
    if energy in ("l2", "l2sq"):
        assert np.all(logits <= 0)


@pytest.fixture(scope="module")
def actor_losses():
    """Actor-loss outputs under each random_goals mode, in one compiled call.

    'shared' / 'recomputed': (loss, q_actor, per-row log-prob) with psi(goal) passed in / recomputed.
    'bc': per-row log pi(a_data | s, g) with actor_loss='ddpgbc' (deterministic), and 'bc_shifted' the same for
    random_goals=0 on a batch whose goals were rolled by one row by hand.
    """

    @fast_jit
    def run(key):
        k_init, k_batch, k_act = jax.random.split(key, 3)
        state = crl.init(k_init, SPEC, tiny(twin_critics=True))
        batch = random_batch(k_batch)
        batch = batch._replace(actor_goal=batch.goal)
        log_alpha = jnp.asarray(-1.0)

        def actor_loss(cfg, b, goal_repr=None):
            loss, (m, lp) = crl._actor_loss(cfg, SPEC, state.critic, log_alpha, state.actor, b, k_act, goal_repr)
            return loss, m["q_actor"], lp

        out = {"shared": {}, "recomputed": {}, "bc": {}}
        for rg in (0.0, 0.5, 1.0):
            cfg = tiny(twin_critics=True, random_goals=rg)
            _, psi = crl.make_critic(cfg).apply(state.critic["enc"], jnp.zeros((B, 6)), batch.goal)
            out["shared"][rg] = actor_loss(cfg, batch, psi)
            out["recomputed"][rg] = actor_loss(cfg, batch)
            out["bc"][rg] = actor_loss(tiny(twin_critics=True, random_goals=rg, actor_loss="ddpgbc"), batch)[2]
        shifted = batch._replace(actor_goal=jnp.roll(batch.actor_goal, 1, axis=0))
        out["bc_shifted"] = actor_loss(tiny(twin_critics=True, random_goals=0.0, actor_loss="ddpgbc"), shifted)[2]
        return out

    return jax.tree.map(np.asarray, run(jax.random.PRNGKey(5)))


@pytest.mark.parametrize("random_goals", [0.0, 0.5, 1.0])
def test_actor_loss_with_shared_goal_repr_matches_recomputed(actor_losses, random_goals):
    """The update reuses psi(goal) from the critic loss; the actor loss must equal the one that recomputes it."""
    for a, b in zip(actor_losses["shared"][random_goals], actor_losses["recomputed"][random_goals]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_random_goals_half_doubles_the_actor_batch(actor_losses):
    """random_goals=0.5: 2B actor rows, the first B with the row's own goal, the last B with the shifted goals."""
    out = actor_losses["bc"]
    assert out[0.0].shape == out[1.0].shape == (B,) and out[0.5].shape == (2 * B,)
    assert actor_losses["recomputed"][0.5][2].shape == (2 * B,)  # the SAC loss too
    np.testing.assert_allclose(out[0.5][:B], out[0.0], rtol=1e-5)
    np.testing.assert_allclose(out[0.5][B:], out[1.0], rtol=1e-5)
    assert not np.allclose(out[0.0], out[1.0])  # shifted goals change the policy's inputs
    # the shift is by one row: row i gets the goal of row i - 1
    np.testing.assert_allclose(actor_losses["bc_shifted"], out[1.0], rtol=1e-5)


def test_awr_actor_loss_matches_hand_computation():
    """OGBench's AWR actor: -mean(min(exp(alpha (min(Q1, Q2)(s, a_data, g) - V(s, g))), cap) log N(a_data; mu, 1))."""
    alpha, cap = 2.0, 1.03
    cfg = tiny(twin_critics=True, policy="gaussian", actor_loss="awr", bc_coef=alpha, awr_max_weight=cap, random_goals=0.0)

    @fast_jit
    def run(key):
        k_init, k_batch = jax.random.split(key)
        state = crl.init(k_init, SPEC, cfg)
        batch = random_batch(k_batch)
        loss, (metrics, _) = crl._actor_loss(cfg, SPEC, state.critic, 0.0, state.actor, batch, key)
        sa = jnp.concatenate([batch.obs, batch.action], -1)
        mean, _ = crl.make_actor(cfg, SPEC).apply(state.actor, jnp.concatenate([batch.obs, batch.actor_goal], -1))
        parts = dict(
            q=crl.critic_value(cfg, state.critic, sa, batch.actor_goal),
            v=crl.state_value(cfg, state.critic, batch.obs, batch.actor_goal),
            v_pairs=crl.value_logits(cfg, state.critic, batch.obs, batch.actor_goal),
            mean=mean, action=batch.action,
        )
        return loss, metrics, parts

    loss, metrics, p = jax.tree.map(np.asarray, run(jax.random.PRNGKey(8)))
    assert p["q"].shape == (2, B) and p["v"].shape == (B,)
    np.testing.assert_allclose(p["v"], np.diagonal(p["v_pairs"]), rtol=1e-5, atol=1e-6)
    adv = p["q"].min(axis=0) - p["v"]
    weight = np.minimum(np.exp(alpha * adv), cap)
    assert 0 < np.sum(weight == cap) < B, weight  # some rows capped, some not: both branches checked
    log_prob = -0.5 * np.sum((p["action"] - p["mean"]) ** 2, -1) - SPEC.act_dim / 2 * np.log(2 * np.pi)
    np.testing.assert_allclose(loss, -np.mean(weight * log_prob), rtol=1e-5)
    np.testing.assert_allclose(metrics["awr_weight"], weight.mean(), rtol=1e-5)
    np.testing.assert_allclose(metrics["advantage"], adv.mean(), rtol=1e-4, atol=1e-6)


def test_awr_update_trains_the_value_with_the_critic_loss():
    cfg = tiny(twin_critics=True, policy="gaussian", actor_loss="awr", bc_coef=1.0)
    state, new, metrics = updated(cfg)
    assert "value" in state.critic and leaves_all_changed(state.critic["value"], new.critic["value"])
    assert leaves_all_changed(state.actor, new.actor)
    assert np.isfinite(metrics["value_loss"]) and metrics["value_loss"] > 0
    # the reported critic loss is the critic's alone; the value's loss is separate (the optimiser sees their sum)
    assert {"critic_loss", "value_loss", "value_accuracy", "awr_weight", "advantage"} <= set(metrics)


def test_adaptive_entropy_moves_alpha_towards_target():
    # a 2-d tanh-Gaussian has entropy far above -100 nats: alpha must decrease
    state, new, metrics = updated(ADAPTIVE)
    assert float(metrics["entropy"]) > -100.0
    assert float(state.log_alpha) == 0.0  # alpha starts at 1
    assert float(new.log_alpha) < -1e-4  # one Adam step moves log alpha by ~alpha_lr = 3e-4
    assert float(metrics["alpha"]) < 1.0


# ----------------------------------------------------------------------------- tiny learning checks


def random_walks(num_episodes=64, length=40, seed=0):
    """1-D random walks: x_{t+1} = x_t + 0.2 a_t, a ~ U(-1, 1), x_0 ~ U(-4, 4)."""
    rng = np.random.default_rng(seed)
    obs, actions, last = [], [], []
    for _ in range(num_episodes):
        a = rng.uniform(-1, 1, size=(length, 1))
        x = rng.uniform(-4, 4) + np.concatenate([[0.0], np.cumsum(0.2 * a[:, 0])])
        obs.append(x[:, None])
        actions.append(np.concatenate([a, np.zeros((1, 1))]))
        last.append(np.arange(length + 1) == length)
    return from_episode_ends(np.concatenate(obs), np.concatenate(actions), np.concatenate(last))


def test_crl_critic_learns_on_random_walks():
    spec = EnvSpec(obs_dim=1, goal_dim=1, act_dim=1)
    batch_size, steps = 32, 300
    cfg = crl.CRLConfig(
        batch_size=batch_size, discount=0.9, hidden_sizes=(64, 64), repr_dim=16, actor_hidden_sizes=(16,),
        critic_lr=1e-3, actor_loss="awr", policy="gaussian",  # AWR: its value V(s, g) must learn too
    )
    cfg.validate()
    traj = random_walks()
    sampler = GoalSampler(cfg.discount)

    def eval_accuracy(critic, key):
        def one(k):
            b = sampler.sample(k, traj, spec, batch_size)
            logits = crl.critic_logits(cfg, critic, jnp.concatenate([b.obs, b.action], -1), b.goal).mean(0)
            return jnp.mean(jnp.argmax(logits, axis=1) == jnp.arange(batch_size))

        return jnp.mean(jax.vmap(one)(jax.random.split(key, 50)))

    @fast_jit
    def run(key):
        k_init, k_train, k_eval = jax.random.split(key, 3)
        state = crl.init(k_init, spec, cfg)

        def body(st, k):
            kb, ku = jax.random.split(k)
            return crl.update(st, sampler.sample(kb, traj, spec, batch_size), ku, cfg=cfg, spec=spec)

        new, metrics = jax.lax.scan(body, state, jax.random.split(k_train, steps))
        return (eval_accuracy(state.critic, k_eval), eval_accuracy(new.critic, k_eval), metrics["critic_loss"],
                metrics["value_accuracy"])

    before, after, loss_curve, value_acc = map(np.asarray, run(jax.random.PRNGKey(0)))
    chance = 1.0 / batch_size
    assert before < 4 * chance
    assert after > 5 * chance, (before, after)
    assert loss_curve[-20:].mean() < loss_curve[:20].mean()
    assert value_acc[:20].mean() < 4 * chance and value_acc[-20:].mean() > 4 * chance, value_acc


def test_gcbc_learns_sign_of_goal_direction():
    spec = EnvSpec(obs_dim=1, goal_dim=1, act_dim=1)
    cfg = gcbc.GCBCConfig(batch_size=64, actor_hidden_sizes=(32, 32), actor_lr=3e-3)
    cfg.validate()

    def make_batch(key, n):
        ks, kg = jax.random.split(key)
        s = jax.random.uniform(ks, (n, 1), minval=-1, maxval=1)
        g = jax.random.uniform(kg, (n, 1), minval=-1, maxval=1)
        return Batch(s, jnp.sign(g - s), s, g, g)

    @fast_jit
    def run(key):
        k_init, k_train, k_eval = jax.random.split(key, 3)
        state = gcbc.init(k_init, spec, cfg)

        def body(st, k):
            return gcbc.update(st, make_batch(k, cfg.batch_size), k, cfg=cfg, spec=spec)

        state, metrics = jax.lax.scan(body, state, jax.random.split(k_train, 400))
        b = make_batch(k_eval, 2000)
        mean, _ = gcbc.make_actor(cfg, spec).apply(state.actor, jnp.concatenate([b.obs, b.actor_goal], -1))
        return b, jnp.tanh(mean), metrics["actor_loss"]

    b, action, loss_curve = run(jax.random.PRNGKey(0))
    far = np.abs(np.asarray(b.actor_goal - b.obs))[:, 0] > 0.05
    correct = (np.sign(np.asarray(action)) == np.asarray(b.action))[:, 0]
    assert correct[far].mean() > 0.9
    assert loss_curve[-20:].mean() < loss_curve[:20].mean()


def test_mean_reg_adds_the_squared_pre_tanh_mean_penalty():
    """actor_loss(mean_reg=c) - actor_loss(0) = c * mean_i sum_a mean_ia^2, with mean from the actor itself."""
    c = 0.5
    base, reg = tiny(), tiny(mean_reg=c)
    state0, _, m0 = updated(base)
    state1, _, m1 = updated(reg)
    batch = random_batch(jax.random.PRNGKey(1))
    obs = np.concatenate([batch.obs, batch.obs])  # random_goals=0.5 doubles the actor batch
    goal = np.concatenate([batch.goal, np.roll(batch.goal, 1, axis=0)])
    mean, _ = crl.make_actor(base, SPEC).apply(state0.actor, np.concatenate([obs, goal], -1))
    expected = c * float(np.mean(np.sum(np.asarray(mean) ** 2, axis=-1)))
    assert expected > 0
    np.testing.assert_allclose(float(m1["actor_loss"]) - float(m0["actor_loss"]), expected, rtol=1e-4, atol=1e-6)
    assert float(m0["policy_mean_abs"]) == pytest.approx(float(np.mean(np.abs(mean))), rel=1e-5)
