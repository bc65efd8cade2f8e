"""Hand-built users and snapshots for check tests: healthy defaults, override what the case is about."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from types import ModuleType

from audit.checks import CheckContext
from audit.config import RemediationAppConfig
from audit.models import (
    AssignedPlan,
    Dataset,
    Finding,
    License,
    LicenseState,
    MailboxProbe,
    ProvisionedPlan,
    TenantSnapshot,
    User,
)

NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)
TENANT_ID = "11111111-1111-4111-8111-111111111111"
VENDOR_TENANT_ID = "99999999-9999-4999-8999-999999999999"
APP_ID = "7d3c9d2e-5b1a-4c8e-9f6a-1e2d3c4b5a69"
GRAPH_SP_ID = "graph-sp-object-id"

# Service plans
EXO_P1 = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"  # EXCHANGE_S_STANDARD
EXO_P2 = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # EXCHANGE_S_ENTERPRISE
FOUNDATION = "113feb6c-3fe4-4440-bddc-54d774bf0318"  # EXCHANGE_S_FOUNDATION: no mailbox
ARCHIVE_ADDON = "176a09a6-7ec5-4039-ac02-b2791c6ba793"  # EXCHANGE_S_ARCHIVE_ADDON: no mailbox
# SKUs
SKU_E3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"  # ENTERPRISEPACK, carries EXO_P2
SKU_EXO_P1 = "4b9405b0-7788-4568-add1-99614e613b69"  # EXCHANGESTANDARD, carries EXO_P1
SKU_PBI_FREE = "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235"  # POWER_BI_STANDARD, carries FOUNDATION only
# Microsoft Graph application roles
MAIL_READWRITE = "e2a3a72e-5f79-4c64-b1b1-878b674786c9"
ORG_READ_ALL = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
MAIL_READ = "810c84a8-4a9e-49e6-bf7d-12d183f40d01"

DEFAULT_ORGANIZATION = {
    "id": TENANT_ID,
    "verifiedDomains": [{"name": "Contoso.com"}, {"name": "contoso.onmicrosoft.com"}],
}
MAILBOX = MailboxProbe("mailbox", purpose="user")
NO_MAILBOX = MailboxProbe("no_mailbox", code="MailboxNotEnabledForRESTAPI")


def user(
    uid: str = "u1",
    *,
    upn: str | None = None,
    mail: str | None = "",
    plans: Iterable[tuple] = (),
    licenses: Iterable[tuple] = (),
    states: Iterable[tuple] = (),
    provisioned: Iterable[tuple] = (),
    enabled: bool = True,
    guest: bool = False,
    synced: bool = False,
    proxy: Iterable[str] = (),
    created: str | None = "2024-01-01T00:00:00Z",
    deleted: str | None = None,
    display_name: str | None = None,
) -> User:
    """A directory user. plans: (plan_id, status[, service]); licenses: (sku_id, disabled_plans...);
    states: (sku_id, state, error, group); provisioned: (service, capability, provisioning)."""
    upn = upn or f"{uid}@contoso.com"
    return User(
        id=uid,
        upn=upn,
        display_name=display_name or uid.upper(),
        mail=upn if mail == "" else mail,
        proxy_addresses=tuple(proxy),
        user_type="Guest" if guest else "Member",
        enabled=enabled,
        created=created,
        sync_enabled=synced,
        immutable_id="aW1tdXRhYmxl" if synced else None,
        licenses=tuple(License(sku, tuple(disabled)) for sku, *disabled in licenses),
        plans=tuple(AssignedPlan(p[0], p[2] if len(p) > 2 else "exchange", p[1]) for p in plans),
        provisioned=tuple(ProvisionedPlan(*p) for p in provisioned),
        license_states=tuple(LicenseState(*s) for s in states),
        deleted=deleted,
    )


def e3_user(uid: str = "u1", status: str = "Enabled", **kw) -> User:
    """A user licensed with Office 365 E3 (Exchange Online Plan 2) assigned directly."""
    kw.setdefault("licenses", [(SKU_E3,)])
    kw.setdefault("states", [(SKU_E3, "Active", None, None)])
    kw.setdefault("provisioned", [("exchange", "Enabled", "Success")])
    return user(uid, plans=[(EXO_P2, status)], **kw)


def unlicensed(uid: str = "u1", **kw) -> User:
    return user(uid, **kw)


def _ds(value) -> Dataset:
    return value if isinstance(value, Dataset) else Dataset(value)


def healthy_sp(**overrides) -> dict:
    sp = {
        "id": "sp-etd",
        "appId": APP_ID,
        "displayName": "Threat Defense",
        "accountEnabled": True,
        "signInAudience": "AzureADMultipleOrgs",
        "appOwnerOrganizationId": VENDOR_TENANT_ID,
    }
    sp.update(overrides)
    return sp


def role(role_id: str, resource: str = GRAPH_SP_ID) -> dict:
    return {
        "id": f"assignment-{role_id[:8]}",
        "appRoleId": role_id,
        "principalId": "sp-etd",
        "resourceId": resource,
        "resourceDisplayName": "Microsoft Graph",
    }


def snapshot(
    users: Iterable[User] = (),
    *,
    probes=None,
    deleted=(),
    organization=None,
    skus=None,
    sp="healthy",
    roles=None,
    delegated=(),
    graph_sp_id=GRAPH_SP_ID,
    application=None,
    app_scope=None,
    recipients=None,
    exchange_online=True,
) -> TenantSnapshot:
    """A tenant snapshot. Pass a Dataset for any argument to set an error; defaults are healthy, with
    probes, the app registration, access policies and recipients not available."""
    if probes is None:
        probes = Dataset.missing("mailbox probes were switched off")
    elif isinstance(probes, dict):
        probes = Dataset(probes)
    return TenantSnapshot(
        tenant_name="contoso",
        tenant_id=TENANT_ID,
        collected_at=NOW,
        users=_ds(list(users)),
        deleted_users=_ds(list(deleted) if not isinstance(deleted, Dataset) else deleted),
        organization=_ds(organization if organization is not None else DEFAULT_ORGANIZATION),
        subscribed_skus=_ds(skus) if skus is not None else Dataset.missing("subscribed SKUs not read"),
        remediation_sp=_ds(healthy_sp() if sp == "healthy" else sp),
        remediation_roles=_ds(roles if roles is not None else [role(MAIL_READWRITE), role(ORG_READ_ALL)]),
        remediation_delegated=_ds(list(delegated) if not isinstance(delegated, Dataset) else delegated),
        graph_sp_id=_ds(graph_sp_id),
        application=_ds(application)
        if application is not None
        else Dataset.missing("the app registration lives in another tenant"),
        probes=probes,
        app_scope=_ds(app_scope)
        if app_scope is not None
        else Dataset.missing("Graph cannot read Exchange application access policies; export them"),
        recipients=_ds(recipients) if recipients is not None else Dataset.missing("no recipients list"),
        exchange_online=_ds(exchange_online),
    )


def context(
    *,
    now: datetime = NOW,
    tenant_count: int = 1,
    domains: tuple[str, ...] = (),
    home: str | None = None,
    warning_days: int = 30,
) -> CheckContext:
    return CheckContext(
        now=now,
        tenant_count=tenant_count,
        configured_tenant_ids=frozenset({TENANT_ID}),
        remediation_app=RemediationAppConfig(app_id=APP_ID, home_tenant_id=home, credential_warning_days=warning_days),
        domains=domains,
    )


def run(check: ModuleType, snap: TenantSnapshot, ctx: CheckContext | None = None) -> list[Finding]:
    return list(check.run(snap, ctx or context()))


def by_user(findings: list[Finding]) -> dict[str | None, Finding]:
    return {f.user_id: f for f in findings}
