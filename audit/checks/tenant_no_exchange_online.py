"""The tenant has no Exchange Online organisation: no mailbox exists for the remediation to reach."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Scope, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="tenant-no-exchange-online",
    title="Tenant has no Exchange Online organisation",
    severity=Severity.CRITICAL,  # every mail call in the tenant fails, whatever the app is granted
    predicts=UNKNOWN_REASON,
    cause=(
        "Microsoft Graph's mail endpoints answer 401 OrganizationFromTenantGuidNotFound for this tenant: "
        "Exchange Online holds no organisation for it (no subscription with Exchange Online was ever active "
        "here, or it was removed), so there is no mailbox the remediation app could act on. This is not a "
        "missing permission; granting more to the audit or remediation app changes nothing."
    ),
    fix=(
        "Check that this is the tenant whose mail the product protects: if the mail domains live in another "
        "tenant, set up remediation (and this audit) for that tenant instead. If this tenant should host "
        "mailboxes, activate a subscription that includes Exchange Online (Microsoft 365 admin center > "
        "Billing > Your products) and assign its licences; Exchange Online creates the organisation and "
        "the mailboxes, which can take some hours. Then run the audit again."
    ),
    needs=("exchange_online",),
    scope=Scope.TENANT,
    readiness="Exchange Online serves this tenant",
    precedence=1,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    if snapshot.exchange_online.value is False:
        yield tenant_finding(
            CHECK,
            snapshot,
            (
                f"Outlook answered the mailbox probe with 401 OrganizationFromTenantGuidNotFound: Exchange "
                f"Online has no organisation for tenant {snapshot.tenant_id}"
            ),
        )
