"""Mailboxes an Exchange application access policy, or the scope of an Exchange RBAC for Applications grant,
keeps the remediation app away from."""

from __future__ import annotations

from collections.abc import Iterator

from audit import rbac
from audit.checks._base import CheckContext, CheckUnavailable, user_finding
from audit.checks._facts import describe_probe, has_mailbox, is_shared_or_resource, not_assessed, probe_of
from audit.checks.app_missing_permission import REQUIRED_ROLES, graph_roles_held
from audit.licensing import SkuIndex, mailbox_plans
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Severity, TenantSnapshot, User

CHECK = CheckInfo(
    id="mailbox-outside-app-scope",
    title="Mailbox outside the remediation app's access policy scope",
    severity=Severity.HIGH,
    predicts=UNKNOWN_REASON,
    cause=(
        "An Exchange Online application access policy limits which mailboxes the remediation app may open. "
        "This mailbox is in none of the RestrictAccess scopes, or is in a DenyAccess scope, so Exchange "
        "refuses the app's requests for it even though the app holds Mail.ReadWrite. The same happens to a "
        "mailbox outside every scope of the app's Exchange RBAC for Applications grant when the app holds "
        "Mail.ReadWrite only through that grant."
    ),
    fix=(
        "In Exchange Online PowerShell list the policies with Get-ApplicationAccessPolicy | "
        "Where-Object AppId -eq <app id>; add the mailbox to the mail-enabled security group used as the "
        "RestrictAccess scope (Add-DistributionGroupMember -Identity <group> -Member <upn>) or take it out "
        "of the DenyAccess group; check with Test-ApplicationAccessPolicy -Identity <upn> -AppId <app id>. "
        "Changes can take about an hour to apply. Re-export the policies for the next audit. For RBAC for "
        "Applications: widen the management scope or administrative unit of the app's role assignment "
        "(Get-ManagementRoleAssignment -RoleAssigneeType ServicePrincipal), check with "
        "Test-ServicePrincipalAuthorization -Identity <service principal> -Resource <upn>, and re-export."
    ),
    needs=("users",),  # app_scope or rbac: one of them is enough, see run()
    reads=("app_scope", "rbac"),
    explains=(UNKNOWN_REASON,),
)


def _mailboxes(snapshot: TenantSnapshot) -> Iterator[tuple[User, object]]:
    """The mailboxes remediation could be asked to touch, with their probe."""
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
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
        yield user, probe


def _unreadable(grants: list[rbac.RbacGrant]) -> str | None:
    broken = [g for g in grants if g.unreadable]
    if not broken:
        return None
    return "the scope of the remediation app's RBAC for Applications grant is not evaluated: " + "; ".join(
        f"{g.role} scoped to {g.scope}: {g.unreadable}" for g in broken
    )


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    if not snapshot.rbac.ok:
        raise CheckUnavailable(snapshot.rbac.error or "the RBAC for Applications exports could not be read")
    grants = rbac.holds(snapshot.rbac.value or ())
    held = graph_roles_held(snapshot)
    if grants and held is not None and REQUIRED_ROLES["Mail.ReadWrite"] not in held:
        yield from _rbac_only(snapshot, grants)
        return
    # Mail.ReadWrite from Entra reaches every mailbox the access policies leave it; RBAC grants add to that.
    if not snapshot.app_scope.ok:
        raise CheckUnavailable(snapshot.app_scope.error or "the access policies could not be read")
    scope = snapshot.app_scope.value
    if scope is None or not (scope.restrict or scope.deny):
        return  # the export lists no policy for this app: nothing restricts it
    if any(g.organisation_wide for g in grants):
        return
    if reason := _unreadable(grants):
        raise CheckUnavailable(reason)
    allowed = frozenset().union(*scope.restrict.values()) if scope.restrict else frozenset()
    for user, probe in _mailboxes(snapshot):
        denied = sorted(name for name, members in scope.deny.items() if user.id in members)
        if denied:
            reason = f"in DenyAccess scope {', '.join(denied)}"
        elif scope.restrict and user.id not in allowed:
            reason = f"in none of the RestrictAccess scopes ({', '.join(sorted(scope.restrict))})"
        else:
            continue
        if grants:
            reached = [g.reaches(user, probe) for g in grants]
            if True in reached or None in reached:
                continue  # an RBAC grant reaches it (or may: the audit cannot tell, so it does not guess)
            reason += f", and outside the RBAC for Applications scopes ({rbac.describe(grants)})"
        evidence = f"mailbox {reason}; {describe_probe(probe)}"
        yield user_finding(CHECK, snapshot, user, evidence)


def _rbac_only(snapshot: TenantSnapshot, grants: list[rbac.RbacGrant]) -> Iterator[Finding]:
    """The app holds Mail.ReadWrite only through Exchange RBAC: its grants' scopes are all it reaches."""
    if any(g.organisation_wide for g in grants):
        return
    if reason := _unreadable(grants):
        raise CheckUnavailable(reason)
    for user, probe in _mailboxes(snapshot):
        reached = [g.reaches(user, probe) for g in grants]
        if True in reached or None in reached:
            continue
        evidence = (
            "mailbox outside every scope of the app's Exchange RBAC for Applications grant "
            f"({rbac.describe(grants)}), the only way it holds Mail.ReadWrite; {describe_probe(probe)}"
        )
        yield user_finding(CHECK, snapshot, user, evidence)
