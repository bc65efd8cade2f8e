"""Mailbox plans that lapsed (suspended, locked out, deleted), are in grace period, or failed to assign."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, user_finding, worst
from audit.checks._facts import describe_probe, licence_candidates
from audit.licensing import LICENSE_ERROR_STATES, SkuIndex, describe_plans
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="exchange-license-suspended",
    title="Exchange Online licence suspended, expiring or in error",
    severity=Severity.HIGH,
    predicts=MAILBOX_INACTIVE,
    cause=(
        "The user's Exchange Online mailbox plan is no longer enabled: the subscription lapsed or was "
        "cancelled (Suspended, LockedOut), the licence was removed (Deleted), it is in the grace period "
        "after expiry (Warning) and will stop soon, or the licence could not be assigned (error state). "
        "Exchange stops serving a mailbox whose plan is not enabled."
    ),
    fix=(
        "Microsoft 365 admin center > Billing > Your products: renew or reactivate the subscription, or move "
        "the user to an active one (Users > Active users > Licenses and apps). For licence errors: "
        "CountViolation - free or buy seats (Billing > Licenses); MutuallyExclusiveViolation - remove the "
        "conflicting plan; ProhibitedInUsageLocationViolation - set the user's usage location; for a group "
        "licence, fix the cause and use Entra admin center > Groups > the group > Licenses > Reprocess. "
        "Get-MgUserLicenseDetail -UserId <upn> shows the result."
    ),
    needs=("users",),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE),
    precedence=2,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
    for user, probe, plans in licence_candidates(snapshot):
        severities: list[Severity] = []
        evidence: list[str] = []
        if plans.lapsed and not plans.usable:
            severities.append(Severity.HIGH)
            evidence.append(f"mailbox plan {describe_plans(plans.lapsed)}; no Enabled mailbox plan")
        elif plans.grace and not plans.enabled:
            # Still works today, stops when the grace period ends: fails soon rather than now.
            severities.append(Severity.MEDIUM)
            evidence.append(f"mailbox plan {describe_plans(plans.grace)} (grace period); no Enabled mailbox plan")
            if plans.lapsed:
                evidence.append(f"also {describe_plans(plans.lapsed)}")
        for state in user.license_states:
            if state.state.lower() not in LICENSE_ERROR_STATES:
                continue
            carried = skus.mailbox_plans(state.sku_id) or frozenset()
            if not carried:
                continue  # only SKUs that would give the mailbox matter here
            severities.append(Severity.MEDIUM)
            how = f"via group {state.assigned_by_group}" if state.assigned_by_group else "assigned directly"
            evidence.append(
                f"licence {skus.name(state.sku_id)} ({how}) in state {state.state}"
                + (f": {state.error}" if state.error else "")
            )
        if severities:
            evidence.append(describe_probe(probe))
            yield user_finding(CHECK, snapshot, user, "; ".join(evidence), worst(severities))
