"""Deleted users still in the 30-day deleted-items container."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

from audit.checks._base import CheckContext, as_utc, day, parse_time, user_finding
from audit.licensing import SkuIndex, describe_plans, mailbox_plans
from audit.models import (
    MAILBOX_INACTIVE,
    RESOURCE_NOT_FOUND,
    USER_INVALID,
    CheckInfo,
    Finding,
    Severity,
    TenantSnapshot,
    is_mail_enabled,
)

RETENTION = timedelta(days=30)  # Entra ID purges deleted users after 30 days

CHECK = CheckInfo(
    id="soft-deleted-user",
    title="Deleted user still within the 30-day restore window",
    severity=Severity.MEDIUM,  # one account, and often a deliberate deletion
    predicts=f"{MAILBOX_INACTIVE} (then {USER_INVALID} once purged)",
    cause=(
        "The user was deleted and sits in the Entra ID deleted-users container; its mailbox is "
        "soft-deleted with it. Messages already delivered to it cannot be remediated, and after 30 days "
        "the account is purged and its address no longer resolves at all."
    ),
    fix=(
        "If the user should still receive mail, restore the account: Entra admin center > Users > Deleted "
        "users > Restore (or POST /directory/deletedItems/{id}/restore); licences and mailbox come back "
        "with it. If the deletion is intended, nothing is needed beyond making sure no alias or mail flow "
        "still routes mail to the address. To keep the content, restore it, place a litigation hold or "
        "retention policy on the mailbox, and delete it again (it then becomes an inactive mailbox)."
    ),
    needs=("deleted_users",),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE, USER_INVALID),
    counted_among="deleted_users",
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
    now = as_utc(ctx.now)
    for user in snapshot.deleted_users.value or ():
        plans = mailbox_plans(user, skus)
        if user.is_guest or not (is_mail_enabled(user) or plans.present):
            continue  # never had a mailbox or an address mail could reach: nothing to remediate
        deleted = parse_time(user.deleted)
        if deleted is None:
            evidence = ["in the deleted-users container (deletion date not reported)"]
        else:
            purge = deleted + RETENTION
            days_left = max(0, math.ceil((purge - now).total_seconds() / 86400))
            evidence = [f"deleted {day(deleted)}; purged permanently around {day(purge)} ({days_left} days left)"]
        if user.mail:
            evidence.append(f"address {user.mail}")
        if plans.present:
            evidence.append(f"held {describe_plans(plans.enabled + plans.grace + plans.lapsed)}")
        yield user_finding(CHECK, snapshot, user, "; ".join(evidence))
