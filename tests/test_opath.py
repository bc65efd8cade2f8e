"""The OPATH recipient-filter parser and evaluator (audit.opath), on filters from public examples.

Sources of the filters:
- issue example and Microsoft's RBAC for Applications page (learn.microsoft.com/exchange/permissions-exo/
  application-rbac): a management scope restricted by Department and a custom attribute;
- Biamp's Evoko Liso setup guide for RBAC for Applications (support.biamp.com, "Application Role-Based Access
  Control"): `RecipientTypeDetails -eq "RoomMailbox" -or RecipientTypeDetails -eq "EquipmentMailbox"` in
  double quotes, inside the script-block braces New-ManagementScope accepts;
- Graph's beta customAppScope page: `Title -like 'VP*'`;
- Get-ManagementScope's RecipientFilter, which Exchange stores with each comparison in parentheses.
"""

from __future__ import annotations

import pytest

from audit import opath


def lookup(values: dict[str, object]):
    def get(prop: str):
        key = prop.lower()
        if key not in values:
            raise opath.Unknown(prop)
        return values[key]

    return get


SALES = {"department": "Sales", "customattribute1": None, "title": "VP Sales", "recipienttypedetails": "UserMailbox"}


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("Department -eq 'Sales' -and CustomAttribute1 -ne 'NoRemediation'", SALES, True),
        (
            "Department -eq 'Sales' -and CustomAttribute1 -ne 'NoRemediation'",
            {**SALES, "customattribute1": "NoRemediation"},
            False,
        ),
        ("((Department -eq 'sales') -and (CustomAttribute1 -ne 'NoRemediation'))", SALES, True),  # case-insensitive
        ('{ RecipientTypeDetails -eq "RoomMailbox" -or RecipientTypeDetails -eq "EquipmentMailbox"}', SALES, False),
        (
            '{ RecipientTypeDetails -eq "RoomMailbox" -or RecipientTypeDetails -eq "EquipmentMailbox"}',
            {"recipienttypedetails": "RoomMailbox"},
            True,
        ),
        ("Title -like 'VP*'", SALES, True),
        ("Title -notlike 'VP*'", SALES, False),
        ("Title -like 'V?P*'", SALES, False),  # only * is a wildcard: ? is a literal
        ("CustomAttribute1 -eq $null", SALES, True),
        ("CustomAttribute1 -ne $null", SALES, False),
        ("-not (Department -eq 'Sales')", SALES, False),
        ("-not(Department -eq 'Legal')", SALES, True),
        ("Company -eq 'O''Brien Ltd'", {"company": "O'Brien Ltd"}, True),  # a doubled quote is one quote
        ("RecipientTypeDetails -eq UserMailbox", SALES, True),  # a bare word value
        (
            "EmailAddresses -like 'smtp:*@contoso.com'",
            {"emailaddresses": ("SMTP:a@fabrikam.com", "smtp:a@contoso.com")},
            True,
        ),
        (
            "EmailAddresses -ne 'smtp:a@contoso.com'",
            {"emailaddresses": ("SMTP:a@fabrikam.com", "smtp:a@contoso.com")},
            False,
        ),
    ],
)
def test_documented_filters(text, values, expected):
    assert opath.evaluate(opath.parse(text), lookup(values)) is expected


def test_unknown_values_are_three_valued():
    node = opath.parse("(Department -eq 'Sales') -and (Office -eq 'Berlin')")
    assert opath.evaluate(node, lookup({"department": "Legal"})) is False  # False -and unknown
    assert opath.evaluate(node, lookup({"department": "Sales"})) is None  # True -and unknown: cannot tell
    either = opath.parse("(Department -eq 'Sales') -or (Office -eq 'Berlin')")
    assert opath.evaluate(either, lookup({"department": "Sales"})) is True


def test_properties_and_values_are_listed():
    node = opath.parse("(MemberOfGroup -eq 'CN=Sales,OU=contoso') -or (CustomAttribute5 -like 'x*')")
    assert opath.properties(node) == {"MemberOfGroup", "CustomAttribute5"}
    assert opath.values_for(node, "memberofgroup") == {"CN=Sales,OU=contoso"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Department -eq",
        "Department -gt 'a'",
        "(Department -eq 'a'",
        "Department -eq 'a' Office -eq 'b'",
        "Department -eq 'Sales' -and Office -eq 'a' -or Title -eq 'b'",  # -and/-or mixed without parentheses
    ],
)
def test_unreadable_filters_are_refused(text):
    with pytest.raises(opath.OpathError):
        opath.parse(text)
