"""Summary tallies: per tenant by severity, per check, accepted apart."""

from __future__ import annotations

from conftest import CONTOSO, FABRIKAM, finding, user

from audit.report.tally import tally


def test_counts_by_tenant_and_check_keep_accepted_apart():
    bob = user("u-bob", "bob@contoso.com", "Bob")
    counted = [
        finding(CONTOSO, "no-exchange-license", "high", bob),
        finding(CONTOSO, "app-missing-permission", "critical", None),
        finding(FABRIKAM, "no-exchange-license", "high", user("u-f", "f@fabrikam.com", "F")),
    ]
    accepted = [finding(FABRIKAM, "soft-deleted-user", "medium", user("u-g", "g@fabrikam.com", "G"))]
    t = tally(counted, accepted)
    assert t.tenant(CONTOSO.upper()) == {"critical": 1, "high": 1, "medium": 0, "low": 0, "accepted": 0}
    assert t.tenant(FABRIKAM) == {"critical": 0, "high": 1, "medium": 0, "low": 0, "accepted": 1}
    assert t.tenant("another-tenant") == {"critical": 0, "high": 0, "medium": 0, "low": 0, "accepted": 0}
    assert t.check("no-exchange-license") == (2, 0)
    assert t.check("soft-deleted-user") == (0, 1)
    assert t.check("domain-not-verified") == (0, 0)


def test_only_accepted_or_nothing():
    only = tally([], [finding(CONTOSO, "soft-deleted-user", "medium", user("u-d", "d@contoso.com", "D"))])
    assert only.tenant(CONTOSO)["accepted"] == 1 and only.tenant(CONTOSO)["medium"] == 0
    assert only.check("soft-deleted-user") == (0, 1)
    empty = tally([], [])
    assert empty.tenant(CONTOSO)["high"] == 0 and empty.check("x") == (0, 0)
