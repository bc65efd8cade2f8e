"""What a triage finds: one diagnosis per row, what each tenant said, and the whole result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path


class Outcome(StrEnum):
    FIX = "fix in the tenant"
    NOTHING = "nothing to fix"
    UNEXPLAINED = "no cause found"
    UNKNOWN_ERROR = "unknown error"
    NOT_ASSESSED = "not assessed"
    NO_ADDRESS = "no address"


@dataclass(frozen=True)
class Diagnosis:
    cause: str  # a short label: the check's title, or one of the triage's own causes
    check_id: str  # the audit check that explains it, "" when none does
    evidence: str
    fix: str
    outcome: Outcome


@dataclass(frozen=True)
class TriagedRow:
    row: int  # 1 = first data row of the file
    values: dict[str, str]  # the row as read, keyed by the header as written
    address: str  # normalised; "" when the row names no usable address
    error: str  # the error text as written
    error_kind: str | None  # one of the four documented errors, None when not recognised
    tenant: str  # name of the tenant the row was explained in, "" when none
    diagnosis: Diagnosis


@dataclass(frozen=True)
class TenantLookup:
    name: str
    tenant_id: str
    status: str  # ok | partial | failed
    error: str | None
    looked_up: int  # addresses looked up in this tenant


@dataclass(frozen=True)
class TriageResult:
    log_path: Path
    header: list[str]
    rows: list[TriagedRow]
    unreadable: list[tuple[int, str]]  # (line number, why)
    tenants: list[TenantLookup]
    files: list[Path]
    exit_code: int
