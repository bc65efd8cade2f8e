"""How one mailboxSettings answer is read: each outcome at its edge (status and error code together).

Error codes and statuses as Graph returns them for a user without a usable Exchange Online mailbox
(404 MailboxNotEnabledForRESTAPI or MailboxNotSupportedForRESTAPI: Exchange Online troubleshooting article
"REST API is not yet supported for this mailbox"; 404 ResourceNotFound: microsoft-graph-docs issues 7160
and 7757; 404 ErrorInvalidUser: microsoft-graph-docs issue 4097) and for an app that may not read the
mailbox (403 ErrorAccessDenied: python-o365 issue 855).
"""

from __future__ import annotations

import pytest

from audit.collect import probe_from_item
from audit.models import MailboxProbe
from tests.checks.builders import EXO_P2 as EXCHANGE

SHAREPOINT = "5dbe027f-2339-4123-9542-606e4d348a72"  # SHAREPOINTENTERPRISE


def error(code: str) -> dict:
    return {"error": {"code": code, "message": "..."}}


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"userPurpose": "shared"}, MailboxProbe("mailbox", purpose="shared")),
        (200, {"userPurpose": None}, MailboxProbe("mailbox", purpose="user")),  # a mailbox whatever its purpose
        (200, None, MailboxProbe("mailbox", purpose="user")),
        (404, error("MailboxNotEnabledForRESTAPI"), MailboxProbe("no_mailbox", code="MailboxNotEnabledForRESTAPI")),
        (404, error("MailboxNotSupportedForRESTAPI"), MailboxProbe("no_mailbox", code="MailboxNotSupportedForRESTAPI")),
        (404, error("ResourceNotFound"), MailboxProbe("no_mailbox", code="ResourceNotFound")),
        (404, error("ErrorInvalidUser"), MailboxProbe("no_mailbox", code="ErrorInvalidUser")),
        # A 404 with another code, or a no-mailbox code under another status, proves nothing about the mailbox.
        (404, error("ErrorItemNotFound"), MailboxProbe("failed", code="ErrorItemNotFound")),
        (404, None, MailboxProbe("failed", code="404")),
        (400, error("ResourceNotFound"), MailboxProbe("failed", code="ResourceNotFound")),
        (403, error("ErrorAccessDenied"), MailboxProbe("access_denied", code="ErrorAccessDenied")),
        (403, None, MailboxProbe("access_denied", code="403")),
        (429, error("TooManyRequests"), MailboxProbe("failed", code="TooManyRequests")),
        (503, None, MailboxProbe("failed", code="503")),
    ],
)
def test_each_answer_is_read_as_the_remediation_would_meet_the_mailbox(status, body, expected):
    assert probe_from_item(status, body) == expected


@pytest.mark.parametrize(
    ("who", "probed"),
    [
        ({"enabled": True}, True),
        ({"enabled": True, "guest": True, "mail": "g@fabrikam.com"}, False),  # a guest's mailbox is in its home tenant
        ({"enabled": False, "mail": None}, False),  # a disabled account with nothing of a mailbox about it
        ({"enabled": False}, True),  # disabled, but mail-enabled (a shared mailbox sits on a disabled account)
        ({"enabled": False, "mail": None, "proxy": ["SMTP:room@contoso.com"]}, True),
        ({"enabled": False, "mail": None, "plans": [("efb87545-963c-4e0d-99df-69c6916d9eb0", "Enabled")]}, True),
    ],
)
def test_members_that_have_or_should_have_a_mailbox_are_probed(who, probed):
    from audit.collect import should_probe
    from tests.checks.builders import user

    assert should_probe(user("u1", **who)) is probed


@pytest.mark.parametrize(
    ("plans", "likely"),
    [
        ([(EXCHANGE, "Enabled", "exchange")], True),
        ([(EXCHANGE, "Enabled", "Exchange")], True),  # the service name's case is Graph's to choose
        ([(EXCHANGE, "Suspended", "exchange")], False),  # suspended: the licence lapsed
        ([(SHAREPOINT, "Enabled", "SharePoint")], False),
        ([(SHAREPOINT, "Enabled", "SharePoint"), (EXCHANGE, "Deleted", "exchange")], False),
        ([], False),
    ],
)
def test_a_mailbox_is_likely_only_with_an_enabled_exchange_plan(plans, likely):
    # likely_mailbox orders the probes (likely mailboxes first in a sequential batch); capabilityStatus
    # values as assignedPlan documents them (learn.microsoft.com/graph/api/resources/assignedplan).
    from audit.collect import likely_mailbox
    from tests.checks.builders import user

    assert likely_mailbox(user("u1", plans=plans)) is likely
