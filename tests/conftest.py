"""Shared test fixtures."""

from __future__ import annotations

import pytest

from crl.train import online


@pytest.fixture
def interrupt_train_call(monkeypatch):
    """``interrupt_train_call(n)`` makes the ``n``-th ``Learner.train_call`` from now raise KeyboardInterrupt (as a
    Ctrl-C in mid-run would) and returns a function that restores the real call."""
    real_call = online.Learner.train_call

    def arm(n: int):
        calls = []

        def interrupted_call(self, *args, **kw):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real_call(self, *args, **kw)

        monkeypatch.setattr(online.Learner, "train_call", interrupted_call)
        return lambda: monkeypatch.setattr(online.Learner, "train_call", real_call)

    return arm
