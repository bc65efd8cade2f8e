"""The check catalogue: one module per check, each with `CHECK` metadata and a pure `run(snapshot, ctx)`.

Checks never call Graph. A check whose datasets could not be read is not run and is reported as not
evaluated with the dataset's reason; a check that cannot decide raises CheckUnavailable; a check that
crashes is reported as not evaluated with the error, and the others still run.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import fields
from types import ModuleType

from audit.checks import (
    app_credential_expiring,
    app_disabled,
    app_missing_permission,
    app_not_consented,
    app_single_tenant,
    domain_not_verified,
    exchange_license_suspended,
    mailbox_not_provisioned,
    mailbox_outside_app_scope,
    no_exchange_license,
    on_premises_mailbox,
    recipient_not_in_directory,
    soft_deleted_user,
    tenant_no_exchange_online,
)
from audit.checks._base import CheckContext, CheckUnavailable
from audit.models import CheckInfo, Finding, NotEvaluated, Scope, Severity, TenantSnapshot

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckUnavailable",
    "catalogue",
    "explaining",
    "check_info",
    "needing_consent",
    "register",
    "run_checks",
    "showing_no_consent",
]

log = logging.getLogger("audit")

CHECKS: list[ModuleType] = [
    no_exchange_license,
    exchange_license_suspended,
    mailbox_not_provisioned,
    on_premises_mailbox,
    soft_deleted_user,
    mailbox_outside_app_scope,
    recipient_not_in_directory,
    app_not_consented,
    app_disabled,
    app_missing_permission,
    app_single_tenant,
    domain_not_verified,
    app_credential_expiring,
    tenant_no_exchange_online,
]

_DATASETS = frozenset(f.name for f in fields(TenantSnapshot))


def _validate(checks: Sequence[ModuleType]) -> None:
    """Fail at import on a malformed catalogue rather than mid-audit."""
    seen: set[str] = set()
    for module in checks:
        info = getattr(module, "CHECK", None)
        if not isinstance(info, CheckInfo) or not callable(getattr(module, "run", None)):
            raise RuntimeError(f"{module.__name__}: a check module needs CHECK = CheckInfo(...) and run()")
        if info.id in seen:
            raise RuntimeError(f"{module.__name__}: duplicate check id {info.id}")
        seen.add(info.id)
        if module.__name__.rsplit(".", 1)[-1] != info.id.replace("-", "_"):
            raise RuntimeError(f"{module.__name__}: check id {info.id} does not match the module name")
        if not isinstance(info.severity, Severity):
            raise RuntimeError(f"{info.id}: severity {info.severity!r} is not a Severity")
        if not (info.title and info.predicts and info.cause and info.fix):
            raise RuntimeError(f"{info.id}: title, predicts, cause and fix must not be empty")
        if unknown := set(info.needs + info.reads) - _DATASETS:
            raise RuntimeError(f"{info.id}: needs unknown dataset(s) {', '.join(sorted(unknown))}")
        if not isinstance(info.scope, Scope):
            raise RuntimeError(f"{info.id}: scope {info.scope!r} is not a Scope")
        if info.counted_among and info.counted_among not in _DATASETS:
            raise RuntimeError(f"{info.id}: counted_among names unknown dataset {info.counted_among}")


_validate(CHECKS)


def register(module: ModuleType) -> None:
    """Add a check module to the catalogue (after the built-in ones): it then runs in every audit and
    appears in readiness, triage and the report like the others. Remove it again with CHECKS.remove."""
    _validate([*CHECKS, module])
    CHECKS.append(module)


def catalogue() -> list[CheckInfo]:
    return [module.CHECK for module in CHECKS]


def check_info(check_id: str) -> CheckInfo | None:
    return next((c for c in catalogue() if c.id == check_id), None)


def needing_consent() -> frozenset[str]:
    """Checks that have nothing to judge where the remediation app is not consented."""
    return frozenset(c.id for c in catalogue() if c.needs_consent)


def showing_no_consent() -> frozenset[str]:
    """Checks whose finding says the remediation app is not consented in the tenant."""
    return frozenset(c.id for c in catalogue() if c.shows_no_consent)


def explaining(error: str, scope: Scope | None = None) -> tuple[str, ...]:
    """Checks triage looks to for a remediation error (optionally of one scope), lowest precedence first."""
    found = [c for c in catalogue() if error in c.explains and (scope is None or c.scope == scope)]
    return tuple(c.id for c in sorted(found, key=lambda c: c.precedence))


def _missing_reason(snapshot: TenantSnapshot, info: CheckInfo) -> str | None:
    reasons: list[str] = []
    for name in info.needs:
        error = snapshot.dataset(name).error
        if error and error not in reasons:
            reasons.append(error)
    return "; ".join(reasons) or None


def _read_in(snapshot: TenantSnapshot, info: CheckInfo) -> str | None:
    """The tenant whose audit reads every dataset this check is missing here, if there is one."""
    elsewhere = {snapshot.dataset(name).read_in for name in info.needs if not snapshot.dataset(name).ok}
    return elsewhere.pop() if len(elsewhere) == 1 and None not in elsewhere else None


def run_checks(
    snapshot: TenantSnapshot, ctx: CheckContext, checks: Sequence[ModuleType] | None = None
) -> tuple[list[Finding], list[NotEvaluated]]:
    """Run every check (or the given ones) over one tenant's snapshot."""
    findings: list[Finding] = []
    not_evaluated: list[NotEvaluated] = []
    for module in CHECKS if checks is None else checks:
        info: CheckInfo = module.CHECK
        reason = _missing_reason(snapshot, info)
        if reason:
            not_evaluated.append(NotEvaluated(info.id, reason, _read_in(snapshot, info)))
            continue
        try:
            found = list(module.run(snapshot, ctx))  # a check that fails half-way contributes nothing
        except CheckUnavailable as err:
            not_evaluated.append(NotEvaluated(info.id, err.reason))
        except Exception as err:  # one broken check must not hide what the others found
            log.error("%s: check %s failed: %s", snapshot.tenant_name, info.id, err, exc_info=True)
            not_evaluated.append(NotEvaluated(info.id, f"the check failed: {type(err).__name__}: {err}"))
        else:
            findings.extend(found)
    return findings, not_evaluated
