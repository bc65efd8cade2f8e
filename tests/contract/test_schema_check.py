"""The v1.0 shape check itself: it must catch each kind of wrong value, and name the path and type."""

from __future__ import annotations

import json

import pytest

from audit.collect import probe_from_item
from tests.contract.schema import SCHEMA_FILE, Schema, check_answer

USER = "/v1.0/users/622eaaff-0683-4862-9de4-f2ec83c2bd98"

# Example 1 of api-reference/v1.0/api/user-get-mailboxsettings.md (microsoftgraph/microsoft-graph-docs-contrib),
# shortened: the older documented answer, with userPurpose wrapped in an object.
DOCUMENTED_SETTINGS = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Me/mailboxSettings",
    "automaticRepliesSetting": {
        "status": "scheduled",
        "externalAudience": "all",
        "scheduledStartDateTime": {"dateTime": "2016-03-14T07:00:00.0000000", "timeZone": "UTC"},
        "scheduledEndDateTime": {"dateTime": "2016-03-28T07:00:00.0000000", "timeZone": "UTC"},
        "internalReplyMessage": "<html><body>away</body></html>",
        "externalReplyMessage": "<html><body>away</body></html>",
    },
    "timeZone": "UTC",
    "language": {"locale": "en-US", "displayName": "English (United States)"},
    "workingHours": {
        "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "startTime": "08:00:00.0000000",
        "endTime": "17:00:00.0000000",
        "timeZone": {"name": "Pacific Standard Time"},
    },
    "userPurpose": {"value": "user"},
    "dateFormat": "MM/dd/yyyy",
    "timeFormat": "hh:mm tt",
    "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
}


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema()


def test_the_schema_copy_names_its_source() -> None:
    doc = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert "msgraph-metadata" in doc["_source"] and "v1.0-Prod.csdl" in doc["_source"]
    assert doc["types"]["mailboxSettings"]["properties"]["userPurpose"] == "graph.userPurpose"
    assert doc["types"]["userPurpose"]["kind"] == "EnumType"


def test_user_purpose_object_is_refused_and_the_plain_string_passes(schema: Schema) -> None:
    path = USER + "/mailboxSettings"
    (problem,) = check_answer(schema, path, 200, DOCUMENTED_SETTINGS)
    assert problem.startswith(f"{path} (entity of mailboxSettings).userPurpose:") and "graph.userPurpose" in problem
    assert check_answer(schema, path, 200, {**DOCUMENTED_SETTINGS, "userPurpose": "user"}) == []
    (bad_member,) = check_answer(schema, path, 200, {**DOCUMENTED_SETTINGS, "userPurpose": "User"})
    assert "not a member of graph.userPurpose" in bad_member


def test_the_sub_resource_wraps_the_member_in_value(schema: Schema) -> None:
    """Example 4 of the same page: GET .../mailboxSettings/userPurpose answers {"value": "user"}."""
    path = USER + "/mailboxSettings/userPurpose"
    assert check_answer(schema, path, 200, {"@odata.context": "x", "value": "user"}) == []
    assert check_answer(schema, path, 200, {"value": {"value": "user"}}) != []


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"favouriteColour": "blue"}, "graph.user has no property 'favouriteColour'"),
        ({"accountEnabled": "true"}, "is not a boolean (Edm.Boolean)"),
        ({"createdDateTime": "2024-01-01 10:00"}, "is not a date and time with a UTC offset"),
        ({"assignedLicenses": {"skuId": "x"}}, "where v1.0 has a collection"),
        ({"assignedLicenses": [{"skuId": "not-a-guid", "disabledPlans": []}]}, "assignedLicenses[0].skuId"),
        ({"assignedLicenses": [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df"}], "proxyAddresses": None}, "null"),
        ({"onPremisesExtensionAttributes": {"extensionAttribute16": "x"}}, "no property 'extensionAttribute16'"),
        ({"assignedPlans": [{"capabilityStatus": 1}]}, "assignedPlans[0].capabilityStatus"),
        ({"mailboxSettings": {"userPurpose": {"value": "user"}}}, "mailboxSettings.userPurpose"),
    ],
)
def test_each_kind_of_wrong_value_is_named(schema: Schema, change: dict, expected: str) -> None:
    user = {
        "id": "3c2d7a62-6f9d-4a39-8a49-3e4a3f4d2f10",
        "accountEnabled": True,
        "createdDateTime": "2024-01-01T10:00:00Z",
        "assignedLicenses": [],
        "proxyAddresses": ["SMTP:a@contoso.com"],
    }
    assert check_answer(schema, "/v1.0/users", 200, {"value": [user]}) == []
    problems = check_answer(schema, "/v1.0/users", 200, {"value": [{**user, **change}]})
    assert problems and all(p.startswith("/v1.0/users (collection of user) value[0].") for p in problems)
    assert any(expected in p for p in problems), problems


def test_integers_and_derived_types(schema: Schema) -> None:
    sku = {"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "consumedUnits": 3, "prepaidUnits": {"enabled": 5}}
    assert check_answer(schema, "/v1.0/subscribedSkus", 200, {"value": [sku]}) == []
    (problem,) = check_answer(schema, "/v1.0/subscribedSkus", 200, {"value": [{**sku, "consumedUnits": True}]})
    assert "is not an integer (Edm.Int32)" in problem
    members = "/v1.0/directory/administrativeUnits/7a1b2c3d-0000-4000-8000-000000000001/members"
    user = {"@odata.type": "#microsoft.graph.user", "id": "x", "department": "Sales"}
    assert check_answer(schema, members, 200, {"value": [user]}) == []
    (problem,) = check_answer(schema, members, 200, {"value": [{**user, "@odata.type": "#microsoft.graph.domain"}]})
    assert "does not derive from graph.directoryObject" in problem


def test_an_unknown_path_fails_by_name(schema: Schema) -> None:
    (problem,) = check_answer(schema, "/v1.0/me/drive", 200, {})
    assert problem.startswith("/v1.0/me/drive: no v1.0 type is known")


@pytest.mark.parametrize("shape", ["shared", {"value": "shared"}])
def test_the_client_reads_user_purpose_in_both_documented_shapes(shape) -> None:
    """Plain string: v1.0 metadata and resources/mailboxsettings.md; object: api/user-get-mailboxsettings.md."""
    probe = probe_from_item(200, {**DOCUMENTED_SETTINGS, "userPurpose": shape})
    assert probe.outcome == "mailbox" and probe.purpose == "shared"
