"""The catalogue's shape, and how run_checks treats missing data, undecidable checks and crashes."""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import audit.checks
from audit.checks import CHECKS, CheckUnavailable, app_not_consented, catalogue, run_checks
from audit.models import (
    MAILBOX_INACTIVE,
    RESOURCE_NOT_FOUND,
    UNKNOWN_REASON,
    USER_INVALID,
    CheckInfo,
    Dataset,
    MailboxProbe,
    Severity,
)
from tests.checks.builders import MAILBOX, NO_MAILBOX, context, e3_user, snapshot, unlicensed

ERRORS = (RESOURCE_NOT_FOUND, UNKNOWN_REASON, USER_INVALID, MAILBOX_INACTIVE)
EXPECTED_IDS = [
    "no-exchange-license",
    "exchange-license-suspended",
    "mailbox-not-provisioned",
    "on-premises-mailbox",
    "soft-deleted-user",
    "mailbox-outside-app-scope",
    "recipient-not-in-directory",
    "app-not-consented",
    "app-disabled",
    "app-missing-permission",
    "app-single-tenant",
    "domain-not-verified",
    "app-credential-expiring",
    "tenant-no-exchange-online",
]


def test_catalogue_lists_every_check_in_order():
    assert [c.id for c in catalogue()] == EXPECTED_IDS


def test_ids_match_module_names_and_every_module_is_registered():
    for module in CHECKS:
        assert module.__name__.rsplit(".", 1)[-1] == module.CHECK.id.replace("-", "_")
    package_dir = Path(audit.checks.__file__).parent
    on_disk = {p.stem for p in package_dir.glob("*.py") if not p.stem.startswith("_")}
    assert on_disk == {m.__name__.rsplit(".", 1)[-1] for m in CHECKS}


@pytest.mark.parametrize("info", catalogue(), ids=lambda c: c.id)
def test_every_check_has_complete_metadata(info: CheckInfo):
    assert info.title.strip() and info.cause.strip() and info.fix.strip()
    assert len(info.cause) > 80 and len(info.fix) > 80
    assert isinstance(info.severity, Severity)
    # predicts is built only from the four error strings (joined with " / " or with a parenthesis).
    leftover = info.predicts
    for error in ERRORS:
        leftover = leftover.replace(error, "")
    assert any(error in info.predicts for error in ERRORS)
    assert re.fullmatch(r"[ /()]*(then\s+once purged|once it lapses)?[ /()]*", leftover), info.predicts


def test_validation_rejects_a_module_whose_id_does_not_match():
    fake = SimpleNamespace(
        __name__="audit.checks.something_else",
        run=lambda s, c: [],
        CHECK=CheckInfo("no-such-check", "t", Severity.LOW, UNKNOWN_REASON, "c", "f"),
    )
    before = list(CHECKS)
    with pytest.raises(RuntimeError, match="does not match the module name"):
        audit.checks.register(fake)
    dup = SimpleNamespace(__name__="audit.checks.app_disabled", run=lambda s, c: [], CHECK=CHECKS[8].CHECK)
    with pytest.raises(RuntimeError, match="duplicate"):
        audit.checks.register(dup)
    assert CHECKS == before  # a rejected module is not added


def test_healthy_tenant_has_no_findings():
    users = [e3_user("a"), e3_user("b", synced=True), unlicensed("shared", enabled=False)]
    probes = {"a": MAILBOX, "b": MAILBOX, "shared": MailboxProbe("mailbox", purpose="shared")}
    findings, not_evaluated = run_checks(snapshot(users, probes=probes), context(domains=("contoso.com",)))
    assert findings == []
    # Only what the default snapshot lacks: policy export, recipients list, the app registration.
    assert {n.check_id for n in not_evaluated} == {
        "mailbox-outside-app-scope",
        "recipient-not-in-directory",
        "app-credential-expiring",
    }


def test_missing_dataset_propagates_its_reason_and_the_other_checks_still_run():
    reason = "the audit app may not read users (Graph 403); grant it the application permission User.Read.All"
    findings, not_evaluated = run_checks(_no_users(reason), context())
    reasons = {n.check_id: n.reason for n in not_evaluated}
    for check_id in (
        "no-exchange-license",
        "exchange-license-suspended",
        "mailbox-not-provisioned",
        "on-premises-mailbox",
    ):
        assert reasons[check_id] == reason
    assert [f.check_id for f in findings] == ["app-not-consented"]


def _no_users(reason):
    return dataclasses.replace(snapshot(sp=None), users=Dataset.missing(reason))


@pytest.mark.parametrize(
    ("sp_read_in", "roles_read_in", "expected"),
    [
        ("home", "home", "home"),  # every missing dataset is read in one other tenant: name it
        ("home", None, None),  # one of them is read nowhere else: a real gap here
        ("home", "other", None),  # read in two different tenants: no single tenant to point to
    ],
)
def test_a_check_is_pointed_to_another_tenant_only_when_that_tenant_reads_all_it_misses(
    sp_read_in, roles_read_in, expected
):
    snap = snapshot(
        sp=Dataset.missing("the service principal is read in its home tenant", read_in=sp_read_in),
        roles=Dataset.missing("the app roles are read in its home tenant", read_in=roles_read_in),
        application=Dataset.missing("the app registration is read in its home tenant", read_in="home"),
    )
    _, not_evaluated = run_checks(snap, context())
    read_in = {n.check_id: n.read_in for n in not_evaluated}
    reasons = {n.check_id: n.reason for n in not_evaluated}
    assert reasons["app-missing-permission"] == (
        "the service principal is read in its home tenant; the app roles are read in its home tenant"
    )
    assert read_in["app-missing-permission"] == expected  # needs the service principal and its roles
    assert read_in["app-credential-expiring"] == "home"  # needs the app registration only
    assert read_in["app-disabled"] == sp_read_in  # needs the service principal only


def test_probes_off_is_not_a_missing_dataset():
    findings, not_evaluated = run_checks(snapshot([unlicensed("bob")]), context())
    assert [f.check_id for f in findings] == ["no-exchange-license"]
    assert "no-exchange-license" not in {n.check_id for n in not_evaluated}


def test_an_exception_in_one_check_does_not_stop_the_others(caplog):
    def explode(snapshot, ctx):
        yield from ()
        raise KeyError("verifiedDomains")

    broken = SimpleNamespace(
        __name__="audit.checks.broken",
        run=explode,
        CHECK=CheckInfo("broken", "t", Severity.HIGH, UNKNOWN_REASON, "c", "f"),
    )
    with caplog.at_level(logging.ERROR, logger="audit"):
        findings, not_evaluated = run_checks(snapshot(sp=None), context(), checks=[broken, app_not_consented])
    assert [f.check_id for f in findings] == ["app-not-consented"]
    assert [(n.check_id, n.reason) for n in not_evaluated] == [
        ("broken", "the check failed: KeyError: 'verifiedDomains'")
    ]
    # The log names the tenant, the check and the error, with the traceback for whoever fixes the check.
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.getMessage() == "contoso: check broken failed: 'verifiedDomains'"
    assert record.exc_info and record.exc_info[0] is KeyError


def test_a_check_that_fails_half_way_contributes_no_findings():
    def half(snapshot, ctx):
        yield from app_not_consented.run(snapshot, ctx)
        raise ValueError("bad data")

    halfway = SimpleNamespace(
        __name__="audit.checks.halfway",
        run=half,
        CHECK=CheckInfo("halfway", "t", Severity.HIGH, UNKNOWN_REASON, "c", "f"),
    )
    findings, not_evaluated = run_checks(snapshot(sp=None), context(), checks=[halfway])
    assert findings == [] and not_evaluated[0].reason == "the check failed: ValueError: bad data"


def test_malformed_snapshot_data_only_costs_the_check_that_reads_it():
    snap = snapshot(
        [unlicensed("bob")],
        probes={"bob": NO_MAILBOX},
        organization={"id": "x", "verifiedDomains": "not-a-list"},
    )
    findings, not_evaluated = run_checks(snap, context(domains=("contoso.com",)))
    assert [f.check_id for f in findings] == ["no-exchange-license"]
    reasons = {n.check_id: n.reason for n in not_evaluated}
    assert reasons["domain-not-verified"].startswith("the check failed: AttributeError")


def test_check_unavailable_becomes_not_evaluated():
    def undecided(snapshot, ctx):
        raise CheckUnavailable("needs the thing")
        yield  # pragma: no cover

    module = SimpleNamespace(
        __name__="audit.checks.undecided",
        run=undecided,
        CHECK=CheckInfo("undecided", "t", Severity.LOW, UNKNOWN_REASON, "c", "f"),
    )
    assert run_checks(snapshot(), context(), checks=[module])[1][0].reason == "needs the thing"


def test_the_lists_derived_from_the_catalogue_are_the_ones_spelled_out_before():
    """Readiness, triage and the verdict once kept their own lists of check ids; derived from the checks'
    metadata they come out the same (readiness lists the user checks in catalogue order)."""
    from audit.checks import explaining, needing_consent, showing_no_consent
    from audit.readiness import mailbox_checks, tenant_items
    from audit.triage import mailbox_checks as triage_mailbox_checks

    assert tenant_items() == [
        ("tenant-no-exchange-online", "Exchange Online serves this tenant"),
        ("app-not-consented", "remediation app consented in this tenant"),
        ("app-disabled", "remediation app enabled"),
        ("app-missing-permission", "remediation app holds Mail.ReadWrite and Organization.Read.All"),
        ("app-single-tenant", "remediation app accepts this many tenants"),
        ("app-credential-expiring", "remediation app credentials valid"),
        ("domain-not-verified", "configured domains verified"),
    ]
    assert set(mailbox_checks()) == {
        "no-exchange-license",
        "exchange-license-suspended",
        "mailbox-not-provisioned",
        "on-premises-mailbox",
        "mailbox-outside-app-scope",
        "soft-deleted-user",
        "recipient-not-in-directory",
    }
    mailbox = ("on-premises-mailbox", "exchange-license-suspended", "no-exchange-license", "mailbox-not-provisioned")
    assert triage_mailbox_checks()[:4] == mailbox  # the first that fired for an account explains the error
    assert set(triage_mailbox_checks()[4:]) == {"recipient-not-in-directory", "soft-deleted-user"}  # never own one
    relevant = {
        RESOURCE_NOT_FOUND: {*mailbox, "recipient-not-in-directory", "soft-deleted-user"},
        MAILBOX_INACTIVE: {*mailbox, "recipient-not-in-directory", "soft-deleted-user"},
        UNKNOWN_REASON: {
            "app-not-consented",
            "app-disabled",
            "app-credential-expiring",
            "app-missing-permission",
            "mailbox-outside-app-scope",
        },
        USER_INVALID: {
            "app-single-tenant",
            "app-not-consented",
            "domain-not-verified",
            "recipient-not-in-directory",
            "soft-deleted-user",
            "mailbox-not-provisioned",
        },
    }
    assert {error: set(explaining(error)) for error in relevant} == relevant
    assert needing_consent() == {"app-disabled", "app-missing-permission", "app-single-tenant"}
    assert showing_no_consent() == {"app-not-consented"}


# Where a check id may still be written outside the catalogue: the exceptions file example in a docstring.
# Triage's per-check diagnosis names the checks it reasons about through their modules (module.CHECK.id).
ID_ALLOWED = ("audit/report/exceptions.py",)


def test_no_module_outside_the_catalogue_lists_check_ids():
    root = Path(__file__).resolve().parents[2]
    ids = "|".join(re.escape(c.id) for c in catalogue())
    spelled = re.compile(rf"[\"']({ids})[\"']")
    found = []
    for path in sorted((root / "audit").rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where.startswith(("audit/checks/", "audit/simulator/", *ID_ALLOWED)):
            continue
        found += [f"{where}: {m.group(1)}" for m in spelled.finditer(path.read_text(encoding="utf-8"))]
    assert found == []


def _module(name: str = "audit.checks.extra_check", **info) -> SimpleNamespace:
    fields = {"id": "extra-check", "title": "t", "severity": Severity.LOW, "predicts": UNKNOWN_REASON}
    fields |= {"cause": "c", "fix": "f"}
    fields.update(info)
    return SimpleNamespace(__name__=name, run=lambda s, c: [], CHECK=CheckInfo(**fields))


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            SimpleNamespace(__name__="x.y", run=lambda s, c: []),
            "x.y: a check module needs CHECK = CheckInfo(...) and run()",
        ),
        (
            SimpleNamespace(__name__="x.y", CHECK=_module().CHECK),
            "x.y: a check module needs CHECK = CheckInfo(...) and run()",
        ),
        (
            SimpleNamespace(__name__="x.y", CHECK=_module().CHECK, run="not callable"),
            "x.y: a check module needs CHECK = CheckInfo(...) and run()",
        ),
        (_module("extra_check"), None),  # a module outside a package: its whole name is compared
        (_module("audit.checks.nested.extra_check"), None),
        (
            _module("audit.checks.extra_check.more"),
            "audit.checks.extra_check.more: check id extra-check does not match",
        ),
        (_module(severity="low"), "extra-check: severity 'low' is not a Severity"),
        (_module(title=""), "extra-check: title, predicts, cause and fix must not be empty"),
        (_module(predicts=""), "extra-check: title, predicts, cause and fix must not be empty"),
        (_module(cause=""), "extra-check: title, predicts, cause and fix must not be empty"),
        (_module(fix=""), "extra-check: title, predicts, cause and fix must not be empty"),
        (_module(needs=("users", "mailboxes", "ghosts")), "extra-check: needs unknown dataset(s) ghosts, mailboxes"),
        (_module(reads=("ghosts",)), "extra-check: needs unknown dataset(s) ghosts"),
        (_module(scope="tenant"), "extra-check: scope 'tenant' is not a Scope"),
        (_module(counted_among="ghosts"), "extra-check: counted_among names unknown dataset ghosts"),
    ],
)
def test_register_says_what_is_wrong_with_a_check_module(module, message):
    before = list(CHECKS)
    try:
        if message is None:
            audit.checks.register(module)
            assert CHECKS == [*before, module]
        else:
            with pytest.raises(RuntimeError) as err:
                audit.checks.register(module)
            assert str(err.value).startswith(message), str(err.value)
            assert CHECKS == before
    finally:
        CHECKS[:] = before
