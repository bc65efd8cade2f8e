"""What audit_tenants tells its callers about the tenants it audits, against the simulator: progress for
the terminal, finished() for the Users sheet streamed as tenants end, and whether the run was probed."""

from __future__ import annotations

import pytest

from audit.runner import RunOptions, audit_tenants
from audit.simulator import generate_tenant


@pytest.fixture
def two(sim_factory, make_config, tmp_path):
    specs = [generate_tenant("contoso", 8, seed=1, scenario="healthy"), generate_tenant("fabrikam", 6, seed=2)]
    sim = sim_factory(specs)
    return specs, lambda **audit: make_config(sim, specs, tmp_path, **audit)


def test_each_tenant_is_reported_done_once_and_counted_out_of_all(two):
    _, config = two
    said, finished = [], []
    result = audit_tenants(
        config(tenant_concurrency=1),  # one at a time: the order below is fixed
        RunOptions(probe="all"),
        progress=lambda *call: said.append(call),
        finished=lambda index, tenant: finished.append((index, tenant.name)),
    )
    assert [t.name for t in result.tenants] == ["contoso", "fabrikam"]
    assert [c for c in said if c[0] in ("tenants", "done")] == [
        ("tenants", 0, 2),
        ("done", 0, None, "contoso"),
        ("tenants", 1, 2),
        ("done", 0, None, "fabrikam"),
        ("tenants", 2, 2),
    ]
    assert finished == [(0, "contoso"), (1, "fabrikam")]  # the place of each tenant in the run's order
    # Each tenant's own phases reach the same callback, named by tenant.
    assert {(c[0], c[3]) for c in said if c[0] in ("users", "checks")} == {
        (phase, name) for phase in ("users", "checks") for name in ("contoso", "fabrikam")
    }


def test_a_single_tenant_run_counts_no_tenants(two):
    _, config = two
    said = []
    audit_tenants(config(), RunOptions(tenant="fabrikam", probe="none"), progress=lambda *call: said.append(call))
    assert [c for c in said if c[0] in ("tenants", "done")] == [("done", 0, None, "fabrikam")]


@pytest.mark.parametrize(
    ("given", "configured", "probed"),
    [(None, "auto", True), ("none", "auto", False), (None, "none", False), ("all", "none", True)],
)
def test_the_run_is_probed_unless_the_option_or_else_the_config_says_none(two, given, configured, probed):
    _, config = two
    result = audit_tenants(config(probe=configured), RunOptions(tenant="fabrikam", probe=given))
    assert result.probes is probed
