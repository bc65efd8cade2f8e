"""Client secrets and certificates of the remediation app registration that expired or expire soon."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import timedelta

from audit.checks._base import CheckContext, CheckUnavailable, as_utc, day, parse_time, tenant_finding
from audit.models import UNKNOWN_REASON, CheckInfo, Finding, Scope, Severity, TenantSnapshot

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
    scope=Scope.APP,
    explains=(UNKNOWN_REASON,),
    readiness="remediation app credentials valid",
    legacy_subject=r"\(key ([0-9A-Za-z-]+)\)",
    precedence=6,
)


def sign_in_credentials(app: Mapping) -> list[tuple[str, dict]]:
    """The app registration's secrets and certificates that can sign it in, as (kind, credential).

    A keyCredential's usage is "Verify" (the app proves its identity with it) or "Sign" (it signs tokens
    for others, e.g. SAML): only the first authenticate the app, so signing-only certificates are left out
    here and on the Tenant sheet alike (keyCredential resource type, microsoft-graph-docs-contrib).
    """
    credentials = [("secret", c) for c in app.get("passwordCredentials") or ()]
    credentials += [("certificate", c) for c in app.get("keyCredentials") or () if not signing_only(c)]
    return credentials


def signing_only(cred: Mapping) -> bool:
    return str(cred.get("usage") or "Verify").lower() == "sign"


def _label(kind: str, cred: dict) -> str:
    name = cred.get("displayName") or cred.get("customKeyIdentifier") or ""
    key = _key(cred)
    return f"{kind} '{name}' (key {key})" if name else f"{kind} (key {key})"


def _key(cred: dict) -> str:
    """The start of the credential's keyId: enough to tell it apart, in the evidence and as the subject."""
    return str(cred.get("keyId") or "")[:8]


def run(snapshot: TenantSnapshot, ctx: CheckContext) -> Iterator[Finding]:
    app = snapshot.application.value
    if app is None:
        raise CheckUnavailable(f"the app registration {ctx.remediation_app.app_id} was not found in its home tenant")
    now = as_utc(ctx.now)
    warn = timedelta(days=ctx.remediation_app.credential_warning_days)
    credentials = sign_in_credentials(app)
    expired: list[tuple[str, str]] = []  # (evidence, key)
    expiring: list[tuple[str, str]] = []
    valid_today = 0
    for kind, cred in credentials:
        end = parse_time(cred.get("endDateTime"))
        if end is not None and end <= now:
            expired.append((f"{_label(kind, cred)} expired {day(end)} ({(now - end).days} days ago)", _key(cred)))
            continue
        valid_today += 1
        if end is not None and end - now <= warn:
            left = math.ceil((end - now).total_seconds() / 86400)
            expiring.append((f"{_label(kind, cred)} expires {day(end)} ({left} days left)", _key(cred)))
    # One finding per credential: each is renewed (or deleted) on its own.
    remaining = f"{valid_today} credential(s) valid today" if valid_today else "no credential is still valid"
    for text, key in expired:
        severity = Severity.HIGH if valid_today else Severity.CRITICAL
        yield tenant_finding(CHECK, snapshot, f"{text}; {remaining}", severity, subject=key)
    for text, key in expiring:
        yield tenant_finding(CHECK, snapshot, f"{text}; {remaining}", Severity.MEDIUM, subject=key)
