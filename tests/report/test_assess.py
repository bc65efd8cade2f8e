"""assess(): the judgement of a run, on hand-built results, with no folder, no server and no file written."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

from audit.models import TenantStatus
from audit.report.assess import NO_PREVIOUS, Previous, assess, read_previous
from audit.report.cells import iso
from audit.report.exceptions import AcceptedException
from audit.report.trend import Point
from audit.report.verdict import INCOMPLETE, NOT_SAFE, SAFE
from tests.report.conftest import CONTOSO, FABRIKAM, STARTED, clean_result, finding, sample_result, user

NOW = STARTED + timedelta(hours=1)


def exception(check_id: str, user: str | None, expires: date) -> AcceptedException:
    return AcceptedException(check_id, "known", "secops", expires, user=user, source="exceptions.toml entry 1")


def test_a_first_run_counts_every_finding_as_new_from_its_start() -> None:
    result = sample_result()
    judged = assess(result, (), NO_PREVIOUS, stem="etd-audit-20250303T060000Z", now=NOW)

    assert [(f.check_id, f.user_id) for f in judged.findings] == [(f.check_id, f.user_id) for f in result.findings]
    assert {f.first_seen for f in judged.findings} == {iso(STARTED)}
    assert judged.changes.previous is None and judged.changes.new == list(judged.findings)
    assert judged.accepted == () and judged.expired_exceptions == ()
    assert judged.verdict.word == NOT_SAFE  # contoso's findings, and northwind failed
    assert judged.trend == (Point("etd-audit-20250303T060000Z.json", STARTED, judged.trend[-1].open),)
    assert dict(judged.trend[-1].open) == {"critical": 1, "high": 2, "medium": 1, "low": 0}
    assert judged.previous_statuses is None and judged.assessed == NOW
    assert all(f.first_seen is None for f in result.findings)  # the run itself is left as it was


def test_exceptions_split_the_findings_and_expired_ones_say_so() -> None:
    result = sample_result()
    in_force = exception("soft-deleted-user", "dave@contoso.com", date(2099, 1, 1))
    expired = exception("on-premises-mailbox", "carol@contoso.com", date(2025, 1, 1))
    unused = exception("no-exchange-license", "nobody@contoso.com", date(2099, 1, 1))

    judged = assess(result, [in_force, expired, unused], NO_PREVIOUS, stem="s", now=NOW)

    assert [(f.check_id, e) for f, e in judged.accepted] == [("soft-deleted-user", in_force)]
    assert [f.check_id for f in judged.accepted_findings] == ["soft-deleted-user"]
    assert judged.accepted_findings[0].first_seen == iso(STARTED)
    assert "soft-deleted-user" not in {f.check_id for f in judged.findings}
    assert judged.expired_exceptions == (expired,)
    assert list(judged.expired_hits.values()) == [expired]
    assert dict(judged.trend[-1].open) == {"critical": 1, "high": 2, "medium": 0, "low": 0}
    expired_note, unused_note = judged.notes
    assert expired_note.startswith("Exception expired on 2025-01-01") and "1 finding(s)" in expired_note
    assert unused_note.startswith("Exception matched no finding") and "nobody@contoso.com" in unused_note


def test_an_expired_exception_naming_the_tenant_is_found_by_the_tenants_name_as_one_in_force_is() -> None:
    from audit.report.exceptions import apply_exceptions

    one = finding(CONTOSO, "no-exchange-license", "high", user("u-bob", "bob@contoso.com"))
    names = {CONTOSO: "contoso"}

    def scoped(expires: date) -> AcceptedException:
        return AcceptedException("no-exchange-license", "known", "secops", expires, tenant="Contoso", source="e 1")

    in_force, expired = scoped(date(2099, 1, 1)), scoped(date(2025, 1, 1))
    assert apply_exceptions([one], [in_force], NOW.date(), names).accepted == [(one, in_force)]
    triage = apply_exceptions([one], [expired], NOW.date(), names)
    assert triage.counted == [one] and triage.expired_hits == {one.key: expired}


def test_against_a_previous_run_first_seen_carries_and_gone_findings_resolve() -> None:
    earlier = sample_result(started=STARTED - timedelta(days=7))
    seen = iso(STARTED - timedelta(days=30))
    contoso = earlier.tenants[0]
    earlier.tenants[0] = replace(contoso, findings=[replace(f, first_seen=seen) for f in contoso.findings])
    now_run = sample_result(drop=("u-dave",))  # the soft-deleted user was purged since
    point = Point("etd-audit-20250224T060000Z.json", earlier.started, {"critical": 1, "high": 2, "medium": 1})
    previous = Previous(
        path=Path("etd-audit-20250224T060000Z.json"),
        run=earlier,
        statuses={CONTOSO: "ok", FABRIKAM: "partial"},
        trend=(point,),
        notes=("Earlier report skipped: broken.json",),
    )

    judged = assess(now_run, (), previous, stem="etd-audit-20250303T060000Z", now=NOW, notes=("from the merge",))

    carried = {f.check_id: f.first_seen for f in judged.findings if f.tenant_id == CONTOSO}
    assert carried == {"no-exchange-license": seen, "on-premises-mailbox": seen}
    fabrikam = next(f for f in judged.findings if f.tenant_id == FABRIKAM)
    assert fabrikam.first_seen == iso(earlier.started)  # in the earlier run, which did not stamp it
    assert [(f.check_id, f.user_id) for f in judged.changes.resolved] == [("soft-deleted-user", "u-dave")]
    assert judged.changes.new == [] and judged.changes.previous == previous.path
    assert judged.trend[0] == point and judged.trend[-1].report == "etd-audit-20250303T060000Z.json"
    assert judged.notes == ("Earlier report skipped: broken.json", "from the merge")
    assert judged.previous_statuses == {CONTOSO: "ok", FABRIKAM: "partial"}


def test_the_verdict_follows_the_counted_findings() -> None:
    clean = clean_result()
    assert assess(clean, (), stem="s", now=NOW).verdict.word == SAFE
    everything = [exception(f.check_id, f.user_principal_name, date(2099, 1, 1)) for f in sample_result().findings]
    partial = sample_result()
    partial.tenants[2] = replace(partial.tenants[2], status=TenantStatus.PARTIAL, error="x")
    judged = assess(partial, everything, stem="s", now=NOW)
    assert judged.findings == () and len(judged.accepted) == 4
    assert judged.verdict.word == INCOMPLETE  # nothing counts, but not everything could be read


def test_the_same_inputs_give_the_same_assessment() -> None:
    result = sample_result()
    first = assess(result, (), stem="s", now=NOW)
    assert assess(result, (), stem="s", now=NOW) == first


def test_read_previous_keeps_the_newest_reports_statuses(tmp_path: Path, write) -> None:
    """has_news compares tenant statuses with the previous report: they come from the read under the lock."""
    from audit.delivery.message import has_news

    folder = tmp_path / "reports"
    first = write(sample_result(started=STARTED - timedelta(days=7)), out_dir=folder, stem="etd-audit-20250224T060000Z")
    healed = sample_result()
    healed.tenants[1] = replace(healed.tenants[1], status=TenantStatus.OK, error=None)
    previous = read_previous(folder, "etd-audit-20250303T060000Z", healed)
    assert previous.path == first.json
    assert previous.statuses == {CONTOSO: "ok", FABRIKAM: "partial", "33333333-3333-3333-3333-333333333333": "failed"}
    assert [p.report for p in previous.trend] == [first.json.name]

    judged = assess(healed, (), previous, stem="etd-audit-20250303T060000Z", now=NOW)
    first.json.unlink()  # the judgement holds what it needs: no file is read again
    assert judged.changes.new == [] and judged.changes.resolved == []
    assert has_news(healed, judged)  # fabrikam is ok now, partial before
    assert not has_news(sample_result(), assess(sample_result(), (), previous, stem="etd-audit-x", now=NOW))
