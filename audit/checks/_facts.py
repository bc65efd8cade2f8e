"""Facts about users and mailboxes that several checks rely on, decided in one place.

- which Exchange Online plans a user effectively holds (honouring disabledPlans), by status;
- what the mailbox probe said, and whether the user can be assessed at all;
- whether an account is a hybrid, synchronised, mail-enabled one;
- how addresses compare (case-insensitive, `smtp:` prefix stripped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from audit import licensing
from audit.models import AssignedPlan, MailboxProbe, TenantSnapshot, User

ENABLED = "enabled"
GRACE = "warning"  # still works; stops when the grace period ends
LAPSED = frozenset({"suspended", "deleted", "lockedout"})
RESOURCE_PURPOSES = frozenset({"shared", "room", "equipment"})
# The audit's own app could not read the mailbox, or the probe gave up: we know nothing about it.
NOT_ASSESSED = frozenset({"access_denied", "failed"})
LICENSE_ERROR_STATES = frozenset({"error", "activewitherror"})
PROVISIONING_STUCK = frozenset({"pendinginput", "error", "pendingprovisioning"})
DIRECTORY_ONLY = "directory data only (no mailbox probe)"


class SkuIndex:
    """Which mailbox plans each SKU carries: the tenant's subscribedSkus first, the shipped table second."""

    def __init__(self, snapshot: TenantSnapshot):
        self._mailbox: dict[str, frozenset[str]] = {}
        self._names: dict[str, str] = {}
        mailbox_ids = licensing.MAILBOX_PLAN_IDS
        if snapshot.subscribed_skus.ok:
            for sku in snapshot.subscribed_skus.value or ():
                sku_id = str(sku.get("skuId") or "").lower()
                plans = {str(p.get("servicePlanId") or "").lower() for p in sku.get("servicePlans") or ()}
                self._mailbox[sku_id] = frozenset(plans & mailbox_ids)
                if sku.get("skuPartNumber"):
                    self._names[sku_id] = sku["skuPartNumber"]

    def mailbox_plans(self, sku_id: str) -> frozenset[str] | None:
        """Mailbox plans the SKU carries; None when neither the tenant nor the table knows the SKU."""
        sku_id = sku_id.lower()
        known = self._mailbox.get(sku_id)
        table = licensing.sku_mailbox_plan_ids(sku_id)
        if known is None and licensing.sku_part_number(sku_id) is None:
            return None
        return (known or frozenset()) | table

    def name(self, sku_id: str) -> str:
        return self._names.get(sku_id.lower()) or licensing.sku_part_number(sku_id) or sku_id


def plan_label(plan_id: str) -> str:
    return licensing.plan_name(plan_id) or plan_id


@dataclass(frozen=True)
class MailboxPlans:
    """A user's mailbox-giving Exchange plans, sorted by what their status means for the mailbox."""

    enabled: tuple[AssignedPlan, ...]
    grace: tuple[AssignedPlan, ...]
    lapsed: tuple[AssignedPlan, ...]
    disabled: tuple[tuple[str, str], ...]  # (plan id, SKU name) switched off through disabledPlans
    other_exchange: tuple[AssignedPlan, ...]  # Exchange plans that give no mailbox (Foundation ...)

    @property
    def usable(self) -> tuple[AssignedPlan, ...]:
        """Plans under which the mailbox works today (Enabled or in the Warning grace period)."""
        return self.enabled + self.grace

    @property
    def present(self) -> bool:
        return bool(self.enabled or self.grace or self.lapsed)


def _switched_off(user: User, skus: SkuIndex) -> dict[str, str]:
    """Mailbox plans disabled in every licence of the user that (may) carry them -> the SKU disabling it."""
    off: dict[str, str] = {}
    still_on: set[str] = set()
    for lic in user.licenses:
        disabled = set(lic.disabled_plans) & licensing.MAILBOX_PLAN_IDS
        for plan_id in disabled:
            off.setdefault(plan_id, skus.name(lic.sku_id))
        carried = skus.mailbox_plans(lic.sku_id)
        if carried is None:
            # A SKU we do not know may carry the plan: trust assignedPlans rather than guess it away.
            still_on |= licensing.MAILBOX_PLAN_IDS - disabled
        else:
            still_on |= carried - disabled
    return {plan_id: sku for plan_id, sku in off.items() if plan_id not in still_on}


def mailbox_plans(user: User, skus: SkuIndex) -> MailboxPlans:
    off = _switched_off(user, skus)
    enabled, grace, lapsed, other = [], [], [], []
    seen: set[tuple[str, str]] = set()
    for plan in user.plans:
        key = (plan.plan_id, plan.status)
        if key in seen:
            continue
        seen.add(key)
        status = plan.status.lower()
        if plan.plan_id not in licensing.MAILBOX_PLAN_IDS:
            if plan.service.lower() == "exchange":
                other.append(plan)
        elif plan.plan_id in off:
            continue
        elif status == ENABLED:
            enabled.append(plan)
        elif status == GRACE:
            grace.append(plan)
        elif status in LAPSED:
            lapsed.append(plan)
    return MailboxPlans(tuple(enabled), tuple(grace), tuple(lapsed), tuple(sorted(off.items())), tuple(other))


def describe_plans(plans: Iterable[AssignedPlan]) -> str:
    return ", ".join(f"{plan_label(p.plan_id)} ({p.status})" for p in plans)


def describe_licences(user: User, skus: SkuIndex) -> str:
    if not user.licenses:
        return "no licences"
    by_group = {s.sku_id: s.assigned_by_group for s in user.license_states if s.assigned_by_group}
    names = [skus.name(lic.sku_id) + (" (via group)" if lic.sku_id in by_group else "") for lic in user.licenses]
    return "licences: " + ", ".join(names)


def licence_errors(user: User, skus: SkuIndex) -> list[str]:
    return [
        f"licence {skus.name(s.sku_id)} in state {s.state}" + (f" ({s.error})" if s.error else "")
        for s in user.license_states
        if s.state.lower() in LICENSE_ERROR_STATES
    ]


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
    skus = SkuIndex(snapshot)
    for user in snapshot.users.value or ():
        probe = probe_of(snapshot, user)
        if is_licence_candidate(user, probe):
            yield user, probe, mailbox_plans(user, skus)


def smtp_proxy_addresses(user: User) -> list[str]:
    out = []
    for entry in user.proxy_addresses:
        prefix, sep, _ = entry.partition(":")
        if not sep or prefix.strip().lower() == "smtp":
            if address := normalize_address(entry):
                out.append(address)
    return out


def is_mail_enabled(user: User) -> bool:
    return bool(user.mail) or bool(smtp_proxy_addresses(user))


def is_hybrid_mail_enabled(user: User) -> bool:
    """Synchronised from on-premises AD (sync on, immutable id set) and carrying mail addresses."""
    return user.sync_enabled and bool(user.immutable_id) and is_mail_enabled(user)


def normalize_address(address: str | None) -> str:
    """Lower-case, trimmed, without an `smtp:`/`SMTP:` prefix. Other prefixes (sip:, x500:) are kept."""
    text = (address or "").strip()
    if text[:5].lower() == "smtp:":
        text = text[5:].strip()
    return text.lower()


def user_addresses(user: User) -> set[str]:
    """Every address that resolves to the user: mail, user principal name, SMTP proxy addresses."""
    found = {normalize_address(user.mail), normalize_address(user.upn), *smtp_proxy_addresses(user)}
    found.discard("")
    return found
