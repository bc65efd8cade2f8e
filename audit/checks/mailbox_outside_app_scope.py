"""Mailboxes an Exchange application access policy keeps the remediation app away from."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, user_finding
from audit.checks._facts import (
    SkuIndex,
    describe_probe,
    has_mailbox,
    is_shared_or_resource,
    mailbox_plans,
    not_assessed,
    probe_of,
)
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="mailbox-outside-app-scope",
    title="Mailbox outside the remediation app's access policy scope",
    severity=Severity.HIGH,
    predicts=UNKNOWN_REASON,
    cause=(
        "An Exchange Online application access policy limits which mailboxes the remediation app may open. "
        "This mailbox is in none of the RestrictAccess scopes, or is in a DenyAccess scope, so Exchange "
        "refuses the app's requests for it even though the app holds Mail.ReadWrite."
    ),
    fix=(
        "In Exchange Online PowerShell list the policies with Get-ApplicationAccessPolicy | "
        "Where-Object AppId -eq <app id>; add the mailbox to the mail-enabled security group used as the "
        "RestrictAccess scope (Add-DistributionGroupMember -Identity <group> -Member <upn>) or take it out "
        "of the DenyAccess group; check with Test-ApplicationAccessPolicy -Identity <upn> -AppId <app id>. "
        "Changes can take about an hour to apply. Re-export the policies for the next audit."
    ),
    needs=("app_scope", "users"),
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    scope = snapshot.app_scope.value
    if scope is None or not (scope.restrict or scope.deny):
        return  # the export lists no policy for this app: nothing restricts it
    allowed = frozenset().union(*scope.restrict.values()) if scope.restrict else frozenset()
    skus = SkuIndex(snapshot)
    for user in snapshot.users.value or ():
        if user.is_guest:
            continue
        probe = probe_of(snapshot, user)
        if not_assessed(probe) or not has_mailbox(probe, mailbox_plans(user, skus)):
            continue
        # A disabled account's own mailbox (typically a leaver) is not flagged; shared, room and equipment
        # mailboxes sit on disabled accounts by design and are remediated like any other, so they are.
        if not user.enabled and not is_shared_or_resource(probe):
            continue
        denied = sorted(name for name, members in scope.deny.items() if user.id in members)
        if denied:
            reason = f"in DenyAccess scope {', '.join(denied)}"
        elif scope.restrict and user.id not in allowed:
            reason = f"in none of the RestrictAccess scopes ({', '.join(sorted(scope.restrict))})"
        else:
            continue
        evidence = f"mailbox {reason}; {describe_probe(probe)}"
        yield user_finding(CHECK, snapshot, user, evidence)
