"""Statistical and structural checks of crl.data.store: the truncated geometric law, goal relabelling within
episodes, episode choice, and the FIFO episode ring.

Observations encode where they come from, ``obs = [episode id, time index, 1000 * id + t]``, so every sampled field
can be traced back to its row. Distribution checks use chi-square tests with fixed seeds; each one is paired with a
negative control (a slightly wrong law that the same test must reject), so the tests are known to have power.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from crl.data.store import (
    EpisodeRing,
    GoalSampler,
    Trajectories,
    from_episode_ends,
    sample_episodes,
    truncated_geometric,
)
from crl.types import EnvSpec

# obs = [episode id, t, 1000 * id + t]; goals are the first two entries (exercises the goal slice).
SPEC = EnvSpec(obs_dim=3, goal_dim=2, act_dim=1, goal_start=0, goal_end=2)
P_MIN = 1e-3  # the fixed-seed tests below sit far above this; the negative controls far below
# XLA's CPU optimisation passes take seconds on these vmapped samplers and buy nothing for a few thousand rows.
FAST_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
    "xla_cpu_use_fusion_emitters": False,
}


# ----------------------------------------------------------------------------- helpers


def geometric_pmf(gamma: float, k_max: int) -> np.ndarray:
    """P(k) proportional to gamma^(k-1) on k = 1..k_max, in float64; index 0 is k = 1."""
    p = gamma ** np.arange(k_max, dtype=np.float64)
    return p / p.sum()


def uniform_pmf(k_max: int) -> np.ndarray:
    return np.full(k_max, 1.0 / k_max)


def _merge_small(observed: np.ndarray, expected: np.ndarray, min_expected: float = 5.0):
    """Merges adjacent bins (from the left) until each has an expected count >= min_expected."""
    obs_out, exp_out, o_acc, e_acc = [], [], 0.0, 0.0
    for o, e in zip(observed, expected):
        o_acc, e_acc = o_acc + o, e_acc + e
        if e_acc >= min_expected:
            obs_out.append(o_acc)
            exp_out.append(e_acc)
            o_acc, e_acc = 0.0, 0.0
    if e_acc > 0 or o_acc > 0:
        if exp_out:
            obs_out[-1] += o_acc
            exp_out[-1] += e_acc
        else:
            obs_out.append(o_acc)
            exp_out.append(e_acc)
    return np.asarray(obs_out), np.asarray(exp_out)


def chi2_stat(observed, expected) -> tuple[float, int]:
    """Pearson chi-square statistic and its number of bins after merging small bins."""
    o, e = _merge_small(np.asarray(observed, np.float64), np.asarray(expected, np.float64))
    return float(np.sum((o - e) ** 2 / e)), len(o)


def chi2_pvalue(observed, expected) -> float:
    stat, bins = chi2_stat(observed, expected)
    if bins < 2:
        return 1.0
    return float(stats.chi2.sf(stat, bins - 1))


def conditional_pvalue(offsets: np.ndarray, remaining: np.ndarray, pmf_fn) -> float:
    """Chi-square test that ``offsets`` follows ``pmf_fn(r)`` given each row's ``remaining = r``: one contingency
    of (r, k) cells, one degree of freedom lost per r group."""
    total_stat, total_dof = 0.0, 0
    for r in np.unique(remaining):
        sel = offsets[remaining == r]
        counts = np.bincount(sel - 1, minlength=r)[:r]
        assert counts.sum() == len(sel), f"offset outside 1..{r}"
        stat, bins = chi2_stat(counts, len(sel) * pmf_fn(r))
        total_stat += stat
        total_dof += bins - 1
    return float(stats.chi2.sf(total_stat, max(total_dof, 1)))


def episode_rows(lengths, first_id=1):
    """Flat rows for episodes of the given lengths (transitions): obs [R, 3], actions [R, 1], last-row flags [R].
    Episode ids start at 1, so all-zero (padding or empty-slot) rows are recognisable."""
    obs, actions, last = [], [], []
    for e, length in enumerate(lengths, start=first_id):
        for t in range(length + 1):
            obs.append([e, t, 1000 * e + t])
            actions.append([1000 * e + t if t < length else -1])
            last.append(t == length)
    return np.asarray(obs, np.float32), np.asarray(actions, np.float32), np.asarray(last)


def ring_episodes(ids, horizon):
    """Whole episodes for EpisodeRing.add: obs [N, T+1, 3], actions [N, T, 1], encoded as in ``episode_rows``."""
    t = np.arange(horizon + 1)
    obs = np.stack([np.stack([np.full_like(t, e), t, 1000 * e + t], -1) for e in ids]).astype(np.float32)
    actions = np.stack([(1000 * e + t[:-1])[:, None] for e in ids]).astype(np.float32)
    return obs, actions


# Every store below is padded to the same shape and sampled with the same sampler and batch size, so the sampler
# is compiled once (compiles dominate this file's runtime). Padding adds empty episode slots (ep_len 0), which
# the sampler must never pick.
R_PAD, E_PAD, BATCH, NUM_BATCHES, GAMMA = 4096, 64, 8, 4000, 0.8
SAMPLER = GoalSampler(GAMMA, "uniform")


def padded_store(lengths) -> Trajectories:
    traj = from_episode_ends(*episode_rows(lengths))
    rows, eps = traj.obs.shape[0], traj.ep_len.shape[0]
    assert rows <= R_PAD and eps <= E_PAD
    return Trajectories(
        jnp.pad(traj.obs, ((0, R_PAD - rows), (0, 0))),
        jnp.pad(traj.actions, ((0, R_PAD - rows), (0, 0))),
        jnp.pad(traj.ep_start, (0, E_PAD - eps), constant_values=rows),
        jnp.pad(traj.ep_len, (0, E_PAD - eps)),
    )


@partial(jax.jit, static_argnums=(2, 3), compiler_options=FAST_COMPILE)
def _sample_many(keys, traj, sampler, batch_size):
    return jax.vmap(lambda k: sampler.sample(k, traj, SPEC, batch_size))(keys)


def sample_many(traj, sampler=SAMPLER, batch_size=BATCH, seed=0):
    """``NUM_BATCHES`` batches as numpy arrays with shapes [NUM_BATCHES, batch_size, ...]."""
    keys = jax.random.split(jax.random.PRNGKey(seed), NUM_BATCHES)
    return jax.tree.map(np.asarray, _sample_many(keys, traj, sampler, batch_size))


def lengths_by_id(lengths) -> dict[int, int]:
    return dict(enumerate(lengths, start=1))


def check_rows(batch, lengths: dict[int, int]):
    """Structural checks every sampled row must pass; returns (episode, t, goal_t, actor_goal_t, remaining)."""
    ep = batch.obs[..., 0].astype(int)
    t = batch.obs[..., 1].astype(int)
    length = np.vectorize(lengths.get)(ep)
    np.testing.assert_array_equal(batch.obs[..., 2], 1000 * ep + t)
    assert np.all((t >= 0) & (t < length)), "state time outside 0..len-1"
    # next observation: the next row of the same episode
    np.testing.assert_array_equal(batch.next_obs[..., 0], ep)
    np.testing.assert_array_equal(batch.next_obs[..., 1], t + 1)
    # the action is the one stored at this row
    np.testing.assert_array_equal(batch.action[..., 0], 1000 * ep + t)
    # goals: same episode, strictly in the future, at most the final observation
    assert batch.goal.shape[-1] == SPEC.goal_dim
    for g in (batch.goal, batch.actor_goal):
        np.testing.assert_array_equal(g[..., 0], ep)
        assert np.all(g[..., 1] > t), "goal offset must be >= 1"
        assert np.all(g[..., 1] <= length), "goal beyond the episode's final observation"
    return ep, t, batch.goal[..., 1].astype(int), batch.actor_goal[..., 1].astype(int), length - t


# ----------------------------------------------------------------------------- truncated_geometric

N_GEOM = 200_000


@pytest.mark.parametrize("k_max", [1, 5, 20])
def test_truncated_geometric_matches_pmf(k_max):
    gamma = 0.9
    k = np.asarray(truncated_geometric(jax.random.PRNGKey(k_max), gamma, jnp.full((N_GEOM,), k_max, jnp.int32)))
    assert k.dtype == np.int32
    assert k.min() >= 1 and k.max() <= k_max
    freq = np.bincount(k - 1, minlength=k_max) / N_GEOM
    pmf = geometric_pmf(gamma, k_max)
    # max abs deviation: 5 standard errors of a binomial proportion
    tol = 5.0 * np.sqrt(pmf * (1 - pmf) / N_GEOM).max() + 1e-12
    assert np.max(np.abs(freq - pmf)) <= tol
    assert chi2_pvalue(freq * N_GEOM, pmf * N_GEOM) > P_MIN
    if k_max > 1:  # negative control: a slightly different gamma is rejected
        assert chi2_pvalue(freq * N_GEOM, geometric_pmf(0.88, k_max) * N_GEOM) < 1e-8
        assert k.max() == k_max  # the truncation point itself is reachable


@pytest.mark.parametrize("gamma", [0.9, 0.99])
def test_truncated_geometric_mean_with_large_k(gamma):
    k = np.asarray(truncated_geometric(jax.random.PRNGKey(1), gamma, jnp.full((N_GEOM,), 5000, jnp.int32)))
    assert k.min() >= 1 and k.max() <= 5000
    mean, sd = 1.0 / (1.0 - gamma), np.sqrt(gamma) / (1.0 - gamma)
    assert abs(k.mean() - mean) < 5 * sd / np.sqrt(N_GEOM)


def test_truncated_geometric_per_row_bounds():
    """Mixed K in one call: each row respects its own bound and follows its own truncated law."""
    key_k, key_s = jax.random.split(jax.random.PRNGKey(2))
    k_max = jax.random.randint(key_k, (N_GEOM,), 1, 12)
    k = np.asarray(truncated_geometric(key_s, 0.7, k_max))
    k_max = np.asarray(k_max)
    assert np.all((k >= 1) & (k <= k_max))
    assert conditional_pvalue(k, k_max, lambda r: geometric_pmf(0.7, r)) > P_MIN
    assert conditional_pvalue(k, k_max, lambda r: geometric_pmf(0.65, r)) < 1e-8


# ----------------------------------------------------------------------------- GoalSampler

LENGTHS = [1, 2, 3, 4, 5, 7, 9, 12, 15, 20, 25, 30, 40, 50, 60, 80]  # 16 episodes >= BATCH


def test_from_episode_ends_layout():
    traj = from_episode_ends(*episode_rows(LENGTHS))
    np.testing.assert_array_equal(np.asarray(traj.ep_len), LENGTHS)
    np.testing.assert_array_equal(np.asarray(traj.ep_start), np.concatenate([[0], np.cumsum(np.add(LENGTHS, 1))[:-1]]))
    assert traj.num_transitions == sum(LENGTHS)
    obs = np.asarray(traj.obs)
    for e, (s, n) in enumerate(zip(np.asarray(traj.ep_start), LENGTHS), start=1):
        np.testing.assert_array_equal(obs[s : s + n + 1, 0], e)
        np.testing.assert_array_equal(obs[s : s + n + 1, 1], np.arange(n + 1))


def test_from_episode_ends_rejects_unterminated_rows():
    obs, actions, last = episode_rows([3, 4])
    last[-1] = False
    with pytest.raises(ValueError, match="last row"):
        from_episode_ends(obs, actions, last)
    with pytest.raises(ValueError, match="last row"):
        from_episode_ends(obs, actions, np.zeros(len(obs), bool))


@pytest.fixture(scope="module")
def varied_batch():
    """Samples from 16 variable-length episodes (plus 48 empty slots)."""
    return sample_many(padded_store(LENGTHS))


def test_goals_stay_in_episode_and_follow_truncated_geometric(varied_batch):
    lengths = lengths_by_id(LENGTHS)
    ep, t, goal_t, actor_t, remaining = check_rows(varied_batch, lengths)
    # 16 >= 8 episodes stored: rows of one batch come from distinct episodes
    assert all(len(set(row)) == BATCH for row in ep)
    assert set(np.unique(ep)) == set(lengths)  # every episode, and only real ones (never a padded slot)
    # the final observation of an episode is a possible goal (not only for length-1 episodes)
    final = goal_t == np.vectorize(lengths.get)(ep)
    assert final[remaining > 1].any()
    offsets, remaining = (goal_t - t).ravel(), remaining.ravel()
    assert conditional_pvalue(offsets, remaining, lambda r: geometric_pmf(GAMMA, r)) > P_MIN
    # negative controls: a different discount, and the uniform law, are both rejected
    assert conditional_pvalue(offsets, remaining, lambda r: geometric_pmf(GAMMA - 0.05, r)) < 1e-8
    assert conditional_pvalue(offsets, remaining, uniform_pmf) < 1e-8


def test_uniform_actor_goals(varied_batch):
    ep, t, goal_t, actor_t, remaining = check_rows(varied_batch, lengths_by_id(LENGTHS))
    offsets, remaining = (actor_t - t).ravel(), remaining.ravel()
    assert conditional_pvalue(offsets, remaining, uniform_pmf) > P_MIN
    assert conditional_pvalue(offsets, remaining, lambda r: geometric_pmf(0.95, r)) < 1e-8
    # drawn independently of the critic's goal
    assert np.mean(actor_t != goal_t) > 0.3


def test_same_actor_goals():
    lengths = [3, 6, 2, 9]
    traj = from_episode_ends(*episode_rows(lengths))
    keys = jax.random.split(jax.random.PRNGKey(7), 500)
    batch = jax.tree.map(np.asarray, _sample_many(keys, traj, GoalSampler(GAMMA, "same"), 4))
    check_rows(batch, lengths_by_id(lengths))
    np.testing.assert_array_equal(batch.actor_goal, batch.goal)


def test_episodes_proportional_to_length_with_replacement():
    """Fewer valid episodes than the batch: drawn with replacement, exactly proportional to length, t uniform."""
    lengths = [3, 10, 25, 50, 100, 12]
    batch = sample_many(padded_store(lengths), seed=2)
    ep, t, *_ = check_rows(batch, lengths_by_id(lengths))
    counts = np.bincount(ep.ravel() - 1, minlength=len(lengths))
    assert counts.sum() == ep.size
    p = np.asarray(lengths) / sum(lengths)
    assert chi2_pvalue(counts, p * ep.size) > P_MIN
    assert chi2_pvalue(counts, np.full(len(lengths), ep.size / len(lengths))) < 1e-8  # not uniform over episodes
    # within an episode, the time index is uniform over 0..len-1 (so rows are uniform over transitions)
    for e in (4, 5):
        sel, n = t[ep == e], lengths[e - 1]
        assert chi2_pvalue(np.bincount(sel, minlength=n), np.full(n, len(sel) / n)) > P_MIN


def test_episodes_roughly_proportional_to_length_when_distinct():
    """Many more episodes than the batch: distinct episodes per batch, frequency close to length / total.

    Gumbel top-k draws without replacement, so inclusion is only approximately proportional; the distortion
    grows with batch / episodes (at 8 of 60 here, short episodes are over-sampled by ~10-20%)."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 100, size=60).tolist()
    batch = sample_many(padded_store(lengths), seed=3)
    ep, *_ = check_rows(batch, lengths_by_id(lengths))
    assert all(len(set(row)) == BATCH for row in ep)
    freq = np.bincount(ep.ravel() - 1, minlength=len(lengths)) / ep.size
    p = np.asarray(lengths) / sum(lengths)
    assert 0.5 * np.abs(freq - p).sum() < 0.05  # total variation
    assert np.corrcoef(freq, p)[0, 1] > 0.98
    # long episodes are picked far more often than short ones (by length, within 20%)
    short, long_ = np.argsort(lengths)[:20], np.argsort(lengths)[-20:]
    ratio = freq[long_].sum() / freq[short].sum()
    expected = p[long_].sum() / p[short].sum()
    assert abs(ratio / expected - 1.0) < 0.2 and ratio > 2.5


@partial(jax.jit, static_argnums=1, compiler_options=FAST_COMPILE)
def _sample_episodes_many(ep_len, n):
    keys = jax.random.split(jax.random.PRNGKey(4), 3000)
    return jax.vmap(lambda k: sample_episodes(k, ep_len, n))(keys)


@pytest.mark.parametrize(
    "ep_len, n",
    [
        ([0, 5, 0, 3, 7, 0, 2, 9, 0, 4, 1, 0], 4),  # 7 valid >= 4: distinct episodes
        ([0, 5, 0, 3, 0, 0, 0, 0, 0, 6, 0, 0], 8),  # 3 valid < 8 <= 12 slots: with replacement
        ([0, 5, 2], 8),  # fewer slots than the batch: with replacement
        ([0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0], 4),  # a single valid episode
        ([4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 4),
    ],
)
def test_sample_episodes_never_picks_empty_slots(ep_len, n):
    idx = np.asarray(_sample_episodes_many(jnp.asarray(ep_len, jnp.int32), n))
    assert idx.shape == (3000, n) and idx.dtype == np.int32
    lens = np.asarray(ep_len)
    assert np.all(lens[idx] > 0), "sampled an empty episode slot"
    valid = np.flatnonzero(lens)
    counts = np.bincount(idx.ravel(), minlength=len(lens))[valid]
    if len(valid) >= n:
        assert all(len(set(row)) == n for row in idx)
    else:  # with replacement: exactly proportional to length
        assert chi2_pvalue(counts, lens[valid] / lens.sum() * idx.size) > P_MIN
    assert np.all(counts > 0), "a valid episode was never sampled"


# ----------------------------------------------------------------------------- EpisodeRing

H = 4


def test_ring_fifo_overwrites_oldest():
    ring = EpisodeRing(capacity=10 * H + 3, horizon=H, obs_dim=3, act_dim=1)  # 10 slots
    assert ring.num_slots == 10 and ring.num_transitions == 0 and ring.traj.num_transitions == 0
    added = []
    for chunk in ([1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]):  # the third chunk wraps around
        ring.add(*ring_episodes(chunk, H))
        added += chunk
        newest = added[-10:]
        assert ring.num_transitions == len(newest) * H == ring.traj.num_transitions
        stored = np.asarray(ring.traj.obs)[np.asarray(ring.traj.ep_start)[np.asarray(ring.traj.ep_len) > 0], 0]
        assert sorted(stored.astype(int)) == sorted(newest)
    assert ring.episodes_added == 16
    np.testing.assert_array_equal(np.asarray(ring.traj.ep_len), [H] * 10)
    # FIFO slot order: 11..16 overwrote slots 0..5; 7..10 survive in slots 6..9
    np.testing.assert_array_equal(
        np.asarray(ring.traj.obs)[np.asarray(ring.traj.ep_start), 0], [11, 12, 13, 14, 15, 16, 7, 8, 9, 10]
    )
    batch = sample_many(ring.traj, seed=5)
    ep, *_ = check_rows(batch, {e: H for e in range(7, 17)})
    assert set(np.unique(ep)) == set(range(7, 17))  # only the newest 10 episodes are ever sampled
    assert all(len(set(row)) == BATCH for row in ep)
    # the unused action of each episode's final row is zero-padded
    np.testing.assert_array_equal(np.asarray(ring.traj.actions)[np.asarray(ring.traj.ep_start) + H], 0.0)


@pytest.mark.parametrize("num_added", [3, 7, 9])
def test_partially_filled_ring_samples_only_filled_slots(num_added):
    ring = EpisodeRing(capacity=10 * H, horizon=H, obs_dim=3, act_dim=1)
    ring.add(*ring_episodes(range(1, num_added + 1), H))  # ids from 1: empty slots read as episode 0
    assert ring.num_transitions == num_added * H
    batch = sample_many(ring.traj, seed=6)
    ep, *_ = check_rows(batch, {e: H for e in range(1, num_added + 1)})
    assert set(np.unique(ep)) == set(range(1, num_added + 1))
    if num_added >= BATCH:
        assert all(len(set(row)) == BATCH for row in ep)
    else:  # with replacement, uniform over the (equal-length) filled episodes
        counts = np.bincount(ep.ravel(), minlength=num_added + 1)[1:]
        assert chi2_pvalue(counts, np.full(num_added, ep.size / num_added)) > P_MIN


def test_ring_state_dict_round_trip():
    ring = EpisodeRing(capacity=3 * H, horizon=H, obs_dim=3, act_dim=1)
    ring.add(*ring_episodes([1, 2], H))
    ring.add(*ring_episodes([3, 4], H))  # wraps: slot pointer now at 1
    d = ring.state_dict()
    assert d["episodes_added"] == 4 and isinstance(d["obs"], np.ndarray)
    other = EpisodeRing(capacity=3 * H, horizon=H, obs_dim=3, act_dim=1)
    other.load_state_dict(d)
    assert other.episodes_added == 4 and other.num_transitions == ring.num_transitions == 3 * H
    for a, b in zip(ring.traj, other.traj):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # both continue identically (the FIFO pointer is restored, not reset)
    for r in (ring, other):
        r.add(*ring_episodes([5], H))
    for a, b in zip(ring.traj, other.traj):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert sorted(np.asarray(other.traj.obs)[np.asarray(other.traj.ep_start), 0].astype(int)) == [3, 4, 5]


def test_ring_shape_errors():
    ring = EpisodeRing(capacity=3 * H, horizon=H, obs_dim=3, act_dim=1)
    obs, actions = ring_episodes([1, 2], H)
    with pytest.raises(ValueError, match="steps"):
        ring.add(obs[:, :-1], actions)  # T observations instead of T + 1
    with pytest.raises(ValueError, match="steps"):
        ring.add(obs, actions[:, :-1])
    with pytest.raises(ValueError, match="cannot insert"):
        ring.add(*ring_episodes([1, 2, 3, 4], H))
    assert ring.episodes_added == 0 and ring.num_transitions == 0  # failed adds change nothing
    other = EpisodeRing(capacity=4 * H, horizon=H, obs_dim=3, act_dim=1)
    with pytest.raises(ValueError, match="does not match"):
        ring.load_state_dict(other.state_dict())
    small = EpisodeRing(capacity=H - 1, horizon=H, obs_dim=3, act_dim=1)  # below one episode: one slot
    assert small.num_slots == 1


# ----------------------------------------------------------------------------- OGBench-style sampling


def capped_geometric_pmf(gamma: float, cap: int) -> np.ndarray:
    """P(min(K, cap) = k) for K ~ geometric(1 - gamma) on 1, 2, ...: index 0 is k = 1; the cap takes the tail."""
    k = np.arange(1, cap + 1, dtype=np.float64)
    p = (1 - gamma) * gamma ** (k - 1)
    p[-1] = gamma ** (cap - 1)
    return p


OG_LENGTHS = [3, 10, 25, 50, 100, 12, 1, 7]


@pytest.fixture(scope="module")
def ogbench_batch():
    sampler = GoalSampler(GAMMA, "uniform", style="ogbench")
    return sample_many(padded_store(OG_LENGTHS), sampler=sampler, seed=5)


def test_ogbench_style_never_samples_the_final_row(ogbench_batch):
    lengths = lengths_by_id(OG_LENGTHS)
    ep, t, goal_t, actor_t, _ = (ogbench_batch.obs[..., 0].astype(int), ogbench_batch.obs[..., 1].astype(int),
                                 ogbench_batch.goal[..., 1].astype(int), ogbench_batch.actor_goal[..., 1].astype(int),
                                 None)
    length = np.vectorize(lengths.get)(ep)
    last = length - 1  # the last row with a successor
    np.testing.assert_array_equal(ogbench_batch.next_obs[..., 1], t + 1)
    np.testing.assert_array_equal(ogbench_batch.goal[..., 0], ep)
    np.testing.assert_array_equal(ogbench_batch.actor_goal[..., 0], ep)
    assert np.all(t <= last) and np.all(goal_t <= last) and np.all(actor_t <= last)
    # the goal is strictly in the future except at the last state, where OGBench's cap makes it the state itself
    assert np.all((goal_t > t) | ((t == last) & (goal_t == t)))
    # states are uniform over all transitions (with replacement): episode frequency proportional to length
    counts = np.bincount(ep.ravel() - 1, minlength=len(OG_LENGTHS))
    assert chi2_pvalue(counts, np.asarray(OG_LENGTHS) / sum(OG_LENGTHS) * ep.size) > P_MIN


def test_ogbench_style_goal_offset_is_capped_geometric(ogbench_batch):
    lengths = lengths_by_id(OG_LENGTHS)
    ep, t = ogbench_batch.obs[..., 0].astype(int).ravel(), ogbench_batch.obs[..., 1].astype(int).ravel()
    goal_t = ogbench_batch.goal[..., 1].astype(int).ravel()
    cap = np.vectorize(lengths.get)(ep) - 1 - t  # distance to the last state
    sel = cap >= 1
    offsets, caps = goal_t[sel] - t[sel], cap[sel]
    assert conditional_pvalue(offsets, caps, lambda c: capped_geometric_pmf(GAMMA, c)) > P_MIN
    # negative control: the paper's truncated-and-renormalised law is a different distribution
    assert conditional_pvalue(offsets, caps, lambda c: geometric_pmf(GAMMA, c)) < 1e-8


def test_ogbench_style_uniform_actor_goals(ogbench_batch):
    """OGBench: round(min(i+1, last) * u + last * (1 - u)), u ~ U[0, 1): end points get half weight."""
    lengths = lengths_by_id(OG_LENGTHS)
    ep, t = ogbench_batch.obs[..., 0].astype(int).ravel(), ogbench_batch.obs[..., 1].astype(int).ravel()
    actor_t = ogbench_batch.actor_goal[..., 1].astype(int).ravel()
    last = np.vectorize(lengths.get)(ep) - 1
    sel = last - t >= 2
    span = last[sel] - t[sel]  # actor goal offset lies in 1..span

    def pmf(s):
        p = np.ones(s) / (s - 1)
        p[0] = p[-1] = 0.5 / (s - 1)
        return p

    offsets = actor_t[sel] - t[sel]
    assert conditional_pvalue(offsets, span, pmf) > P_MIN
    assert conditional_pvalue(offsets, span, uniform_pmf) < 1e-8


def test_actor_random_goals_fraction():
    lengths = [40] * 60
    sampler = GoalSampler(GAMMA, "uniform", style="ogbench", actor_random_goals=0.5)
    batch = sample_many(padded_store(lengths), sampler=sampler, seed=9)
    ep = batch.obs[..., 0].astype(int)
    other = batch.actor_goal[..., 0].astype(int) != ep
    # a random row falls in the same episode with probability 1/60; random goals are drawn from real rows only
    assert abs(other.mean() - 0.5 * (1 - 1 / 60)) < 0.02
    assert np.all(batch.actor_goal[..., 0] >= 1) and np.all(batch.actor_goal[..., 1] < 40)
    np.testing.assert_array_equal(batch.goal[..., 0], ep)  # the critic's goals are never random


def test_goal_sampler_rejects_bad_settings():
    with pytest.raises(ValueError, match="style"):
        GoalSampler(0.9, style="d4rl")
    with pytest.raises(ValueError, match="actor_goals"):
        GoalSampler(0.9, "random")
    with pytest.raises(ValueError, match="actor_random_goals"):
        GoalSampler(0.9, actor_random_goals=1.5)
