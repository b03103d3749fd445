"""crl.update reuses the critic loss's psi(goal) for the actor when the actor's goals are the critic's goals (the same
traced array); the result must equal the update that recomputes psi."""

from dataclasses import replace
from functools import partial

import jax
import jax.extend.core
import jax.numpy as jnp
import numpy as np

from crl.agents import crl as crl_agent
from crl.agents.crl import PRESETS
from crl.types import Batch, EnvSpec

SPEC = EnvSpec(obs_dim=4, goal_dim=2, act_dim=2, goal_start=0, goal_end=2)
SMALL = dict(batch_size=16, hidden_sizes=(32, 32), actor_hidden_sizes=(32, 32), repr_dim=8)


def _batch(key):
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (16, 4))
    goal = jax.random.normal(k[1], (16, 2))
    action = jax.random.uniform(k[2], (16, 2), minval=-1, maxval=1)
    return Batch(obs, action, jax.random.normal(k[3], (16, 4)), goal, goal)


def _dots(jaxpr) -> int:
    """dot_general equations in a jaxpr, sub-jaxprs (pjit, custom_jvp, ...) included."""
    n = 0
    for eqn in jaxpr.eqns:
        n += eqn.primitive.name == "dot_general"
        n += sum(_dots(sub) for sub in jax.extend.core.jaxprs_in_params(eqn.params))
    return n


def test_shared_psi_matches_recomputed():
    # twin critics, the 0.5 own/other-goal actor mix (psi rolled and concatenated) and a learned temperature
    cfg = replace(PRESETS["ogbench-crl"], **SMALL, random_goals=0.5, energy="cosine")
    state = jax.jit(partial(crl_agent.init, spec=SPEC, cfg=cfg))(jax.random.PRNGKey(0))
    update = partial(crl_agent.update, cfg=cfg, spec=SPEC)

    def shared(state, batch, key):
        return update(state, batch._replace(actor_goal=batch.goal), key)  # the same traced array: psi reused

    def separate(state, batch, key):
        return update(state, batch._replace(actor_goal=batch.goal * 1.0), key)  # a different array: recomputed

    args = (state, _batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    # the shared update has fewer matmuls (psi's layers are not run a second time)
    assert _dots(jax.make_jaxpr(shared)(*args).jaxpr) < _dots(jax.make_jaxpr(separate)(*args).jaxpr)
    (s1, m1), (s2, m2) = jax.jit(lambda *a: (shared(*a), separate(*a)))(*args)
    for a, b in zip(jax.tree.leaves((s1, m1)), jax.tree.leaves((s2, m2))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    assert jnp.isfinite(m1["actor_loss"])
