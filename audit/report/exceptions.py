"""Accepted exceptions: findings the owners know about and accept until a date.

The file is TOML, one table per exception::

    [[exception]]
    check_id = "no-exchange-license"
    user = "kiosk01@contoso.com"      # UPN or object id; or tenant = "contoso" (name or id), or both
    reason = "Kiosk account, never receives mail"
    owner = "it-ops@contoso.com"
    expires = 2025-12-31

An exception matches a finding of that check on that user (and/or in that tenant) until the end of
its `expires` day (UTC). After that it stops matching and the report says so.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from audit.config import ConfigError
from audit.models import Finding

REQUIRED = ("check_id", "reason", "owner", "expires")
OPTIONAL = ("user", "tenant")


class ExceptionsError(ConfigError):
    """The exceptions file cannot be used. str(e) names the file, the entry and the key."""


@dataclass(frozen=True)
class AcceptedException:
    check_id: str
    reason: str
    owner: str
    expires: date
    user: str | None = None  # UPN or object id
    tenant: str | None = None  # tenant name or id
    source: str = ""  # "<file> entry N", for messages

    def expired(self, today: date) -> bool:
        return today > self.expires

    def matches(self, finding: Finding, tenant_name: str | None) -> bool:
        if self.check_id.lower() != finding.check_id.lower():
            return False
        if self.user is not None:
            wanted = self.user.lower()
            if wanted not in ((finding.user_principal_name or "").lower(), (finding.user_id or "").lower()):
                return False
        if self.tenant is not None:
            wanted = self.tenant.lower()
            if wanted not in (finding.tenant_id.lower(), (tenant_name or "").lower()):
                return False
        return True

    def describe(self) -> str:
        scope = " in ".join(x for x in (self.user, self.tenant) if x)
        return f"{self.check_id} for {scope} (owner {self.owner}, expires {self.expires.isoformat()})"


def load_exceptions(path: str | Path) -> list[AcceptedException]:
    """Read and validate an exceptions file. Raises ExceptionsError naming file, entry and key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExceptionsError(
            f"{path}: the exceptions file does not exist. Create it or remove the audit.exceptions_file setting."
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ExceptionsError(f"{path}: cannot read the exceptions file: {err}.") from None
    except tomllib.TOMLDecodeError as err:
        raise ExceptionsError(f"{path}: not valid TOML: {err}. Each exception is an [[exception]] table.") from None
    unknown = sorted(set(data) - {"exception"})
    if unknown:
        raise ExceptionsError(
            f"{path}: unknown top-level key '{unknown[0]}'. The file holds only [[exception]] tables."
        )
    entries = data.get("exception", [])
    if not isinstance(entries, list):
        raise ExceptionsError(f"{path}: 'exception' must be an array of tables; write [[exception]].")
    return [_entry(path, n, entry) for n, entry in enumerate(entries, 1)]


def _entry(path: Path, n: int, entry: Mapping) -> AcceptedException:
    where = f"{path}: exception #{n}"
    unknown = sorted(set(entry) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ExceptionsError(f"{where}: unknown key '{unknown[0]}'. Allowed keys: {', '.join(REQUIRED + OPTIONAL)}.")
    for key in REQUIRED:
        if key not in entry:
            raise ExceptionsError(
                f"{where}: missing key '{key}'. Every exception needs {', '.join(REQUIRED)}, and user or tenant."
            )
    for key in ("check_id", "reason", "owner", *OPTIONAL):
        if key in entry and (not isinstance(entry[key], str) or not entry[key].strip()):
            raise ExceptionsError(f"{where}: key '{key}' must be a non-empty string.")
    if "user" not in entry and "tenant" not in entry:
        raise ExceptionsError(
            f"{where}: missing key 'user' or 'tenant'. Name the user (UPN or object id) "
            "or the tenant (name or id) the exception covers."
        )
    return AcceptedException(
        check_id=entry["check_id"].strip(),
        reason=entry["reason"].strip(),
        owner=entry["owner"].strip(),
        expires=_expiry(where, entry["expires"]),
        user=_opt(entry.get("user")),
        tenant=_opt(entry.get("tenant")),
        source=f"{path.name} exception #{n}",
    )


def _opt(value: str | None) -> str | None:
    return value.strip() if value is not None else None


def _expiry(where: str, value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ExceptionsError(
        f"{where}: key 'expires' is not a date ({value!r}). Write it as a TOML date, e.g. expires = 2025-12-31."
    )


@dataclass(frozen=True)
class Triage:
    """Findings split by the exceptions in force on `today`."""

    counted: list[Finding]
    accepted: list[tuple[Finding, AcceptedException]]
    expired: list[AcceptedException]  # every expired exception in the file
    expired_hits: dict[tuple[str, str, str], AcceptedException]  # finding key -> expired exception it met


def apply_exceptions(
    findings: Iterable[Finding], exceptions: Sequence[AcceptedException], today: date, tenant_names: Mapping[str, str]
) -> Triage:
    active = [e for e in exceptions if not e.expired(today)]
    expired = [e for e in exceptions if e.expired(today)]
    counted: list[Finding] = []
    accepted: list[tuple[Finding, AcceptedException]] = []
    expired_hits: dict[tuple[str, str, str], AcceptedException] = {}
    for finding in findings:
        name = tenant_names.get(finding.tenant_id)
        match = next((e for e in active if e.matches(finding, name)), None)
        if match:
            accepted.append((finding, match))
            continue
        counted.append(finding)
        stale = next((e for e in expired if e.matches(finding, name)), None)
        if stale:
            expired_hits[finding.key] = stale
    return Triage(counted, accepted, expired, expired_hits)
