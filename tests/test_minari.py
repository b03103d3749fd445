"""crl.data.minari_data: Minari datasets with dict (goal-conditioned) observations into the trajectory container.

Real Minari datasets are written into a temporary MINARI_DATASETS_PATH: with ``minari.DataCollector`` around our
point-maze gymnasium view (dict observations {observation, achieved_goal, desired_goal}), and malformed ones with
``minari.create_dataset_from_buffers``, which writes whatever arrays it is given.
"""

from __future__ import annotations

import json
import sys

import gymnasium
import jax
import minari
import numpy as np
import pytest
from gymnasium import spaces
from minari.data_collector import EpisodeBuffer

from crl.data.minari_data import episodes_to_dataset, load_minari
from crl.data.offline import DatasetError
from crl.data.store import GoalSampler
from crl.envs import make_gym_env
from crl.types import EnvSpec

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # minari's metadata reminders

DATASET_ID = "crl/point_U/random-v0"
LENGTHS = (50, 7, 1, 23, 50, 12)  # the view truncates at its horizon, 50; shorter episodes end by reset()
METADATA = dict(algorithm_name="random", author="crl tests", author_email="none", code_permalink="none",
                description="test data")


@pytest.fixture
def minari_root(tmp_path, monkeypatch):
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def collect(env: gymnasium.Env, dataset_id: str, lengths, seed: int = 0):
    """Steps ``env`` under a DataCollector with random actions; returns what was seen, per episode:
    ``(rows [T+1, o+g], achieved_goals [T+1, g], actions [T, a])`` with rows = concat(observation, achieved_goal)."""
    collector = minari.DataCollector(env)
    collector.action_space.seed(seed)
    seen = []
    obs, _ = collector.reset(seed=seed)
    for length in lengths:
        observations, actions = [obs], []
        for t in range(length):
            action = collector.action_space.sample()
            obs, _, terminated, truncated, _ = collector.step(action)
            observations.append(obs)
            actions.append(action)
            assert not terminated and truncated == (t + 1 == env.unwrapped.horizon)
        if "achieved_goal" in obs:
            rows = np.stack([np.concatenate([o["observation"], o["achieved_goal"]]) for o in observations])
            seen.append((rows, np.stack([o["achieved_goal"] for o in observations]), np.stack(actions)))
        obs, _ = collector.reset()
    collector.create_dataset(dataset_id, **METADATA)
    collector.close()
    return seen


def point_u_env() -> gymnasium.Env:
    """The point_U view with ``observation = [x, y, desired - achieved]`` (4 dims), so that observation and
    achieved goal ([x, y]) differ in width and value."""
    env = make_gym_env("point_U")
    box = env.observation_space["observation"]
    span = box.high - box.low
    space = spaces.Dict({**env.observation_space.spaces, "observation": spaces.Box(
        np.concatenate([box.low, -span]), np.concatenate([box.high, span]), dtype=np.float32)})

    def transform(obs):
        relative = obs["desired_goal"] - obs["achieved_goal"]
        return {**obs, "observation": np.concatenate([obs["observation"], relative]).astype(np.float32)}

    return gymnasium.wrappers.TransformObservation(env, transform, space)


@pytest.fixture
def point_u(minari_root):
    return collect(point_u_env(), DATASET_ID, LENGTHS)


def test_load_by_id_matches_collected_episodes(point_u):
    data = load_minari(DATASET_ID)
    traj, spec = data.traj, data.spec
    assert data.source == DATASET_ID
    assert spec == EnvSpec(obs_dim=6, goal_dim=2, act_dim=2, goal_start=4, goal_end=6)
    assert list(np.asarray(traj.ep_len)) == list(LENGTHS)
    assert traj.num_transitions == sum(LENGTHS)
    assert traj.obs.shape == (sum(LENGTHS) + len(LENGTHS), 6) and traj.obs.dtype == np.float32
    assert traj.actions.shape == (sum(LENGTHS) + len(LENGTHS), 2) and traj.actions.dtype == np.float32
    obs, act = np.asarray(traj.obs), np.asarray(traj.actions)
    for e, (rows, achieved, actions) in enumerate(point_u):
        start, length = int(traj.ep_start[e]), int(traj.ep_len[e])
        np.testing.assert_array_equal(obs[start : start + length + 1], rows)
        np.testing.assert_array_equal(np.asarray(spec.obs_to_goal(traj.obs[start : start + length + 1])), achieved)
        np.testing.assert_array_equal(act[start : start + length], actions)  # row t holds action t
        np.testing.assert_array_equal(act[start + length], 0.0)  # the last row's action is padding
    assert list(np.asarray(traj.ep_start)) == list(np.cumsum((0,) + LENGTHS[:-1]) + np.arange(len(LENGTHS)))


def test_load_by_path_equals_load_by_id(point_u, minari_root):
    by_id = load_minari(DATASET_ID)
    for path in (minari_root / DATASET_ID, minari_root / DATASET_ID / "data", str(minari_root / DATASET_ID)):
        by_path = load_minari(path)
        assert by_path.source == str(path) and by_path.spec == by_id.spec
        for a, b in zip(by_path.traj, by_id.traj):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_goal_sampler_draws_future_achieved_goals_of_the_same_episode(point_u):
    data = load_minari(DATASET_ID)
    traj, spec = data.traj, data.spec
    batch = GoalSampler(0.9).sample(jax.random.key(0), traj, spec, 256)
    obs, act = np.asarray(traj.obs), np.asarray(traj.actions)
    ends = np.asarray(traj.ep_start) + np.asarray(traj.ep_len)  # each episode's last row
    achieved = np.asarray(spec.obs_to_goal(traj.obs))
    for b in range(256):
        matches = np.flatnonzero(np.all(act == np.asarray(batch.action[b]), axis=1))
        assert len(matches) == 1, "random continuous actions identify their row"
        row = int(matches[0])
        end = int(ends[np.searchsorted(ends, row)])
        assert row < end  # a row with a successor
        np.testing.assert_array_equal(np.asarray(batch.obs[b]), obs[row])
        np.testing.assert_array_equal(np.asarray(batch.next_obs[b]), obs[row + 1])
        future = achieved[row + 1 : end + 1]
        assert np.all(future == np.asarray(batch.goal[b]), axis=1).any(), (b, row, end)


def test_episodes_without_transitions_are_skipped():
    def episode(t, offset):
        obs = np.arange(t + 1, dtype=np.float32)[:, None] + offset
        return {"observation": np.hstack([obs, obs]), "achieved_goal": obs, "desired_goal": obs}, np.ones((t, 1))

    data = episodes_to_dataset([(0, *episode(3, 0)), (1, *episode(0, 10)), (2, *episode(2, 20))], "mem")
    assert list(np.asarray(data.traj.ep_len)) == [3, 2]
    assert list(np.asarray(data.traj.ep_start)) == [0, 4]
    np.testing.assert_array_equal(np.asarray(data.traj.obs[:, 2]), [0, 1, 2, 3, 20, 21, 22])
    assert data.spec == EnvSpec(obs_dim=3, goal_dim=1, act_dim=1, goal_start=2, goal_end=3)


# ----------------------------------------------------------------------------- validation

BOX = {n: spaces.Box(-10.0, 10.0, (n,), np.float32) for n in (2, 3, 4)}
GOAL_OBS_SPACE = spaces.Dict({"observation": BOX[3], "achieved_goal": BOX[2], "desired_goal": BOX[2]})


def buffer(t, o=3, g=2, a=2, n_obs=None, nan_at=None, observations=None, actions=None):
    """An EpisodeBuffer of ``t`` steps (``n_obs`` observations, default t + 1) of ones."""
    n = t + 1 if n_obs is None else n_obs
    if observations is None:
        observations = {"observation": np.ones((n, o), np.float32), "achieved_goal": np.ones((n, g), np.float32),
                        "desired_goal": np.ones((n, g), np.float32)}
        if nan_at is not None:
            observations["achieved_goal"][nan_at, 0] = np.nan
    if actions is None:
        actions = np.ones((t, a), np.float32)
    return EpisodeBuffer(observations=observations, actions=actions, rewards=np.zeros(t),
                         terminations=np.zeros(t, bool), truncations=np.zeros(t, bool))


BAD_DATASETS = {
    "empty": ([], GOAL_OBS_SPACE, BOX[2], "the dataset is empty"),
    "discrete_actions": ([buffer(3, actions=np.array([0, 1, 2]))], GOAL_OBS_SPACE, spaces.Discrete(3),
                         r"action space is Discrete \(Discrete\(3\)\); only continuous \(Box\) actions"),
    "flat_observations": ([buffer(3, observations=np.ones((4, 3), np.float32))], BOX[3], BOX[2],
                          "observation space is Box, not a Dict with keys observation, achieved_goal, desired_goal"),
    "length_mismatch": ([buffer(3), buffer(4, n_obs=4)], GOAL_OBS_SPACE, BOX[2],
                        r"episode 1: observation has 4 entries for 4 actions; expected 5 \(T \+ 1\)"),
    "nan": ([buffer(3), buffer(4, nan_at=2)], GOAL_OBS_SPACE, BOX[2],
            r"episode 1: achieved_goal contains NaN or inf \(1 value\(s\), first at step 2\)"),
    "inconsistent_shapes": ([buffer(3), buffer(4, o=4)], GOAL_OBS_SPACE, BOX[2],
                            r"episode 1: shapes \(observation 4, goal 2, action 2\) differ from episode 0's "
                            r"\(observation 3, goal 2, action 2\)"),
    "shapes_differ_from_spaces": ([buffer(3, o=4), buffer(2, o=4)], GOAL_OBS_SPACE, BOX[2],
                                  r"episodes have widths \(observation 4, goal 2, action 2\) but the dataset's "
                                  r"spaces declare \(observation 3, goal 2, action 2\)"),
}


@pytest.mark.parametrize("case", list(BAD_DATASETS))
def test_malformed_minari_datasets_raise_one_line_errors(minari_root, case):
    buffers, obs_space, act_space, message = BAD_DATASETS[case]
    dataset_id = f"bad/{case}-v0"
    minari.create_dataset_from_buffers(dataset_id, buffers, observation_space=obs_space, action_space=act_space,
                                       **METADATA)
    with pytest.raises(DatasetError, match=message) as err:
        load_minari(dataset_id)
    assert str(err.value).startswith(f"{dataset_id}: ") and "\n" not in str(err.value)


def test_env_without_achieved_goal_is_rejected(minari_root):
    env = gymnasium.wrappers.FilterObservation(make_gym_env("point_U"), ["observation", "desired_goal"])
    collect(env, "crl/no_goal-v0", (5, 3))
    with pytest.raises(DatasetError, match=r"^crl/no_goal-v0: observation space lacks key\(s\) achieved_goal"):
        load_minari("crl/no_goal-v0")


def good_episode(t=3):
    obs = {"observation": np.zeros((t + 1, 3)), "achieved_goal": np.zeros((t + 1, 2)),
           "desired_goal": np.zeros((t + 1, 2))}
    return obs, np.zeros((t, 2))


def with_obs(**changes):
    obs, act = good_episode()
    return {**obs, **changes}, act


@pytest.mark.parametrize("episodes, message", [
    ([], r"^mem: the dataset is empty \(has no episodes\)$"),
    ([good_episode(0), good_episode(0)], r"^mem: the dataset is empty \(has 2 episode\(s\) but no transitions\)$"),
    ([(np.zeros((4, 7)), np.zeros((3, 2)))],
     "^mem: episode 0: observations are ndarray, not a dict with keys observation, achieved_goal, desired_goal$"),
    ([with_obs(achieved_goal=None)], "episode 0: achieved_goal has dtype object; expected numbers"),
    ([with_obs(observation=[[0.0, 0.0, 0.0]] * 3 + [[0.0]])], "^mem: episode 0: observation has no array form"),
    ([({"observation": np.zeros((4, 3)), "desired_goal": np.zeros((4, 2))}, np.zeros((3, 2)))],
     r"^mem: episode 0: observations lack key\(s\) achieved_goal \(has observation, desired_goal\)$"),
    ([(good_episode()[0], np.zeros(3, np.int64))],
     r"^mem: episode 0: actions have shape \(3,\); actions must be vectors \[T, act_dim\] \(continuous\)$"),
    ([(good_episode()[0], np.zeros((4, 2)))], r"^mem: episode 0: observation has 4 entries for 4 actions"),
    ([with_obs(desired_goal=np.zeros((3, 2)))], r"^mem: episode 0: desired_goal has 3 entries for 3 actions"),
    ([with_obs(desired_goal=np.zeros((4, 3)))], "^mem: episode 0: desired_goal has 3 dims but achieved_goal has 2$"),
    ([good_episode(), good_episode(), (good_episode()[0], np.zeros((3, 1)))],
     r"^mem: episode 2: shapes \(observation 3, goal 2, action 1\) differ from episode 0's"),
    ([(good_episode()[0], np.array([[0, 0], [0, np.inf], [0, 0]]))],
     r"^mem: episode 0: actions contain NaN or inf \(1 value\(s\), first at step 1\)$"),
    ([with_obs(observation=np.full((4, 3), 1e39))], "observation contains NaN or inf"),  # overflows float32
])
def test_conversion_rejects_malformed_arrays(episodes, message):
    with pytest.raises(DatasetError, match=message):
        episodes_to_dataset([(i, obs, act) for i, (obs, act) in enumerate(episodes)], "mem")


def test_missing_and_unreadable_datasets(minari_root, tmp_path):
    with pytest.raises(DatasetError, match=r"^nope/missing-v0: Minari dataset not found at .*minari download"):
        load_minari("nope/missing-v0")
    with pytest.raises(DatasetError, match="directory not found"):
        load_minari(tmp_path / "nowhere")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DatasetError, match="not a Minari dataset directory"):
        load_minari(tmp_path / "empty_dir")
    broken = tmp_path / "broken" / "data"
    broken.mkdir(parents=True)
    (broken / "metadata.json").write_text(json.dumps({"data_format": "hdf5"}))
    with pytest.raises(DatasetError, match=r"broken: not a readable Minari dataset \(") as err:
        load_minari(tmp_path / "broken")
    assert "\n" not in str(err.value)


def test_without_minari_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'contrastive-rl\[minari\]'"):
        load_minari("D4RL/pointmaze/umaze-v2")


def test_without_the_hdf5_backend_the_error_says_how_to_install(point_u, monkeypatch):
    monkeypatch.delitem(sys.modules, "minari.dataset._storages.hdf5_storage", raising=False)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"h5py is not installed.*pip install 'contrastive-rl\[minari\]'"):
        load_minari(DATASET_ID)
