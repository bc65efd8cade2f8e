"""Domains the remediation product is set up for that the tenant has not verified."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, CheckUnavailable, tenant_finding
from audit.models import USER_INVALID, CheckInfo, Finding, Scope, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="domain-not-verified",
    title="Configured domain not verified in this tenant",
    # High rather than medium: every user addressed in the domain fails, not one account.
    severity=Severity.HIGH,
    predicts=USER_INVALID,
    cause=(
        "A domain the remediation product is configured for in this tenant is not one of the tenant's "
        "verified domains, so users addressed in that domain cannot be found here: they live in another "
        "tenant, or the domain was removed or never verified."
    ),
    fix=(
        "Microsoft 365 admin center > Settings > Domains: add and verify the domain (publish the TXT record "
        "it shows), or map the domain to the tenant that owns it in the remediation product and in this "
        "audit's configuration (tenants[].domains). Get-MgDomain lists the tenant's domains and whether "
        "each is verified."
    ),
    needs=("organization",),
    scope=Scope.TENANT,
    explains=(USER_INVALID,),
    readiness="configured domains verified",
    legacy_subject=r"^domain (\S+)",
    precedence=7,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    organization = snapshot.organization.value
    if organization is None:
        raise CheckUnavailable("the organization was not returned, so its verified domains are unknown")
    names = {str(d.get("name") or "").lower() for d in organization.get("verifiedDomains") or ()}
    verified = sorted(names - {""})
    for domain in (d.strip() for d in ctx.domains):
        if domain.lower() not in verified:
            yield tenant_finding(
                CHECK,
                snapshot,
                (
                    f"domain {domain} is configured for this tenant but is not among its verified domains "
                    f"({', '.join(verified) or 'none'})"
                ),
                subject=domain,
            )
