"""TD3+HER: the TD target and critic loss on hand-checkable numbers, HER rewards and goal mix, the policy delay and
Polyak targets, the deterministic actor's action path, config errors, the CLI flags, and a short learning run.

Unit tests use tiny networks compiled with XLA's cheap passes (compiles dominate their runtime on a CPU).
"""

from __future__ import annotations

import csv
import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import crl
from crl.agents import common, td3
from crl.cli import main
from crl.envs import make_vec_env
from crl.train import online
from crl.train.online import ConfigError, TrainConfig, evaluate
from crl.types import Batch, EnvSpec

FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}
fast_jit = partial(jax.jit, compiler_options=FAST_COMPILE)

# Goal space = observation coordinates 2:4; success within 0.5 of the goal.
SPEC = EnvSpec(obs_dim=4, goal_dim=2, act_dim=2, goal_start=2, goal_end=4, success_threshold=0.5)
B = 8


def tiny(**kw) -> td3.TD3Config:
    cfg = td3.TD3Config(**{"batch_size": B, "hidden_sizes": (16, 16), "actor_hidden_sizes": (16, 16), **kw})
    cfg.validate()
    return cfg


def init_state(cfg: td3.TD3Config, seed: int = 0) -> td3.TD3State:
    return fast_jit(lambda k: td3.init(k, SPEC, cfg))(jax.random.key(seed))


def random_batch(key, goal=None) -> Batch:
    k = jax.random.split(key, 4)
    next_obs = jax.random.uniform(k[2], (B, SPEC.obs_dim), minval=0.0, maxval=10.0)
    goal = SPEC.obs_to_goal(next_obs) if goal is None else goal
    obs = jax.random.normal(k[0], (B, SPEC.obs_dim))
    return Batch(obs, jax.random.uniform(k[1], (B, SPEC.act_dim), minval=-1, maxval=1), next_obs, goal, goal)


def constant_critic(params, values):
    """Critic params whose twin Q_e(s, a, g) is ``values[e]`` for every input: zero weights, output bias values[e]."""

    def leaf(path, x):
        is_out_bias = path[-1].key == "bias" and x.shape[-1] == 1
        return jnp.broadcast_to(jnp.asarray(values, x.dtype)[:, None], x.shape) if is_out_bias else jnp.zeros_like(x)

    return jax.tree_util.tree_map_with_path(leaf, params)


def test_td_target_takes_twin_min_and_clips_to_return_range():
    reward = jnp.array([1.0, 0.0, 1.0, 0.0])
    next_q = jnp.array([[5.0, 200.0, -3.0, 10.0], [4.0, 150.0, -1.0, 12.0]])  # [E=2, B=4]
    target = td3.td_target(reward, next_q, 0.99)
    # 1 + .99*4 (never terminal: bootstraps on r=1); min(.99*150, 1/(1-.99) = 100); max(1 - .99*3, 0); .99*10.
    np.testing.assert_allclose(target, [4.96, 100.0, 0.0, 9.9], rtol=1e-5)
    np.testing.assert_allclose(td3.td_target(jnp.zeros(1), jnp.array([[-5.0], [-2.0]]), 0.99), [0.0])


@pytest.mark.parametrize(
    "target_q, expected_y",
    [
        ((40.0, 150.0), (1 + 0.99 * 40, 0.99 * 40)),  # the smaller twin, reward 1 on row 0, 0 on row 1
        ((150.0, 200.0), (100.0, 100.0)),  # clipped at 1 / (1 - gamma)
        ((-5.0, -3.0), (0.0, 0.0)),  # clipped at 0
    ],
)
def test_critic_loss_matches_hand_computed_td_error(target_q, expected_y):
    cfg = tiny(batch_size=2)
    state = init_state(cfg)
    q_values = (3.0, 5.0)
    critic = constant_critic(state.critic, q_values)
    target = constant_critic(state.target_critic, target_q)
    next_obs = jnp.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    goal = jnp.array([[1.2, 1.0], [5.0, 5.0]])  # row 0 within 0.5 of obs_to_goal(next_obs), row 1 far
    batch = Batch(jnp.ones((2, 4)), jnp.zeros((2, 2)), next_obs, goal, goal)
    loss_fn = fast_jit(partial(td3.critic_loss, cfg, SPEC))
    loss, metrics = loss_fn(critic, target, state.target_actor, batch, goal, jax.random.key(1))
    y = np.array(expected_y)
    expected = sum(np.mean((q - y) ** 2) for q in q_values)  # sum over twins of the mean squared TD error
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["reward"], 0.5)
    np.testing.assert_allclose(metrics["td_target"], y.mean(), rtol=1e-5)


def test_her_reward_is_one_exactly_when_next_state_reaches_goal():
    next_obs = jnp.array([[9.0, 9.0, 1.0, 2.0]] * 5)
    goal = jnp.array(
        [
            [1.0, 2.0],  # obs_to_goal(next_obs) itself
            [1.3, 2.0],  # 0.3 away: inside the 0.5 radius
            [1.0, 2.6],  # 0.6 away
            [9.0, 9.0],  # the observation's other coordinates, not its goal slice
            [-40.0, 7.0],  # far
        ]
    )
    np.testing.assert_array_equal(td3.her_rewards(SPEC, next_obs, goal), [1.0, 1.0, 0.0, 0.0, 0.0])


def test_her_goal_mix_gives_a_fraction_of_rows_other_rows_goals():
    goal = jnp.arange(2 * B, dtype=jnp.float32).reshape(B, 2)
    mixed = td3.mix_goals(goal, 0.25)
    np.testing.assert_array_equal(mixed[:2], goal[jnp.array([B - 1, 0])])  # the previous rows' goals
    np.testing.assert_array_equal(mixed[2:], goal[2:])
    np.testing.assert_array_equal(td3.mix_goals(goal, 0.0), goal)
    # Inside the update: a batch whose own goals are all reached has reward 1 on exactly the unmixed rows.
    far_apart = jnp.stack([jnp.arange(B) * 10.0, jnp.zeros(B)], -1)
    batch = random_batch(jax.random.key(0))._replace(next_obs=jnp.concatenate([jnp.zeros((B, 2)), far_apart], -1))
    batch = batch._replace(goal=far_apart, actor_goal=far_apart)
    for frac, reward in ((0.0, 1.0), (0.5, 0.5)):
        cfg = tiny(her_random_goals=frac)
        state = init_state(cfg)
        _, metrics = fast_jit(partial(td3.update, cfg=cfg, spec=SPEC))(state, batch, jax.random.key(1))
        np.testing.assert_allclose(metrics["reward"], reward)


def test_policy_delay_updates_actor_and_targets_every_second_step():
    cfg = tiny(tau=0.1)
    update = fast_jit(partial(td3.update, cfg=cfg, spec=SPEC))
    s0 = init_state(cfg)
    batch = random_batch(jax.random.key(1))
    s1, _ = update(s0, batch, jax.random.key(2))
    s2, _ = update(s1, batch, jax.random.key(3))
    s3, _ = update(s2, batch, jax.random.key(4))

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    for before, after, actor_step in ((s0, s1, False), (s1, s2, True), (s2, s3, False)):
        assert not same(before.critic, after.critic)  # the critic learns every step
        assert same(before.actor, after.actor) != actor_step
        assert same(before.target_actor, after.target_actor) != actor_step
        assert same(before.target_critic, after.target_critic) != actor_step
    # Polyak averaging on the actor step: target <- (1 - tau) target + tau * online.
    for t1, t2, a2 in zip(*(jax.tree.leaves(x) for x in (s1.target_actor, s2.target_actor, s2.actor))):
        np.testing.assert_allclose(t2, 0.9 * t1 + 0.1 * a2, rtol=1e-5, atol=1e-7)
    for t1, t2, c2 in zip(*(jax.tree.leaves(x) for x in (s1.target_critic, s2.target_critic, s2.critic))):
        np.testing.assert_allclose(t2, 0.9 * t1 + 0.1 * c2, rtol=1e-5, atol=1e-7)
    assert int(s3.step) == 3


def test_deterministic_actor_action_path():
    cfg = tiny(expl_noise=0.3)
    actor = td3.make_actor(cfg, SPEC)
    params = fast_jit(actor.init)(jax.random.key(0), jnp.zeros((1, SPEC.obs_dim + SPEC.goal_dim)))
    obs, goal = jax.random.normal(jax.random.key(1), (4000, 4)), jax.random.normal(jax.random.key(2), (4000, 2))
    mean, log_std = actor.apply(params, jnp.concatenate([obs, goal], -1))
    np.testing.assert_allclose(log_std, np.log(0.3), rtol=1e-6)
    act = fast_jit(partial(common.act, actor, cfg.policy), static_argnames="deterministic")
    greedy = act(params, obs, goal, jax.random.key(3), deterministic=True)
    np.testing.assert_allclose(greedy, jnp.tanh(mean), rtol=1e-6)
    noisy = np.asarray(act(params, obs, goal, jax.random.key(3), deterministic=False))
    assert np.all(np.abs(noisy) <= 1.0) and np.any(np.abs(noisy) == 1.0)  # clipped to the action box
    # With zero weights tanh(mean) = 0 and the exploration action is N(0, 0.3^2) (clipping at 3.3 std is negligible).
    zero = jax.tree.map(jnp.zeros_like, params)
    noise = np.asarray(act(zero, obs, goal, jax.random.key(4), deterministic=False))
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 0.3) < 0.02


@pytest.mark.parametrize(
    "field, value",
    [
        ("batch_size", 1),
        ("discount", 1.0),
        ("her_random_goals", 1.5),
        ("expl_noise", 0.0),
        ("policy_noise", -0.1),
        ("noise_clip", -1.0),
        ("policy_delay", 0),
        ("tau", 0.0),
        ("critic_lr", 0.0),
        ("activation", "sigmoid"),
        ("hidden_sizes", (16, -1)),
    ],
)
def test_bad_config_names_the_field(field, value):
    cfg = td3.TD3Config(**{field: value})
    with pytest.raises(ValueError, match=field):
        cfg.validate()
    with pytest.raises(ConfigError, match=f"td3: {field}"):
        online.validate(TrainConfig(env="point_Small", agent="td3", td3=cfg))


def test_env_without_success_test_and_offline_are_refused():
    with pytest.raises(ValueError, match="distance-threshold success test"):
        td3.init(jax.random.key(0), EnvSpec(4, 2, 2, 2, 4), tiny())
    with pytest.raises(ValueError, match="image envs need obs_dim == goal_dim == H\\*W\\*C = 8"):
        td3.check_spec(EnvSpec(12, 12, 2, success_threshold=1.0, image_shape=(2, 2, 2)))
    online.validate(TrainConfig(env="point_Small_image", agent="td3"), make_vec_env("point_Small_image", 1))
    with pytest.raises(ConfigError, match="td3 trains online only"):
        online.validate(TrainConfig(env="pointmaze-medium-navigate-v0", agent="td3"))


def test_cli_lists_td3_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--agent", "td3", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--td3.policy-delay", "--td3.expl-noise", "--td3.her-random-goals", "--td3.noise-clip"):
        assert flag in out
    assert "Update the actor and the target networks every" in out


def test_short_run_learns_point_small(tmp_path):
    """~35 s on 2 CPU cores. A random walk on the 4x4 maze passes within 2 of the goal in ~96% of episodes, so the
    any-step success says little; ending the episode at the goal is what a random policy cannot do (~45%)."""
    cfg = TrainConfig(
        env="point_Small",
        agent="td3",
        steps=8000,
        warmup_steps=2000,
        eval_every=4000,
        eval_episodes=200,
        updates_per_step=1.0,
        progress=False,
        tensorboard=False,
        run_dir=tmp_path / "learn",
        td3=td3.TD3Config(batch_size=128, hidden_sizes=(64, 64), actor_hidden_sizes=(64, 64)),
    )
    summary = online.train(cfg)
    env = make_vec_env("point_Small", 200)
    rng = np.random.default_rng(0)
    seed = cfg.seed * 1_000_003 + cfg.steps + 7  # the same episodes as the final evaluation
    random = evaluate(env, lambda o, g: rng.uniform(-1, 1, (len(o), 2)), seed=seed)
    assert summary["success_final"] >= random["success_final"] + 0.35, (summary, random)
    assert summary["success"] >= random["success"] - 0.02, (summary, random)
    assert summary["min_distance"] < 0.8 * random["min_distance"], (summary, random)

    # The run directory has what a crl run has: config with only the td3 section, evals, checkpoints, summary.
    run_dir = tmp_path / "learn"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["agent"] == "td3" and config["td3"]["hidden_sizes"] == [64, 64] and "crl" not in config
    with open(run_dir / "eval.csv", newline="") as f:
        assert [int(r["env_steps"]) for r in csv.DictReader(f)] == [0, 4000, 8000]
    assert json.loads((run_dir / "summary.json").read_text())["agent"] == "td3"
    run = crl.load_run(run_dir)
    obs, goal = np.array([0.5, 0.5], np.float32), np.array([3.5, 3.5], np.float32)
    action = run.policy(obs, goal)
    assert action.shape == (2,) and np.all(np.abs(action) <= 1)
    q = run.critic(obs, action, goal)
    assert np.shape(q) == () and -1.0 < q < 101.0  # returns of 0/1 rewards lie in [0, 1/(1 - gamma)]


IMAGE = (16, 16, 3)
IMAGE_SPEC = EnvSpec(obs_dim=768, goal_dim=768, act_dim=2, image_shape=IMAGE)


def test_image_her_reward_is_pixel_equality():
    rng = np.random.default_rng(0)
    next_obs = rng.integers(0, 256, (3, 768), dtype=np.uint8)
    goal = next_obs.copy()
    goal[1, 100] ^= 1  # one pixel value off by one
    goal[2] = rng.integers(0, 256, 768, dtype=np.uint8)
    np.testing.assert_array_equal(td3.her_rewards(IMAGE_SPEC, jnp.asarray(next_obs), jnp.asarray(goal)), [1, 0, 0])


def test_image_td3_twin_cnns_learn_the_pixel_reward():
    """Each twin critic and the actor have their own CNN; on a fixed batch where half the goals are the next image,
    the critic learns higher Q for those rows, and every parameter moves."""
    cfg = tiny(her_random_goals=0.0, hidden_sizes=(32,), actor_hidden_sizes=(16,))
    state = fast_jit(lambda k: td3.init(k, IMAGE_SPEC, cfg))(jax.random.key(0))
    assert "cnn" in state.critic["params"] and "cnn" in state.actor["params"]
    kernels = state.critic["params"]["cnn"]["Conv_0"]["kernel"]
    assert kernels.shape[0] == 2 and not np.allclose(kernels[0], kernels[1])  # two independent CNNs
    rng = np.random.default_rng(1)
    obs, next_obs = (rng.integers(0, 256, (B, 768), dtype=np.uint8) for _ in range(2))
    goal = np.where(np.arange(B)[:, None] % 2 == 0, next_obs, rng.integers(0, 256, (B, 768), dtype=np.uint8))
    action = rng.uniform(-1, 1, (B, 2)).astype(np.float32)
    batch = Batch(*map(jnp.asarray, (obs, action, next_obs, goal, goal)))
    update = fast_jit(partial(td3.update, cfg=cfg, spec=IMAGE_SPEC))
    new = state
    for i in range(60):
        new, metrics = update(new, batch, jax.random.key(i))
    np.testing.assert_allclose(metrics["reward"], 0.5)
    q = np.asarray(fast_jit(td3.make_critic(cfg, IMAGE_SPEC).apply)(
        new.critic, jnp.concatenate([batch.obs, batch.action, batch.goal], -1)))
    assert q[:, 0::2].mean() > q[:, 1::2].mean() + 0.5
    for before, after in ((state.critic, new.critic), (state.actor, new.actor)):
        moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), before, after)
        assert all(jax.tree.leaves(moved))
