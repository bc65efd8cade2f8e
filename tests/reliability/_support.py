"""Helpers for the reliability tests: configs over several simulators, comparable findings."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import astuple, fields
from pathlib import Path

import pytest

from audit.config import AuditConfig, Config, RemediationAppConfig, TenantConfig
from audit.models import Finding, MailboxProbe, TenantResult
from audit.simulator import DEMO_REMEDIATION_APP_ID, Simulator, demo_access_policies, demo_domains


def config_over(
    placed: Sequence[tuple[Simulator, dict]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    policies: bool = False,
    **audit: object,
) -> Config:
    """A Config whose tenants each live in their own simulator; ca_bundle holds every simulator's CA."""
    tenants = []
    for sim, spec in placed:
        env = Simulator.secret_env_name(spec["name"])
        monkeypatch.setenv(env, spec["clients"][0]["secret"])
        tenants.append(
            TenantConfig(
                name=spec["name"],
                tenant_id=spec["tenant_id"],
                client_id=spec["clients"][0]["client_id"],
                client_secret_env=env,
                domains=tuple(demo_domains(spec)),
                authority_host=sim.url,
                graph_endpoint=sim.url,
            )
        )
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text("".join({sim.ca_path.read_text() for sim, _ in placed}))
    specs = [spec for _, spec in placed]
    home = next((s["tenant_id"] for s in specs if s.get("scenario") == "home"), None)
    policy_file = None
    if policies:
        policy_file = tmp_path / "access-policies.json"
        policy_file.write_text(json.dumps(demo_access_policies(specs)))
    return Config(
        path=tmp_path / "config.toml",
        tenants=tuple(tenants),
        remediation_app=RemediationAppConfig(
            app_id=DEMO_REMEDIATION_APP_ID, home_tenant_id=home, access_policy_file=policy_file
        ),
        audit=AuditConfig(**{"out_dir": tmp_path / "reports", "ca_bundle": bundle, **audit}),
    )


def write_recipients(path: Path, addresses: Iterable[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["address"])
        writer.writerows([a] for a in addresses)
    return path


def finding_tuples(findings: Iterable[Finding]) -> list[tuple]:
    """Every field of every finding (evidence included), sorted, for an exact comparison."""
    return sorted(tuple(str(v) for v in astuple(f)) for f in findings)


FINDING_FIELDS = [f.name for f in fields(Finding)]


def probe_table(result: TenantResult) -> dict[str, MailboxProbe]:
    return dict(result.snapshot.probes.value or {}) if result.snapshot else {}


def user_ids(result: TenantResult) -> list[str]:
    users = result.snapshot.users.value if result.snapshot else None
    return [u.id for u in users or []]


def client_for(sim: Simulator, spec: dict, monkeypatch: pytest.MonkeyPatch, **options: object):
    """A GraphClient for one simulated tenant that records its waits instead of sleeping."""
    from audit.auth import TokenProvider, graph_base
    from audit.graph import GraphClient

    env = Simulator.secret_env_name(spec["name"])
    monkeypatch.setenv(env, spec["clients"][0]["secret"])
    tenant = TenantConfig(
        name=spec["name"],
        tenant_id=spec["tenant_id"],
        client_id=spec["clients"][0]["client_id"],
        client_secret_env=env,
        authority_host=sim.url,
        graph_endpoint=sim.url,
    )
    waits: list[float] = []
    ca = str(sim.ca_path)
    client = GraphClient(graph_base(tenant), TokenProvider(tenant, verify=ca), verify=ca, sleep=waits.append, **options)
    return client, waits
