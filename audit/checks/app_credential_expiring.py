"""Client secrets and certificates of the remediation app registration that expired or expire soon."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import timedelta

from audit.checks._base import CheckContext, CheckUnavailable, as_utc, day, parse_time, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Severity, TenantSnapshot

CHECK = CheckInfo(
    id="app-credential-expiring",
    title="Remediation app secret or certificate expired or expiring",
    severity=Severity.HIGH,  # raised to critical when no credential is valid any more
    predicts=f"{UNKNOWN_REASON} (once it lapses)",
    cause=(
        "A client secret or certificate of the remediation app registration has expired or expires soon. "
        "When the credential the remediation product uses lapses, its token requests fail and every "
        "remediation fails."
    ),
    fix=(
        "Entra admin center > App registrations > the app > Certificates & secrets: add a new client "
        "secret or upload a new certificate (Add-MgApplicationPassword, or POST "
        "/applications/{id}/addPassword), enter it in the remediation product, confirm remediation "
        "works, then delete the old credential. Note the new expiry date in your calendar."
    ),
    needs=("application",),
)


def _label(kind: str, cred: dict) -> str:
    name = cred.get("displayName") or cred.get("customKeyIdentifier") or ""
    key = str(cred.get("keyId") or "")[:8]
    return f"{kind} '{name}' (key {key})" if name else f"{kind} (key {key})"


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    app = snapshot.application.value
    if app is None:
        raise CheckUnavailable(f"the app registration {ctx.remediation_app.app_id} was not found in its home tenant")
    now = as_utc(ctx.now)
    warn = timedelta(days=ctx.remediation_app.credential_warning_days)
    credentials = [("secret", c) for c in app.get("passwordCredentials") or ()]
    # Certificates with usage "Sign" sign tokens for others; only "Verify" keys authenticate the app.
    credentials += [
        ("certificate", c) for c in app.get("keyCredentials") or () if str(c.get("usage") or "Verify").lower() != "sign"
    ]
    expired: list[str] = []
    expiring: list[str] = []
    valid_today = 0
    for kind, cred in credentials:
        end = parse_time(cred.get("endDateTime"))
        if end is not None and end <= now:
            expired.append(f"{_label(kind, cred)} expired {day(end)} ({(now - end).days} days ago)")
            continue
        valid_today += 1
        if end is not None and end - now <= warn:
            left = math.ceil((end - now).total_seconds() / 86400)
            expiring.append(f"{_label(kind, cred)} expires {day(end)} ({left} days left)")
    # One finding per credential: each is renewed (or deleted) on its own.
    remaining = f"{valid_today} credential(s) valid today" if valid_today else "no credential is still valid"
    for text in expired:
        severity = Severity.HIGH if valid_today else Severity.CRITICAL
        yield tenant_finding(CHECK, snapshot, f"{text}; {remaining}", severity)
    for text in expiring:
        yield tenant_finding(CHECK, snapshot, f"{text}; {remaining}", Severity.MEDIUM)
