"""The verdict and its gaps word by word: counts, plurals and the tenant-level answers built from them."""

from __future__ import annotations

from dataclasses import replace

from conftest import CONTOSO, FABRIKAM, STARTED, clean_result, finding, sample_result, user

from audit.models import NotEvaluated, RunResult, TenantResult, TenantStatus
from audit.report.verdict import (
    INCOMPLETE,
    NOT_SAFE,
    SAFE,
    Gap,
    gaps,
    tenant_gaps,
    tenant_read,
    tenant_verdict,
    verdict,
)


def run_of(*tenants: TenantResult, probes: bool = True) -> RunResult:
    return RunResult(started=STARTED, finished=STARTED, version="t", probes=probes, tenants=list(tenants))


def test_every_gap_of_the_sample_run_is_named_with_its_reason():
    assert gaps(sample_result()) == [
        Gap("contoso", "1 user not assessed", "mailbox probe failed after retries"),
        Gap("fabrikam", "tenant only partly read", "the mailbox usage report could not be read (503 after retries)"),
        Gap("fabrikam", "check recipient-not-in-directory not evaluated", "no recipients list was given"),
        Gap("fabrikam", "1 user not read", "the directory holds 2 users, but only 1 were enumerated"),
        Gap("northwind", "tenant not audited", "authentication: AADSTS7000215 invalid client secret"),
    ]


def test_no_tenant_and_no_probes_are_gaps_for_all_tenants():
    assert gaps(run_of()) == [Gap("all tenants", "no tenant audited", "the run selected no tenant")]
    assert gaps(run_of(TenantResult("contoso", CONTOSO, TenantStatus.OK), probes=False)) == [
        Gap(
            "all tenants",
            "mailboxes not probed",
            "mailbox probes were switched off, so mailboxes were judged from directory data only; "
            "run with probes to confirm them",
        )
    ]


def test_counts_are_plural_above_one_and_a_zero_count_is_no_gap():
    tenant = TenantResult(
        "contoso",
        CONTOSO,
        TenantStatus.OK,
        users_scanned=3,
        users_in_directory=5,
        not_assessed={"access denied": 2, "probe failed": 0},
    )
    assert gaps(run_of(tenant)) == [
        Gap("contoso", "2 users not assessed", "access denied"),
        Gap("contoso", "2 users not read", "the directory holds 5 users, but only 3 were enumerated"),
    ]
    # Exactly as many read as the directory holds, or no directory count at all: nothing missing.
    assert gaps(run_of(replace(tenant, users_scanned=5, not_assessed={}))) == []
    assert gaps(run_of(replace(tenant, users_in_directory=None, not_assessed={}))) == []


def test_a_failed_or_partial_tenant_without_a_reason_still_gets_one():
    failed = TenantResult("northwind", "n-id", TenantStatus.FAILED, users_in_directory=9)
    assert gaps(run_of(failed)) == [Gap("northwind", "tenant not audited", "failed without a reason")]
    partial = TenantResult("fabrikam", FABRIKAM, TenantStatus.PARTIAL)
    assert gaps(run_of(partial)) == [Gap("fabrikam", "tenant only partly read", "some data could not be read")]
    # A partial tenant whose only trouble is users that could not be assessed is listed by those users alone.
    by_users = replace(partial, not_assessed={"probe failed": 1})
    assert gaps(run_of(by_users)) == [Gap("fabrikam", "1 user not assessed", "probe failed")]
    # A zero count explains nothing: the partial tenant must still be a gap, never read as safe.
    zero = replace(partial, not_assessed={"probe failed": 0})
    assert gaps(run_of(zero)) == [Gap("fabrikam", "tenant only partly read", "some data could not be read")]


def test_the_home_tenant_id_is_matched_case_insensitively():
    home = "e419272c-dee4-42c8-8890-810aa7d8d9cf"
    other = TenantResult(
        "fabrikam",
        FABRIKAM,
        TenantStatus.OK,
        not_evaluated=[NotEvaluated("app-credential-expiring", "read at home", read_in=home.upper())],
    )
    assert gaps(run_of(other, TenantResult("contoso", home, TenantStatus.PARTIAL, error="e"))) == [
        Gap("contoso", "tenant only partly read", "e")
    ]
    # The home tenant not in this run: the check is a gap of this tenant.
    assert gaps(run_of(other)) == [Gap("fabrikam", "check app-credential-expiring not evaluated", "read at home")]
    # A check read at home hides only itself, not the checks listed after it.
    later = NotEvaluated("recipient-not-in-directory", "no recipients list")
    both = replace(other, not_evaluated=[*other.not_evaluated, later])
    assert gaps(run_of(both, TenantResult("contoso", home, TenantStatus.OK))) == [
        Gap("fabrikam", "check recipient-not-in-directory not evaluated", "no recipients list")
    ]


def test_not_safe_counts_the_findings_and_adds_what_is_incomplete():
    result = sample_result()
    judged = verdict(result, result.findings)
    assert judged.word == NOT_SAFE
    assert judged.reason == (
        "4 findings would make remediation fail (1 critical, 2 high, 1 medium). Also incomplete: 1 tenant failed "
        "and 4 other items could not be assessed; more may be hidden."
    )
    assert judged.gaps == tuple(gaps(result))
    clean = clean_result()
    one = finding(CONTOSO, "no-exchange-license", "high", user("u-alice", "alice@contoso.com"))
    assert verdict(clean, [one]) == verdict(clean, [one]).__class__(
        NOT_SAFE, "1 finding would make remediation fail (1 high).", ()
    )


def test_incomplete_names_failed_tenants_and_other_items_apart():
    two_failed = run_of(
        TenantResult("a", "a-id", TenantStatus.FAILED, error="x"),
        TenantResult("b", "b-id", TenantStatus.FAILED, error="y"),
    )
    judged = verdict(two_failed, [])
    assert judged.word == INCOMPLETE
    assert judged.reason == (
        "No findings in what was assessed, but 2 tenants failed. Do not read this as clean: "
        "see 'Could not be assessed' below."
    )
    one_item = run_of(TenantResult("a", "a-id", TenantStatus.OK, not_assessed={"probe failed": 1}))
    assert verdict(one_item, []).reason == (
        "No findings in what was assessed, but 1 other item could not be assessed. Do not read this as clean: "
        "see 'Could not be assessed' below."
    )
    assert verdict(clean_result(), []) == verdict(clean_result(), []).__class__(
        SAFE, "Every user of every tenant was assessed and nothing found would make remediation fail.", ()
    )


def test_each_tenant_is_judged_by_its_own_findings_and_gaps():
    result = sample_result()
    contoso, fabrikam, northwind = result.tenants
    judged = verdict(result, result.findings)
    # Finding tenant ids compare case-insensitively.
    shouted = [replace(f, tenant_id=f.tenant_id.upper()) for f in contoso.findings]
    assert tenant_verdict(contoso, shouted, judged) == NOT_SAFE
    lettered = "e419272c-dee4-42c8-8890-810aa7d8d9cf"  # the sample's ids are all digits: case shows only here
    for tenant_id, finding_id in ((lettered, lettered.upper()), (lettered.upper(), lettered), (lettered, lettered)):
        counted = [replace(f, tenant_id=finding_id) for f in contoso.findings]
        assert tenant_verdict(replace(contoso, tenant_id=tenant_id), counted, judged) == NOT_SAFE
    assert tenant_verdict(contoso, [], judged) == INCOMPLETE  # its user not assessed
    assert tenant_verdict(northwind, [], judged) == INCOMPLETE
    assert tenant_gaps(judged, "fabrikam") == [g for g in judged.gaps if g.tenant == "fabrikam"]
    assert [tenant_read(t, judged) for t in (contoso, fabrikam, northwind)] == ["partly", "partly", "not read"]
    clean = clean_result()
    assert tenant_verdict(clean.tenants[0], [], verdict(clean, [])) == SAFE
    assert tenant_read(clean.tenants[0], verdict(clean, [])) == "completely"
    # A gap for all tenants (probes off) makes every tenant incomplete.
    unprobed = replace(clean, probes=False)
    assert tenant_verdict(unprobed.tenants[0], [], verdict(unprobed, [])) == INCOMPLETE
    assert tenant_read(unprobed.tenants[0], verdict(unprobed, [])) == "partly"
