"""Offline datasets in the one trajectory container (``crl.data.store.Trajectories``)."""

from __future__ import annotations

from dataclasses import dataclass

from crl.data.store import Trajectories
from crl.types import EnvSpec


class DatasetError(ValueError):
    """A dataset that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class OfflineDataset:
    """Loaded trajectories plus the shapes an agent needs.

    ``traj`` rows are observations; each episode has ``ep_len + 1`` rows and ``ep_len`` usable transitions.
    ``spec.obs_to_goal`` maps an observation row to goal space.
    """

    traj: Trajectories
    spec: EnvSpec
    source: str  # file or dataset id, for messages
