"""settle(): where the mailbox usage report is trusted in place of a probe, at its exact edges.

The report (getMailboxUsageDetail, Graph docs api-reference/v1.0/api/reportroot-getmailboxusagedetail.md)
lists Exchange Online mailboxes as of its "Report Refresh Date", with an "Is Deleted" column. An account
created on the refresh date itself may be newer than the data, and a deleted row proves nothing about a
mailbox today: both are probed (settle answers None).
"""

from __future__ import annotations

import pytest

from audit.collect import MailboxInventory, settle, user_from_graph
from audit.licensing import SkuIndex
from audit.models import Dataset, MailboxProbe
from tests.e2e.tenant_builder import E3

REFRESH = "2026-01-10"
SKUS = SkuIndex.from_skus(Dataset(None))
MAILBOX_FROM_REPORT = MailboxProbe("mailbox", purpose="user", source="usage_report")
SHARED_FROM_REPORT = MailboxProbe("mailbox", purpose="shared", source="usage_report")


def account(upn: str = "a@contoso.example", *, created: str | None, licensed: bool = True, mail: bool = True):
    data: dict = {
        "id": upn,
        "userPrincipalName": upn,
        "mail": upn if mail else None,
        "accountEnabled": True,
        "createdDateTime": created,
    }
    if licensed:
        data["assignedLicenses"] = [{"skuId": E3[0], "disabledPlans": []}]
        data["assignedPlans"] = [{"servicePlanId": E3[2], "service": "exchange", "capabilityStatus": "Enabled"}]
    return user_from_graph(data)


def report(*rows: tuple[str, str, bool]) -> MailboxInventory:
    return MailboxInventory(REFRESH, {upn.lower(): (kind, deleted) for upn, kind, deleted in rows}, False)


LISTED = report(("a@contoso.example", "user", False))


@pytest.mark.parametrize(
    "created, expected",
    [
        ("2026-01-09T23:59:59Z", MAILBOX_FROM_REPORT),  # the day before the refresh date: in the report
        ("2026-01-10T00:00:00Z", None),  # on the refresh date itself: possibly newer than the data
        ("2026-01-10T23:59:59Z", None),
        ("2026-01-11T00:00:00Z", None),
        (None, None),  # unknown age
        ("", None),
    ],
    ids=["day-before", "refresh-date-midnight", "refresh-date-evening", "day-after", "no-date", "empty-date"],
)
def test_a_listed_licensed_account_is_trusted_only_if_created_before_the_refresh_date(created, expected):
    assert settle(account(created=created), LISTED, SKUS) == expected


@pytest.mark.parametrize("kind", ["user", "shared", ""])
def test_a_row_marked_deleted_is_never_trusted(kind):
    deleted = report(("a@contoso.example", kind, True))
    assert settle(account(created="2025-01-01T00:00:00Z"), deleted, SKUS) is None
    assert settle(account(created="2025-01-01T00:00:00Z", licensed=False), deleted, SKUS) is None


def test_the_same_rows_not_deleted_are_trusted():
    old = "2025-01-01T00:00:00Z"
    assert settle(account(created=old), report(("a@contoso.example", "user", False)), SKUS) == MAILBOX_FROM_REPORT
    assert settle(account(created=old, licensed=False), report(("A@Contoso.example", "shared", False)), SKUS) == (
        SHARED_FROM_REPORT
    )
    without_type = settle(account(created=old), report(("a@contoso.example", "", False)), SKUS)
    assert without_type == MailboxProbe("mailbox", purpose=None, source="usage_report")


def test_a_listed_user_row_without_a_mailbox_licence_is_probed():
    """Listed as a user mailbox, yet no licence gives one (removed since?): Exchange is asked."""
    assert settle(account(created="2025-01-01T00:00:00Z", licensed=False), LISTED, SKUS) is None


def test_an_unlisted_account_is_probed_unless_nothing_could_give_it_a_mailbox():
    nobody = report()
    old = "2025-01-01T00:00:00Z"
    assert settle(account(created=old), nobody, SKUS) is None  # licensed: pending, failed or on-premises
    assert settle(account(created=old, licensed=False), nobody, SKUS) is None  # mail-enabled: maybe a room
    bare = settle(account(created=old, licensed=False, mail=False), nobody, SKUS)
    assert bare == MailboxProbe("no_mailbox", code=f"not listed on {REFRESH}", source="usage_report")


def test_a_report_whose_rows_carry_no_refresh_date_is_read_as_empty_and_never_trusted():
    from audit.collect import parse_usage_report

    # Every row of getMailboxUsageDetail names the report's refresh date; without it nothing dates the rows.
    text = "Report Refresh Date,User Principal Name,Is Deleted\n,alice@contoso.com,False\n"
    inventory = parse_usage_report(text)
    assert inventory.refresh_date == ""
    assert inventory.mailboxes == {"alice@contoso.com": ("", False)}
