"""GET /v1.0/reports/getMailboxUsageDetail(period='D7'): Exchange Online mailboxes as a CSV download.

What Graph does, and what the simulator copies:
- v1.0 answers `302 Found` with a `Location` header: a pre-authenticated download URL valid a few
  minutes that needs no Authorization header; following it gives `200`, `application/octet-stream`,
  a UTF-8 CSV starting with a byte-order mark. Periods: D7, D30, D90, D180. Needs Reports.Read.All.
  (Graph docs, api-reference/v1.0/api/reportroot-getmailboxusagedetail.md.)
- JSON output (`$format=application/json`) exists on beta only; v1.0 answers 400 with an empty
  `code` and "JSON format is not supported." (issue microsoftgraph/microsoft-graph-docs#3637).
- Columns: by default the v1.0 list as documented (Graph docs
  api-reference/v1.0/api/reportroot-getmailboxusagedetail.md, ms.date 2024-04-04: 17 columns from Report
  Refresh Date to Report Period; Deleted Item Quota (Byte) and Has Archive came in 2021, issue
  microsoftgraph/microsoft-graph-docs#13770). There is no "Recipient Type" column in v1.0: it comes
  with beta only, as "User" or "Shared" (issues microsoftgraph/msgraph-sdk-powershell#1581 and
  microsoftgraph/microsoft-graph-docs#17968). A tenant with `usage_report.recipient_type` true gets that
  beta shape (the column before "Report Period"). Either way the report covers user and shared
  mailboxes only: room and equipment mailboxes are not listed. Booleans are written True/False, dates
  YYYY-MM-DD, Report Period is the number of days ("7").
- A tenant with `exchange_online` false has no Exchange Online mailboxes: the CSV has its header only.
- Rows are Exchange Online mailboxes as of the "Report Refresh Date" (usually a day or two behind):
  accounts created after that date are absent; on-premises mailboxes never appear.
- When the tenant conceals user names in reports (the default since September 2021), User Principal
  Name and Display Name are opaque 32-character upper-case hex hashes (issues
  microsoftgraph/microsoft-graph-explorer-v4#1129, microsoftgraph/microsoft-graph-docs#15277).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random

from .state import TenantState

COLUMNS = (
    "Report Refresh Date",
    "User Principal Name",
    "Display Name",
    "Is Deleted",
    "Deleted Date",
    "Created Date",
    "Last Activity Date",
    "Item Count",
    "Storage Used (Byte)",
    "Issue Warning Quota (Byte)",
    "Prohibit Send Quota (Byte)",
    "Prohibit Send/Receive Quota (Byte)",
    "Deleted Item Count",
    "Deleted Item Size (Byte)",
    "Deleted Item Quota (Byte)",
    "Has Archive",
    "Report Period",
)
BETA_COLUMNS = (*COLUMNS[:-1], "Recipient Type", COLUMNS[-1])
PERIODS = {"D7": 7, "D30": 30, "D90": 90, "D180": 180}
_RECIPIENT_TYPES = {"user": "User", "shared": "Shared"}
_GB = 1024**3


def conceal(tenant_id: str, value: str) -> str:
    return hashlib.md5(f"{tenant_id}|{value.lower()}".encode()).hexdigest().upper()  # an opaque label


def refresh_date(tenant: TenantState, today: dt.date) -> str:
    """The tenant's `usage_report.refresh_date`, by default the day before `today`."""
    report = tenant.spec.get("usage_report") or {}
    return report.get("refresh_date") or (today - dt.timedelta(days=1)).isoformat()


def mailbox_usage_csv(tenant: TenantState, period: str, today: dt.date) -> bytes:
    refresh = refresh_date(tenant, today)
    settings = tenant.spec.get("usage_report") or {}
    concealed = bool(settings.get("concealed"))
    with_type = bool(settings.get("recipient_type"))
    rng = random.Random(f"usage|{tenant.id}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(BETA_COLUMNS if with_type else COLUMNS)
    users = tenant.users if tenant.spec.get("exchange_online") is not False else []
    for user in users:
        box = user.get("mailbox") or {}
        kind = _RECIPIENT_TYPES.get(box.get("purpose", ""))
        if box.get("location", "cloud") != "cloud" or kind is None:
            continue
        created = (user.get("createdDateTime") or "")[:10]
        if created and created > refresh:
            continue
        upn, name = user.get("userPrincipalName") or "", user.get("displayName") or ""
        if concealed:
            upn, name = conceal(tenant.id, upn), conceal(tenant.id, f"name|{upn}")
        quota = 100 * _GB if kind == "User" else 50 * _GB
        active = rng.random() < 0.85
        writer.writerow(
            [
                refresh,
                upn,
                name,
                "False",
                "",
                created,
                refresh if active else "",
                rng.randint(50, 90000),
                rng.randint(10**7, 30 * _GB),
                quota - 2 * _GB,
                quota - _GB,
                quota,
                rng.randint(0, 4000),
                rng.randint(0, 10**8),
                30 * _GB,
                str(rng.random() < 0.2),
                *([kind] if with_type else []),
                PERIODS[period],
            ]
        )
    return "\ufeff".encode() + out.getvalue().encode()
