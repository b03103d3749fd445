"""Agents by name. Each agent module has a frozen config dataclass, ``init``, ``update`` and ``make_actor``."""

from __future__ import annotations

from typing import Callable, NamedTuple

from crl.agents import crl as crl_agent
from crl.agents import gcbc as gcbc_agent
from crl.agents import td3 as td3_agent


class AgentDef(NamedTuple):
    """How the trainer drives an agent."""

    config_cls: type
    init: Callable  # (key, spec, cfg) -> state
    update: Callable  # (state, batch, key, *, cfg, spec) -> (state, metrics)
    make_actor: Callable  # (cfg, spec) -> flax module returning (mean, log_std)


AGENTS: dict[str, AgentDef] = {
    "crl": AgentDef(crl_agent.CRLConfig, crl_agent.init, crl_agent.update, crl_agent.make_actor),
    "gcbc": AgentDef(gcbc_agent.GCBCConfig, gcbc_agent.init, gcbc_agent.update, gcbc_agent.make_actor),
    "td3": AgentDef(td3_agent.TD3Config, td3_agent.init, td3_agent.update, td3_agent.make_actor),
}


class UnknownAgentError(ValueError):
    pass


def get_agent(name: str) -> AgentDef:
    """Returns the agent definition; raises UnknownAgentError listing the known agents."""
    if name not in AGENTS:
        raise UnknownAgentError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}")
    return AGENTS[name]
