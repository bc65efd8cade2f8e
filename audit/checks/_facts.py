"""Facts about users and mailboxes that several checks rely on, decided in one place.

Which Exchange Online plans a user effectively holds lives in audit.licensing, and the address rules in
audit.models, because collection needs them too; here:
- which users the licence checks look at, with their mailbox plans;
- what the mailbox probe said, and whether the user can be assessed at all;
- whether an account is a hybrid, synchronised, mail-enabled one;
- how addresses compare (case-insensitive, `smtp:` prefix stripped).
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.licensing import MailboxPlans, SkuIndex, mailbox_plans
from audit.models import MailboxProbe, TenantSnapshot, User, is_mail_enabled, normalize_address, smtp_proxy_addresses

RESOURCE_PURPOSES = frozenset({"shared", "room", "equipment"})
# The audit's own app could not read the mailbox, or the probe gave up: we know nothing about it.
NOT_ASSESSED = frozenset({"access_denied", "failed"})
PROVISIONING_STUCK = frozenset({"pendinginput", "error", "pendingprovisioning"})
DIRECTORY_ONLY = "directory data only (no mailbox probe)"


# --- mailbox probe -----------------------------------------------------------------------------------


def probe_of(snapshot: TenantSnapshot, user: User) -> MailboxProbe | None:
    """The probe result for the user, None when probes are off or the user was not probed."""
    if not snapshot.probes.ok:
        return None
    return (snapshot.probes.value or {}).get(user.id)


def not_assessed(probe: MailboxProbe | None) -> bool:
    """A refused or failed probe says nothing about the mailbox: such users are left out, not flagged."""
    return probe is not None and probe.outcome in NOT_ASSESSED


def is_shared_or_resource(probe: MailboxProbe | None) -> bool:
    """Shared, room and equipment mailboxes need no licence (a Teams Rooms account is an enabled room
    mailbox). The usage report gives "shared" only where it has a Recipient Type column (beta); its
    other mailboxes are licence candidates like probed user mailboxes."""
    return probe is not None and probe.outcome == "mailbox" and (probe.purpose or "").lower() in RESOURCE_PURPOSES


def has_mailbox(probe: MailboxProbe | None, plans: MailboxPlans) -> bool | None:
    """True/False from the probe; without one, from the licence (a usable mailbox plan); None: unknown."""
    if probe is None:
        return bool(plans.usable)
    if probe.outcome == "mailbox":
        return True
    if probe.outcome == "no_mailbox":
        return False
    return None


def describe_probe(probe: MailboxProbe | None) -> str:
    if probe is None:
        return DIRECTORY_ONLY
    where = "mailbox usage report" if probe.source == "usage_report" else "mailbox probe"
    text = f"{where}: {probe.outcome}"
    if probe.code:
        text += f" ({probe.code})"
    if probe.purpose and probe.outcome == "mailbox":
        text += f", purpose {probe.purpose}"
    return text


# --- accounts and addresses ---------------------------------------------------------------------------


def is_licence_candidate(user: User, probe: MailboxProbe | None) -> bool:
    """Who the licence checks look at: enabled members that can be assessed and are not shared/resource."""
    return user.enabled and not user.is_guest and not not_assessed(probe) and not is_shared_or_resource(probe)


def licence_candidates(snapshot: TenantSnapshot) -> Iterator[tuple[User, MailboxProbe | None, MailboxPlans]]:
    """The users the licence checks look at, each with its probe and its Exchange mailbox plans."""
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
    for user in snapshot.users.value or ():
        probe = probe_of(snapshot, user)
        if is_licence_candidate(user, probe):
            yield user, probe, mailbox_plans(user, skus)


def is_hybrid_mail_enabled(user: User) -> bool:
    """Synchronised from on-premises AD (sync on, immutable id set) and carrying mail addresses."""
    return user.sync_enabled and bool(user.immutable_id) and is_mail_enabled(user)


def user_addresses(user: User) -> set[str]:
    """Every address that resolves to the user: mail, user principal name, SMTP proxy addresses."""
    found = {normalize_address(user.mail), normalize_address(user.upn), *smtp_proxy_addresses(user)}
    found.discard("")
    return found
