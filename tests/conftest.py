"""Shared fixtures: the built-in Graph simulator, configurations pointing at it, a small tenant.

- `sim_factory(tenants, faults=None, limits=None) -> Simulator`: starts a simulator (real HTTPS on
  127.0.0.1, ephemeral port); every simulator started this way is stopped at teardown.
- `make_config(sim, tenants, tmp_path, **options) -> Config`: tests.simconfig.sim_config for those
  tenants (sim None: tenants are (simulator, spec) pairs), with the client secrets put in the environment
  for the test's duration and the configuration written to its path as TOML.
- `small_tenant`: a generated 60-user tenant in which the remediation app is consented and enabled.

Every test gets back the logging set-up it started with: a command run in-process installs its own
handler on the root logger, writing to that test's captured stderr, which is closed once the test ends.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from audit.config import Config
from audit.simulator import FaultSpec, Limits, Simulator, generate_tenant
from tests.simconfig import Placed, secrets_env, sim_config, write_config_file


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    root = logging.getLogger()
    named = [logging.getLogger(name) for name in ("audit", "msal", "urllib3")]
    handlers, levels = list(root.handlers), [root.level] + [logger.level for logger in named]
    hooks = sys.excepthook, threading.excepthook
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    for logger, level in zip([root, *named], levels, strict=True):
        logger.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., Simulator]]:
    started: list[Simulator] = []

    def start(tenants: list[dict], faults: FaultSpec | str | None = None, limits: Limits | None = None) -> Simulator:
        sim = Simulator(tenants, faults=faults, limits=limits).start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture
def make_config(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Config]:
    def make(sim: Simulator | None, tenants: Sequence[dict] | Placed, tmp_path: Path, **options) -> Config:
        placed = list(tenants) if sim is None else [(sim, spec) for spec in tenants]
        for name, secret in secrets_env(placed).items():
            monkeypatch.setenv(name, secret)
        config = sim_config(placed, tmp_path, **options)
        write_config_file(config)
        return config

    return make


@pytest.fixture
def small_tenant() -> dict:
    return generate_tenant("contoso", 60, seed=1, scenario="healthy")
