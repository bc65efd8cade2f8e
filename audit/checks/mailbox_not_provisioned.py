"""Licensed for an Exchange Online mailbox, but Exchange has not created one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from audit.checks._base import CheckContext, as_utc, parse_time, user_finding
from audit.checks._facts import (
    DIRECTORY_ONLY,
    PROVISIONING_STUCK,
    describe_probe,
    is_hybrid_mail_enabled,
    licence_candidates,
)
from audit.licensing import describe_plans
from audit.models import (
    MAILBOX_INACTIVE,
    RESOURCE_NOT_FOUND,
    USER_INVALID,
    CheckInfo,
    Finding,
    Severity,
    TenantSnapshot,
)

# A new mailbox usually appears within minutes but may take up to a day: younger accounts are only
# medium (they may still resolve on their own).
PROVISIONING_WINDOW = timedelta(hours=24)

CHECK = CheckInfo(
    id="mailbox-not-provisioned",
    title="Licensed user whose mailbox was never created",
    severity=Severity.HIGH,
    predicts=RESOURCE_NOT_FOUND,
    cause=(
        "The user holds an enabled Exchange Online mailbox plan, but Exchange Online has not created the "
        "mailbox: provisioning is still pending, failed, or is blocked, typically by another object (mail "
        "contact, mail user, group) already using the user's address."
    ),
    fix=(
        "Allow up to 24 hours after a new licence. If it persists: in Exchange Online PowerShell run "
        "Get-EXORecipient -Filter \"EmailAddresses -eq 'smtp:<address>'\" to find a conflicting object and "
        "remove or rename it; check Microsoft 365 admin center > Users > Active users > the user > Mail for "
        "a provisioning error; then untick and re-tick Exchange Online under Licenses and apps to retry. "
        "A synchronised user whose mailbox is still on-premises needs a migration instead "
        "(see on-premises-mailbox)."
    ),
    needs=("users",),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE, USER_INVALID),
    precedence=4,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    for user, probe, plans in licence_candidates(snapshot):
        if not plans.usable:
            continue
        evidence = [f"holds {describe_plans(plans.usable)}"]
        if probe is not None:
            if probe.outcome != "no_mailbox" or is_hybrid_mail_enabled(user):
                continue  # mailbox found, or a hybrid user whose mailbox is on-premises
            evidence.append(f"but no mailbox exists: {describe_probe(probe)}")
        else:
            stuck = sorted(
                {
                    p.provisioning_status
                    for p in user.provisioned
                    if p.service.lower() == "exchange" and p.provisioning_status.lower() in PROVISIONING_STUCK
                }
            )
            if not stuck:
                continue
            evidence.append("Exchange provisioning status " + ", ".join(stuck))
            evidence.append(DIRECTORY_ONLY)
        severity = None
        created = parse_time(user.created)
        if created is not None and as_utc(ctx.now) - created < PROVISIONING_WINDOW:
            hours = int((as_utc(ctx.now) - created).total_seconds() // 3600)
            evidence.append(f"account created {hours} h ago: provisioning may still be running")
            severity = Severity.MEDIUM
        yield user_finding(CHECK, snapshot, user, "; ".join(evidence), severity)
