"""Hybrid users whose mailbox lives on the on-premises Exchange server, out of Graph's reach."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, user_finding
from audit.checks._facts import describe_probe, is_hybrid_mail_enabled, not_assessed, probe_of
from audit.licensing import SkuIndex, describe_plans, mailbox_plans
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="on-premises-mailbox",
    title="Mailbox hosted on-premises (hybrid)",
    severity=Severity.HIGH,
    predicts=MAILBOX_INACTIVE,
    cause=(
        "The account is synchronised from on-premises Active Directory and is mail-enabled, but its mailbox "
        "is not in Exchange Online. Graph reaches Exchange Online mailboxes only (hybrid REST access to "
        "on-premises mailboxes ended in 2023), so the remediation cannot touch this mailbox."
    ),
    fix=(
        "Move the mailbox to Exchange Online: Exchange admin center > Migration > Add migration batch > "
        "Remote move migration (or New-MigrationBatch / New-MoveRequest -Remote), and give the user an "
        "Exchange Online licence. Confirm where it lives with Get-EXORecipient <upn> | fl "
        "RecipientTypeDetails (MailUser = on-premises). Until it moves, remediate this mailbox with "
        "on-premises tools."
    ),
    needs=("users",),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE),
    precedence=1,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
    for user in snapshot.users.value or ():
        # Disabled synchronised accounts are left out: most are leavers whose cloud licence was removed,
        # which cannot be told apart from an on-premises shared mailbox here.
        if user.is_guest or not user.enabled or not is_hybrid_mail_enabled(user):
            continue
        probe = probe_of(snapshot, user)
        if not_assessed(probe):
            continue
        plans = mailbox_plans(user, skus)
        if probe is not None:
            if probe.outcome != "no_mailbox":
                continue
            if plans.lapsed and not plans.usable:
                continue  # a cloud mailbox whose licence lapsed: exchange-license-suspended
        elif plans.present:
            continue  # without a probe, a mailbox plan means the mailbox is (meant to be) in the cloud
        address = user.mail or next(iter(user.proxy_addresses), "")
        evidence = [f"synchronised from on-premises AD (immutable id set), mail-enabled ({address})"]
        evidence.append(f"holds {describe_plans(plans.usable)}" if plans.usable else "no Exchange Online mailbox plan")
        evidence.append(describe_probe(probe))
        yield user_finding(CHECK, snapshot, user, "; ".join(evidence))
