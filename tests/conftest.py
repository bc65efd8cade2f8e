"""Shared fixtures: the built-in Graph simulator, configurations pointing at it, a small tenant.

- `sim_factory(tenants, faults=None, limits=None) -> Simulator`: starts a simulator (real HTTPS on
  127.0.0.1, ephemeral port); every simulator started this way is stopped at teardown.
- `make_config(sim, tenants, tmp_path, **audit_overrides) -> Config`: an audit configuration for
  those tenants, built from the config dataclasses (authority and Graph endpoint = the simulator,
  ca_bundle = its CA, client secrets put in the environment for the test's duration).
- `small_tenant`: a generated 60-user tenant in which the remediation app is consented and enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from audit.config import AuditConfig, Config, RemediationAppConfig, TenantConfig
from audit.simulator import (
    DEMO_REMEDIATION_APP_ID,
    FaultSpec,
    Limits,
    Simulator,
    demo_domains,
    generate_tenant,
)


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
    def make(sim: Simulator, tenants: list[dict], tmp_path: Path, **audit_overrides) -> Config:
        configs = []
        for tenant in tenants:
            env = Simulator.secret_env_name(tenant["name"])
            monkeypatch.setenv(env, tenant["clients"][0]["secret"])
            configs.append(
                TenantConfig(
                    name=tenant["name"],
                    tenant_id=tenant["tenant_id"],
                    client_id=tenant["clients"][0]["client_id"],
                    client_secret_env=env,
                    domains=tuple(demo_domains(tenant)),
                    authority_host=sim.url,
                    graph_endpoint=sim.url,
                )
            )
        home = next(
            (t for t in tenants if any(a["appId"] == DEMO_REMEDIATION_APP_ID for a in t.get("applications", []))),
            None,
        )
        remediation = RemediationAppConfig(
            app_id=DEMO_REMEDIATION_APP_ID, home_tenant_id=home["tenant_id"] if home else None
        )
        audit = AuditConfig(**{"out_dir": tmp_path / "reports", "ca_bundle": sim.ca_path, **audit_overrides})
        path = tmp_path / "config.toml"
        path.write_text(sim.config_toml(str(audit.out_dir)))
        return Config(path=path, tenants=tuple(configs), remediation_app=remediation, audit=audit)

    return make


@pytest.fixture
def small_tenant() -> dict:
    return generate_tenant("contoso", 60, seed=1, scenario="healthy")
