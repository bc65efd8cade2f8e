"""Enabled members without an Exchange Online plan that creates a mailbox, and no mailbox found."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, user_finding
from audit.checks._facts import describe_probe, is_hybrid_mail_enabled, licence_candidates
from audit.licensing import SkuIndex, describe_licences, describe_plans, licence_errors, plan_label
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="no-exchange-license",
    title="User has no Exchange Online mailbox licence",
    severity=Severity.HIGH,
    predicts=f"{RESOURCE_NOT_FOUND} / {MAILBOX_INACTIVE}",
    cause=(
        "The account holds no enabled Exchange Online plan that creates a mailbox (Exchange Foundation, "
        "archiving or protection plans do not), or the Exchange app is switched off in its licence, so "
        "Exchange Online has no mailbox for the remediation app to act on."
    ),
    fix=(
        "Microsoft 365 admin center > Users > Active users > the user > Licenses and apps: assign a licence "
        "that includes Exchange Online (Plan 1/2, Kiosk, or a suite such as Microsoft 365 Business Standard "
        "or E3) and make sure its Exchange Online app is ticked; with group-based licensing add the user to "
        "the licensing group instead. Graph: POST /users/{id}/assignLicense. The mailbox appears within "
        "minutes to a few hours. If the account must not have a mailbox, keep mail from being routed to it."
    ),
    needs=("users",),
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE),
    precedence=3,
)


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    skus = SkuIndex.from_skus(snapshot.subscribed_skus)
    for user, probe, plans in licence_candidates(snapshot):
        if probe is not None and probe.outcome == "mailbox":
            continue
        if is_hybrid_mail_enabled(user):
            continue  # its mailbox may be on-premises: on-premises-mailbox decides
        if plans.present:
            continue  # a mailbox plan exists (maybe suspended): exchange-license-suspended decides
        evidence = ["no enabled Exchange Online plan that gives a mailbox"]
        if plans.disabled:
            evidence.append(
                "switched off in the licence: "
                + ", ".join(f"{plan_label(plan_id)} in {sku}" for plan_id, sku in plans.disabled)
            )
        if plans.other_exchange:
            evidence.append("Exchange plans held, none giving a mailbox: " + describe_plans(plans.other_exchange))
        evidence.append(describe_licences(user, skus))
        evidence.extend(licence_errors(user, skus))
        evidence.append(describe_probe(probe))
        yield user_finding(CHECK, snapshot, user, "; ".join(evidence))
