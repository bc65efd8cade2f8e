"""Helpers for the reliability tests: comparable findings, a Graph client for one simulated tenant."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import astuple, fields
from pathlib import Path

import pytest

from audit.models import Finding, MailboxProbe, TenantResult
from audit.simulator import Simulator
from tests.simconfig import secrets_env, sim_config


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

    for name, secret in secrets_env([(sim, spec)]).items():
        monkeypatch.setenv(name, secret)
    tenant = sim_config([(sim, spec)], Path("unused")).tenants[0]
    waits: list[float] = []
    ca = str(sim.ca_path)
    client = GraphClient(graph_base(tenant), TokenProvider(tenant, verify=ca), verify=ca, sleep=waits.append, **options)
    return client, waits
