"""A check that exists only in the tests: it flags one chosen account, to show that a check added to the
catalogue reaches readiness, triage and the report with no other module naming it."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._base import CheckContext, user_finding
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, CheckInfo, Finding, Scope, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="throwaway-check",
    title="Account picked by the throw-away test check",
    severity=Severity.HIGH,
    predicts=RESOURCE_NOT_FOUND,
    cause="The test picked this account.",
    fix="Nothing: the check exists only in the tests.",
    needs=("users",),
    scope=Scope.USER,
    explains=(RESOURCE_NOT_FOUND, MAILBOX_INACTIVE),
    precedence=0,  # named before the built-in mailbox checks when the same account has several findings
)

PICKED: set[str] = set()  # user principal names the check flags, lower-case; set by the test
BROKEN: list[str] = []  # a message here makes the check fail with it


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    if BROKEN:
        raise RuntimeError(BROKEN[0])
    for user in snapshot.users.value or ():
        if user.upn.lower() in PICKED:
            yield user_finding(CHECK, snapshot, user, f"picked by the test: {user.upn}")
