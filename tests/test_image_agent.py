"""Image-based CRL (the paper's image tasks): the Atari CNN, how the critic and the actor use their CNNs, the jitted
update on uint8 images sampled from a uint8 replay store, the store's uint8 round trip through a checkpoint, and the
image preset.

Images are 64x64x3 (12288 uint8 values per observation) and every batch has 8 rows; the MLPs are tiny. Each jitted
function is compiled once (compiles dominate the runtime on a CPU).
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache, partial

import flax.linen as nn
import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np
import pytest

from crl.agents import common, crl
from crl.data.store import EpisodeRing, GoalSampler
from crl.nets import AtariCNN, cnn_out_dim
from crl.train.checkpoint import load_checkpoint, save_checkpoint
from crl.train.online import Learner, TrainConfig
from crl.train.presets import preset_config
from crl.types import Batch, EnvSpec

# XLA's CPU optimisation passes cost seconds per compile and buy little for these small networks.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
fast_jit = partial(jax.jit, compiler_options=FAST_COMPILE)
# The update's convolutions run ~10x slower without the backend optimisation level; keep it, skip the rest.
UPDATE_COMPILE = {"xla_llvm_disable_expensive_passes": True, "xla_cpu_use_fusion_emitters": False}

SHAPE = (64, 64, 3)
PIXELS = 64 * 64 * 3
SPEC = EnvSpec(obs_dim=PIXELS, goal_dim=PIXELS, act_dim=2, image_shape=SHAPE)
B = 8
HORIZON = 4


def image_cfg(**kw) -> crl.CRLConfig:
    """The paper's image config with tiny MLPs and batch 8."""
    cfg = crl.with_preset("paper-image", batch_size=B, hidden_sizes=(16, 16), repr_dim=8, actor_hidden_sizes=(16, 16),
                          **kw)
    cfg.validate()
    return cfg


@lru_cache
def _jitted_init(cfg: crl.CRLConfig):
    return fast_jit(partial(crl.init, spec=SPEC, cfg=cfg))


def init_state(cfg: crl.CRLConfig, seed: int = 0) -> crl.CRLState:
    return _jitted_init(cfg)(jax.random.key(seed))


def random_images(rng: np.random.Generator, *lead: int) -> np.ndarray:
    return rng.integers(0, 256, (*lead, PIXELS), dtype=np.uint8)


def labelled_episodes(rng: np.random.Generator, n: int, first_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` episodes of random uint8 images whose first two pixels are (episode id, time index)."""
    obs = random_images(rng, n, HORIZON + 1)
    obs[..., 0] = (first_id + np.arange(n))[:, None]
    obs[..., 1] = np.arange(HORIZON + 1)[None, :]
    actions = rng.uniform(-0.9, 0.9, (n, HORIZON, SPEC.act_dim)).astype(np.float32)
    return obs, actions


def filled_ring(seed: int = 0, episodes: int = 12) -> tuple[EpisodeRing, np.ndarray]:
    """A uint8 ring holding ``episodes`` labelled episodes, and their observations ``[E, T+1, PIXELS]``."""
    ring = EpisodeRing(episodes * HORIZON, HORIZON, PIXELS, SPEC.act_dim, np.uint8)
    obs, actions = labelled_episodes(np.random.default_rng(seed), episodes)
    ring.add(obs, actions)
    return ring, obs


def first_layer_passes(jaxpr, channels: int, found=None) -> list[int]:
    """The batch sizes of the forward passes of a CNN's first layer (Conv 32 8x8 on ``channels`` channels) in a
    jaxpr, sub-jaxprs included: convolutions with an [8, 8, channels, 32] kernel, or (the CPU's patch-matmul form)
    matmuls of [N, 16, 16, 64*channels] patches with a [64*channels, 32] kernel."""
    found = [] if found is None else found
    for eqn in jaxpr.eqns:
        lhs, rhs = (tuple(v.aval.shape) for v in eqn.invars[:2]) if len(eqn.invars) >= 2 else ((), ())
        if eqn.primitive.name == "conv_general_dilated" and rhs == (8, 8, channels, 32):
            found.append(lhs[0])
        if eqn.primitive.name == "dot_general" and rhs == (64 * channels, 32) and lhs[1:] == (16, 16, 64 * channels):
            found.append(lhs[0])
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            first_layer_passes(sub, channels, found)
    return found


# ----------------------------------------------------------------------------- the CNN


def test_atari_cnn_shape_and_pixel_scaling():
    """64x64x3 -> 8*8*64 = 4096 features; pixels are scaled by 1/255 inside (uint8 and float inputs agree); the
    stack is Conv 32 8x8/4, Conv 64 4x4/2, Conv 64 3x3/1 with SAME padding and ReLU after each (flax nn.Conv's
    parameters and outputs, whether run as XLA convolutions or as patch matmuls)."""
    cnn = AtariCNN(SHAPE)
    x = random_images(np.random.default_rng(0), 2, 3)  # two leading axes
    params = fast_jit(cnn.init)(jax.random.key(0), jnp.asarray(x[0]))

    def reference(p, img):  # the same convolutions on img / 255, written out
        h = jnp.asarray(img, jnp.float32).reshape(-1, *SHAPE) / 255.0
        for i, (feat, k, s) in enumerate(((32, 8, 4), (64, 4, 2), (64, 3, 1))):
            h = nn.relu(nn.Conv(feat, (k, k), (s, s), padding="SAME").apply({"params": p["params"][f"Conv_{i}"]}, h))
        return h.reshape(img.shape[0], -1)

    out, out_float, ref, unscaled, by_conv, by_patches = fast_jit(lambda p, x: (
        cnn.apply(p, x),
        cnn.apply(p, x.astype(jnp.float32)),
        reference(p, x.reshape(-1, PIXELS)),
        reference(p, x.reshape(-1, PIXELS).astype(jnp.float32) * 255.0),
        AtariCNN(SHAPE, impl="conv").apply(p, x),
        AtariCNN(SHAPE, impl="patches").apply(p, x),
    ))(params, jnp.asarray(x))
    assert cnn_out_dim(SHAPE) == 4096 and out.shape == (2, 3, 4096) and out.dtype == jnp.float32
    assert [p.shape for p in jax.tree.leaves(params["params"])] == [
        (32,), (8, 8, 3, 32), (64,), (4, 4, 32, 64), (64,), (3, 3, 64, 64)]
    np.testing.assert_allclose(np.asarray(out).reshape(6, -1), np.asarray(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out_float))
    np.testing.assert_allclose(np.asarray(by_conv), np.asarray(by_patches), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(out) >= 0) and np.mean(np.asarray(out) > 0) > 0.1  # ReLU features, not all dead
    # unscaled pixels would give features 255x larger (the stack is positively homogeneous with zero biases)
    np.testing.assert_allclose(np.asarray(unscaled), 255.0 * np.asarray(ref), rtol=1e-4, atol=1e-3)


# ----------------------------------------------------------------------------- critic and actor CNNs


def test_one_critic_cnn_feeds_phi_and_psi_of_both_twins():
    """The critic has one CNN (critic['cnn']) whose features are the inputs of phi([feat(s), a]) and psi(feat(g)) of
    both twins; perturbing it changes phi and psi, and critic_logits equals the hand-wired composition."""
    cfg = image_cfg(twin_critics=True)
    state = init_state(cfg)
    rng = np.random.default_rng(1)
    obs, goal = jnp.asarray(random_images(rng, B)), jnp.asarray(random_images(rng, B))
    action = jnp.asarray(rng.uniform(-1, 1, (B, 2)), jnp.float32)
    sa = jnp.concatenate([obs.astype(jnp.float32), action], -1)  # [obs, action] as critic_logits takes it

    critic = state.critic
    assert set(critic) == {"enc", "cnn"}
    kernels = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_flatten_with_path(critic)[0]
               if jax.tree_util.keystr(p).endswith("['kernel']")}
    convs = [k for k, shape in kernels.items() if len(shape) == 4]
    assert len(convs) == 3 and all(k.startswith("['cnn']") for k in convs)  # one CNN, and only one
    # the twins' MLP heads (leading axis 2) read the CNN's 4096 features: phi with the action appended
    assert kernels["['enc']['params']['phi']['Dense_0']['kernel']"] == (2, 4096 + 2, 16)
    assert kernels["['enc']['params']['psi']['Dense_0']['kernel']"] == (2, 4096, 16)

    @fast_jit
    def run(critic):
        phi, psi = crl.make_critic(cfg).apply(critic["enc"], *crl._critic_inputs(critic, sa, goal, SPEC))
        feat = crl.make_cnn(SPEC).apply
        by_hand = crl.make_critic(cfg).apply(
            critic["enc"],
            jnp.concatenate([feat(critic["cnn"], obs), action], -1),
            feat(critic["cnn"], goal),
        )
        return phi, psi, by_hand, crl.critic_logits(cfg, critic, sa, goal, SPEC)

    phi, psi, (phi_h, psi_h), logits = run(critic)
    np.testing.assert_allclose(phi, phi_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(psi, psi_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, jnp.einsum("eid,ejd->eij", phi, psi), rtol=1e-5, atol=1e-6)
    assert phi.shape == psi.shape == (2, B, 8) and not np.allclose(phi[0], phi[1])  # independent twin heads

    # scaling the last conv layer's kernel changes both phi (state side) and psi (goal side), for both twins
    bumped = jax.tree_util.tree_map_with_path(
        lambda p, x: x * 1.5 if "Conv_2" in jax.tree_util.keystr(p) else x, critic)
    phi2, psi2, _, _ = run(bumped)
    for e in range(2):
        assert np.max(np.abs(phi2[e] - phi[e])) > 1e-4 and np.max(np.abs(psi2[e] - psi[e])) > 1e-4
    with pytest.raises(ValueError, match="spec"):
        crl.critic_value(cfg, critic, sa, goal)  # pixels without spec cannot be encoded


def test_update_encodes_each_image_once_per_cnn():
    """In one update the critic's CNN runs once on the observations and once on the goals (the actor loss reuses
    those features; twins share them), and the actor's own CNN runs once on the 6-channel stacks (2B rows with
    random_goals=0.5). Only an actor goal that differs from the critic goal costs one more critic-CNN pass."""
    img = jax.ShapeDtypeStruct((B, PIXELS), jnp.uint8)
    batch = Batch(img, jax.ShapeDtypeStruct((B, 2), jnp.float32), img, img, img)
    for twin in (False, True):
        cfg = image_cfg(twin_critics=twin)
        state = jax.eval_shape(partial(crl.init, spec=SPEC, cfg=cfg), jax.random.key(0))
        for same_goal, critic_passes in ((True, 2), (False, 3)):
            def update(s, b, k):
                b = b._replace(actor_goal=b.goal) if same_goal else b
                return crl.update(s, b, k, cfg=cfg, spec=SPEC)

            jaxpr = jax.make_jaxpr(update)(state, batch, jax.random.key(1)).jaxpr
            assert first_layer_passes(jaxpr, 3) == [B] * critic_passes  # the critic's CNN, on B images each time
            assert first_layer_passes(jaxpr, 6) == [2 * B]  # the actor's CNN: 6 channels, once, on 2B stacks


# ----------------------------------------------------------------------------- the update, end to end


@pytest.fixture(scope="module")
def trained():
    """One jitted learner call (sampling from a uint8 ring inside the jit, then one update) from the same state
    with two different actors; plus the policy's actions on uint8 images."""
    cfg = image_cfg(twin_critics=True)
    learner = Learner(TrainConfig(crl=cfg, updates_per_call=1), SPEC)
    ring, _ = filled_ring()
    state = init_state(cfg)
    other_actor = init_state(cfg, seed=99).actor
    copy = partial(jax.tree.map, jnp.copy)  # train_call donates its state
    key = jax.random.key(1)
    # the Learner's own jitted call (in-jit sampling + update), compiled without XLA's slow CPU optimisation passes
    train_call = learner._train_call.lower(state, ring.traj, key, 1).compile(UPDATE_COMPILE)
    new, metrics = train_call(copy(state), ring.traj, key)
    new_other, _ = train_call(copy(state.replace(actor=other_actor)), ring.traj, key)
    rng = np.random.default_rng(3)
    obs, goal = random_images(rng, 5), random_images(rng, 5)
    actions = {}
    for d in (True, False):
        policy = learner.policy.lower(new.actor, obs, goal, key, deterministic=d).compile(FAST_COMPILE)
        actions[d] = np.asarray(policy(new.actor, obs, goal, key))
    return dict(cfg=cfg, state=state, new=new, new_other=new_other, other_actor=other_actor, metrics=metrics,
                actions=actions, ring=ring)


def test_image_update_runs_and_changes_every_parameter(trained):
    """batch 8 of 64x64x3 uint8 images, twin critics, adaptive alpha: finite metrics; every critic leaf (CNN and MLP
    heads), every actor leaf (its CNN and head) and alpha move."""
    metrics = {k: float(v) for k, v in trained["metrics"].items()}
    assert all(np.isfinite(v) for v in metrics.values()), metrics
    assert {"critic_loss", "actor_loss", "alpha", "alpha_loss", "entropy"} <= set(metrics)
    old, new = trained["state"], trained["new"]
    assert int(new.step) == 1
    for part in ("critic", "actor"):
        for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(getattr(old, part))[0],
                                jax.tree.leaves(getattr(new, part))):
            assert not np.array_equal(np.asarray(a), np.asarray(b)), f"{part}{jax.tree_util.keystr(path)} unchanged"
    assert float(new.log_alpha) != float(old.log_alpha)
    assert set(new.actor["params"]) == {"cnn", "head"}
    assert new.actor["params"]["cnn"]["Conv_0"]["kernel"].shape == (8, 8, 6, 32)  # state and goal stacked


def test_actor_loss_does_not_reach_the_critic(trained):
    """The critic's update does not depend on the actor: from the same state with another actor, the new critic
    (its CNN included) is bit-identical while the new actors differ."""
    a, b = trained["new"], trained["new_other"]
    for x, y in zip(jax.tree.leaves(a.critic), jax.tree.leaves(b.critic)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert not np.allclose(np.asarray(a.actor["params"]["cnn"]["Conv_0"]["kernel"]),
                           np.asarray(b.actor["params"]["cnn"]["Conv_0"]["kernel"]))
    # the actor CNN's parameters are not the critic's
    assert trained["state"].actor["params"]["cnn"]["Conv_0"]["kernel"].shape[2] == 6
    assert trained["state"].critic["cnn"]["params"]["Conv_0"]["kernel"].shape[2] == 3


def test_policy_acts_on_uint8_images_through_the_shared_action_path(trained):
    """common.act (the path training and evaluation use) takes uint8 observations and goals."""
    det, stoch = trained["actions"][True], trained["actions"][False]
    assert det.shape == stoch.shape == (5, 2) and det.dtype == np.float32
    assert np.all(np.abs(det) <= 1.0) and np.all(np.abs(stoch) <= 1.0) and not np.allclose(det, stoch)
    actor = crl.make_actor(trained["cfg"], SPEC)
    rng = np.random.default_rng(3)
    obs, goal = random_images(rng, 5), random_images(rng, 5)
    direct = fast_jit(partial(common.act, actor, "tanh_gaussian", deterministic=True))(
        trained["new"].actor, obs, goal, jax.random.key(0))
    np.testing.assert_allclose(np.asarray(direct), det, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- uint8 storage


def test_episode_ring_keeps_uint8_and_samples_the_stored_rows():
    ring, obs = filled_ring()
    assert ring.traj.obs.dtype == jnp.uint8 and ring.obs_dtype == np.uint8
    assert ring.state_dict()["obs"].dtype == np.uint8
    sample = fast_jit(lambda t, k: GoalSampler(0.9).sample(k, t, SPEC, B))
    batch = jax.tree.map(np.asarray, sample(ring.traj, jax.random.key(4)))
    for field in ("obs", "next_obs", "goal", "actor_goal"):
        assert getattr(batch, field).dtype == np.uint8 and getattr(batch, field).shape == (B, PIXELS)
    ep, t = batch.obs[:, 0].astype(int), batch.obs[:, 1].astype(int)
    assert len(set(ep)) == B  # distinct episodes
    np.testing.assert_array_equal(batch.obs, obs[ep, t])  # every pixel is the stored one
    np.testing.assert_array_equal(batch.next_obs, obs[ep, t + 1])
    g_t = batch.goal[:, 1].astype(int)
    np.testing.assert_array_equal(batch.goal[:, 0].astype(int), ep)
    assert np.all(g_t > t)
    np.testing.assert_array_equal(batch.goal, obs[ep, g_t])
    # a float32 buffer cannot be loaded into a uint8 store
    state = ring.state_dict()
    with pytest.raises(ValueError, match="uint8"):
        ring.load_state_dict({**state, "obs": state["obs"].astype(np.float32)})


def test_checkpoint_round_trips_a_uint8_store(tmp_path):
    ring, _ = filled_ring(seed=5, episodes=6)
    more, acts = labelled_episodes(np.random.default_rng(6), 3, first_id=6)
    ring.add(more, acts)  # wraps around: 9 episodes into 6 slots
    save_checkpoint(tmp_path, 9, {"x": jnp.zeros(2)}, {"store": ring.state_dict()})
    _, _, extra = load_checkpoint(tmp_path, {"x": jnp.zeros(2)})
    assert extra["store"]["obs"].dtype == np.uint8
    restored = EpisodeRing(6 * HORIZON, HORIZON, PIXELS, SPEC.act_dim, np.uint8)
    restored.load_state_dict(extra["store"])
    assert restored.traj.obs.dtype == jnp.uint8 and restored.episodes_added == 9
    for a, b in zip(ring.traj, restored.traj):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------- presets


def test_image_preset_is_picked_for_image_envs_only():
    image = preset_config("point_U_image")
    assert image.crl == crl.PRESETS["paper-image"]
    assert image.crl.adaptive_entropy and image.crl.target_entropy == 0.0
    assert image.updates_per_call == 16 and image.num_envs == 10
    assert replace(image.crl, adaptive_entropy=False) == crl.CRLConfig()  # otherwise the paper's online config
    state = preset_config("point_U")
    assert state.crl == crl.CRLConfig() and state.updates_per_call == 64 and state.num_envs == 4
    assert preset_config("point_U", preset="paper-image").crl.adaptive_entropy
    with pytest.raises(ValueError, match="H\\*W\\*C"):
        crl.init(jax.random.key(0), replace(SPEC, obs_dim=10, goal_dim=10), image_cfg())
