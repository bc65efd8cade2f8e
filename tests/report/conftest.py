"""Hand-built RunResults for the report tests.

`sample_result()` holds three tenants: contoso (ok: users with findings, a clean user, a soft-deleted
user, probes from both sources, a failed probe), fabrikam (partial: a check not evaluated) and
northwind (failed at sign-in). Plain functions, so the kill test's child process can import them too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.models import (
    RESOURCE_NOT_FOUND,
    UNKNOWN_REASON,
    USER_INVALID,
    AssignedPlan,
    CheckInfo,
    Dataset,
    Finding,
    License,
    LicenseState,
    MailboxProbe,
    NotEvaluated,
    RunResult,
    Severity,
    TenantResult,
    TenantSnapshot,
    TenantStatus,
    User,
)
from audit.report.tables import Lookups

CONTOSO = "11111111-1111-1111-1111-111111111111"
FABRIKAM = "22222222-2222-2222-2222-222222222222"
NORTHWIND = "33333333-3333-3333-3333-333333333333"
E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
EXO_PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"
MAIL_READWRITE = "e2a3a72e-5f79-4c64-b1b1-878b674786c9"
ORG_READ = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
GRAPH_SP = "99999999-0000-0000-0000-000000000001"
STARTED = datetime(2025, 3, 3, 6, 0, 0, tzinfo=UTC)

CATALOGUE = [
    CheckInfo(
        "no-exchange-license",
        "User has no Exchange Online licence",
        Severity.HIGH,
        RESOURCE_NOT_FOUND,
        "No licence gives this user a mailbox.",
        "Assign a licence with Exchange Online.",
        ("users",),
    ),
    CheckInfo(
        "on-premises-mailbox",
        "Mailbox is hosted on-premises",
        Severity.HIGH,
        "The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise",
        "The mailbox lives in on-premises Exchange.",
        "Move the mailbox to Exchange Online.",
        ("users",),
    ),
    CheckInfo(
        "soft-deleted-user",
        "User is soft-deleted",
        Severity.MEDIUM,
        "The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise",
        "The user sits in deleted items.",
        "Restore or purge the user.",
        ("deleted_users",),
    ),
    CheckInfo(
        "app-missing-permission",
        "Remediation app lacks a permission",
        Severity.CRITICAL,
        UNKNOWN_REASON,
        "Mail.ReadWrite is not granted.",
        "Grant admin consent.",
        ("remediation_roles",),
    ),
    CheckInfo(
        "recipient-not-in-directory",
        "Recipient not in the directory",
        Severity.LOW,
        USER_INVALID,
        "A recipient has no directory user.",
        "Fix the address.",
        ("recipients",),
    ),
]

LOOKUPS = Lookups(sku_part_number={E3: "ENTERPRISEPACK"}.get, mailbox_plan_ids=frozenset({EXO_PLAN}))


def user(
    uid: str,
    upn: str,
    name: str | None = None,
    *,
    exchange: str | None = "Enabled",
    group: bool = False,
    sync: bool = False,
    enabled: bool = True,
    deleted: str | None = None,
) -> User:
    plans = (AssignedPlan(EXO_PLAN, "exchange", exchange),) if exchange else ()
    licenses = (License(E3, ()),) if exchange else ()
    states = (LicenseState(E3, "Active", None, "gggg-group" if group else None),) if exchange else ()
    return User(
        id=uid,
        upn=upn,
        display_name=name,
        mail=upn,
        proxy_addresses=(f"SMTP:{upn}",),
        user_type="Member",
        enabled=enabled,
        created="2020-05-17T09:30:00Z",
        sync_enabled=sync,
        immutable_id=None,
        licenses=licenses,
        plans=plans,
        provisioned=(),
        license_states=states,
        deleted=deleted,
    )


def finding(tenant_id: str, check_id: str, severity: str, u: User | None, evidence: str = "evidence") -> Finding:
    info = next((c for c in CATALOGUE if c.id == check_id), None)
    return Finding(
        tenant_id=tenant_id,
        check_id=check_id,
        severity=Severity(severity),
        user_principal_name=u.upn if u else None,
        user_id=u.id if u else None,
        display_name=u.display_name if u else None,
        predicted_error=info.predicts if info else RESOURCE_NOT_FOUND,
        cause=info.cause if info else "cause",
        fix=info.fix if info else "fix",
        evidence=evidence,
    )


def snapshot(
    name: str,
    tenant_id: str,
    users: list[User],
    probes: dict[str, MailboxProbe] | None,
    *,
    deleted: list[User] = (),
    sp: dict | None | str = "present",
    roles=(MAIL_READWRITE, ORG_READ),
    application: Dataset | None = None,
    recipients: Dataset | None = None,
) -> TenantSnapshot:
    if sp == "present":
        sp_data = Dataset(
            {"id": "sp-1", "appId": "app-1", "accountEnabled": True, "signInAudience": "AzureADMultipleOrgs"}
        )
    elif isinstance(sp, str):
        sp_data = Dataset.missing(sp)
    else:
        sp_data = Dataset(sp)
    return TenantSnapshot(
        tenant_name=name,
        tenant_id=tenant_id,
        collected_at=STARTED,
        users=Dataset(list(users)),
        deleted_users=Dataset(list(deleted)),
        organization=Dataset(
            {"id": tenant_id, "verifiedDomains": [{"name": f"{name}.com"}, {"name": f"{name}.onmicrosoft.com"}]}
        ),
        subscribed_skus=Dataset([{"skuId": E3, "skuPartNumber": "ENTERPRISEPACK"}]),
        remediation_sp=sp_data,
        remediation_roles=Dataset([{"appRoleId": r, "resourceId": GRAPH_SP} for r in roles])
        if sp_data.ok and sp_data.value
        else Dataset.missing("no service principal"),
        remediation_delegated=Dataset([]),
        graph_sp_id=Dataset(GRAPH_SP),
        application=application or Dataset.missing("the app registration lives in another tenant"),
        probes=Dataset(probes) if probes is not None else Dataset.missing("mailbox probes were switched off"),
        app_scope=Dataset(None),
        recipients=recipients or Dataset.missing("no recipients list was given"),
        directory_user_count=len(users),
    )


def sample_result(
    *,
    started: datetime = STARTED,
    contoso_extra: list[Finding] = (),
    drop: tuple[str, ...] = (),
    display_name: str = "Carol <On-Prem>",
) -> RunResult:
    alice = user("u-alice", "alice@contoso.com", "Alice Clean")
    bob = user("u-bob", "bob@contoso.com", "Bob NoLicence", exchange=None)
    carol = user("u-carol", "carol@contoso.com", display_name, sync=True, group=True)
    dave = user("u-dave", "dave@contoso.com", "Dave Gone", deleted="2025-02-20T10:00:00Z")
    erin = user("u-erin", "erin@contoso.com", "Erin Unprobed")
    app = Dataset(
        {
            "id": "app-obj",
            "appId": "app-1",
            "signInAudience": "AzureADMultipleOrgs",
            "passwordCredentials": [{"displayName": "prod", "endDateTime": "2025-04-01T00:00:00Z"}],
            "keyCredentials": [{"displayName": "cert", "endDateTime": "2026-01-15T12:00:00Z"}],
        }
    )
    contoso_findings = [
        finding(CONTOSO, "no-exchange-license", "high", bob, "no licence with an Exchange plan"),
        finding(CONTOSO, "on-premises-mailbox", "high", carol, "onPremisesSyncEnabled, no cloud mailbox"),
        finding(CONTOSO, "soft-deleted-user", "medium", dave, "deleted 2025-02-20"),
        *contoso_extra,
    ]
    contoso_findings = [f for f in contoso_findings if f.user_id not in drop and f.check_id not in drop]
    contoso = TenantResult(
        name="contoso",
        tenant_id=CONTOSO,
        status=TenantStatus.OK,
        users_scanned=5,
        users_in_directory=5,
        mailboxes_probed=3,
        not_assessed={"mailbox probe failed after retries": 1},
        findings=contoso_findings,
        snapshot=snapshot(
            "contoso",
            CONTOSO,
            [alice, bob, carol, erin],
            {
                "u-alice": MailboxProbe("mailbox", "user", source="usage_report"),
                "u-bob": MailboxProbe("no_mailbox", None, "MailboxNotEnabledForRESTAPI"),
                "u-carol": MailboxProbe("failed", None, "TooManyRequests"),
            },
            deleted=[dave],
            application=app,
        ),
    )
    frank = user("u-frank", "frank@fabrikam.com", "Frank")
    fabrikam = TenantResult(
        name="fabrikam",
        tenant_id=FABRIKAM,
        status=TenantStatus.PARTIAL,
        error="the mailbox usage report could not be read (503 after retries)",
        users_scanned=1,
        users_in_directory=2,
        mailboxes_probed=0,
        not_evaluated=[NotEvaluated("recipient-not-in-directory", "no recipients list was given")],
        findings=[finding(FABRIKAM, "app-missing-permission", "critical", None, "Mail.ReadWrite not granted")],
        snapshot=snapshot("fabrikam", FABRIKAM, [frank], None, roles=(ORG_READ,)),
    )
    northwind = TenantResult(
        name="northwind",
        tenant_id=NORTHWIND,
        status=TenantStatus.FAILED,
        error="authentication: AADSTS7000215 invalid client secret",
    )
    return RunResult(
        started=started,
        finished=started + timedelta(minutes=4, seconds=7),
        version="0.1.0",
        probes=True,
        tenants=[contoso, fabrikam, northwind],
    )


def clean_result() -> RunResult:
    alice = user("u-alice", "alice@contoso.com", "Alice")
    probes = {"u-alice": MailboxProbe("mailbox", "user")}
    contoso = TenantResult(
        name="contoso",
        tenant_id=CONTOSO,
        status=TenantStatus.OK,
        users_scanned=1,
        users_in_directory=1,
        mailboxes_probed=1,
        snapshot=snapshot("contoso", CONTOSO, [alice], probes),
    )
    return RunResult(
        started=STARTED, finished=STARTED + timedelta(seconds=30), version="0.1.0", probes=True, tenants=[contoso]
    )


@pytest.fixture
def write(tmp_path):
    """write_reports with the test catalogue and lookups, into tmp_path/reports by default."""
    from audit.report import write_reports

    def run(result: RunResult, **kwargs):
        kwargs.setdefault("catalogue", CATALOGUE)
        kwargs.setdefault("lookups", LOOKUPS)
        kwargs.setdefault("now", result.finished + timedelta(seconds=1))
        return write_reports(result, kwargs.pop("out_dir", tmp_path / "reports"), **kwargs)

    return run
