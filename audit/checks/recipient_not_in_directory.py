"""Recipient addresses that no user in the directory owns."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from audit.checks._base import CheckContext, day, parse_time, tenant_finding
from audit.checks._facts import user_addresses
from audit.models import (
    MAILBOX_INACTIVE,
    RESOURCE_NOT_FOUND,
    USER_INVALID,
    CheckInfo,
    Finding,
    Severity,
    TenantSnapshot,
    User,
    normalize_address,
)

CHECK = CheckInfo(
    id="recipient-not-in-directory",
    title="Recipient address not owned by any user",
    severity=Severity.MEDIUM,  # one address; may also be a group or contact the product cannot act on
    predicts=USER_INVALID,
    cause=(
        "No account in this tenant has the address as its mail address, user principal name or proxy "
        "address, so Graph cannot resolve the user the remediation product asks for: the owner was deleted "
        "or renamed, the address belongs to a group, contact or another tenant, or it was mistyped."
    ),
    fix=(
        "Look the address up with Get-EXORecipient -Identity <address> or in Exchange admin center > "
        "Recipients. If the user was renamed, add the old address as an alias (Set-Mailbox <user> "
        "-EmailAddresses @{add='smtp:<address>'}); if the owner was deleted by mistake, restore it from "
        "Entra admin center > Users > Deleted users within 30 days; if it belongs to a group, contact or "
        "another tenant, remediation cannot act on it in this tenant."
    ),
    needs=("recipients", "users"),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE, USER_INVALID),
    counted_among="recipients",
)


def _owners(users: list[User]) -> dict[str, User]:
    owners: dict[str, User] = {}
    for user in users:
        for address in user_addresses(user):
            owners.setdefault(address, user)
    return owners


def _verified(snapshot: TenantSnapshot) -> set[str]:
    organization = snapshot.organization.value or {}
    return {str(d.get("name") or "").lower() for d in organization.get("verifiedDomains") or ()} - {""}


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    """Each address is judged in the tenant that owns its domain; with several tenants in a run, an
    address of another tenant's domain is left to that tenant, and one of nobody's domain is reported
    once, in the first tenant."""
    owners = _owners(snapshot.users.value or [])
    ours = _verified(snapshot) | {d.lower() for d in ctx.domains}
    deleted = _owners(snapshot.deleted_users.value or []) if snapshot.deleted_users.ok else {}
    seen: set[str] = set()
    for raw in snapshot.recipients.value or ():
        address = normalize_address(raw)
        if not address or address in seen:
            continue
        seen.add(address)
        if address in owners:
            continue
        domain = address.rpartition("@")[2]
        evidence = f"no user owns {address} as mail, user principal name or proxy address"
        if domain not in ours:
            if ctx.tenant_count > 1 and (domain in ctx.other_domains or not ctx.first_tenant):
                continue  # another tenant's address, or reported by the first tenant
            whose = "any configured tenant" if ctx.tenant_count > 1 else "this tenant"
            evidence += f"; {domain} is not a verified domain of {whose}"
        former = deleted.get(address)
        if former is not None:
            when = parse_time(former.deleted)
            evidence += f"; it belongs only to the soft-deleted user {former.upn}" + (
                f" (deleted {day(when)})" if when else ""
            )
        elif not snapshot.deleted_users.ok:
            evidence += f"; soft-deleted users could not be checked: {snapshot.deleted_users.error}"
        # The address stands where the user would: it is what the product tried to resolve. No user id:
        # the address belongs to no account in the directory (a soft-deleted owner is named in the
        # evidence and has its own soft-deleted-user finding).
        yield replace(tenant_finding(CHECK, snapshot, evidence), user_principal_name=address)
