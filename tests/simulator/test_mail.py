"""Outlook endpoints and $batch: mailbox outcomes per mailbox kind, sending mail, batching rules."""

from __future__ import annotations

import base64

import pytest
import requests

from audit.simulator import Simulator, generate_tenant

from ._support import Graph, add_client, kind

NO_MAILBOX = "The mailbox is either inactive, soft-deleted, or is hosted on-premise."


@pytest.fixture(scope="module")
def tenant() -> dict:
    spec = generate_tenant("contoso", 60, seed=5, scenario="healthy")
    add_client(spec, ["User.Read.All"])  # no mail roles
    add_client(spec, ["Mail.ReadWrite", "Mail.Send"], secret="drafts-secret")
    return spec


@pytest.fixture(scope="module")
def sim(tenant):
    with Simulator([tenant]) as running:
        yield running


@pytest.fixture(scope="module")
def graph(sim, tenant) -> Graph:
    return Graph(sim, tenant)


def _box(purpose: str, location: str = "cloud"):
    return lambda u: u["mailbox"] == {"purpose": purpose, "location": location}


@pytest.mark.parametrize("purpose", ["user", "shared", "room", "equipment"])
def test_cloud_mailboxes_answer_with_their_purpose(graph, tenant, purpose):
    user = kind(tenant, _box(purpose))
    response = graph.get(f"/users/{user['id']}/mailboxSettings")
    assert response.status_code == 200
    body = response.json()
    assert body["userPurpose"] == purpose  # v1.0: an enum member name (resources/mailboxsettings.md)
    assert body["@odata.context"].endswith(f"users('{user['id']}')/mailboxSettings")
    assert {"timeZone", "language", "workingHours", "automaticRepliesSetting"} <= set(body)
    sub = graph.get(f"/users/{user['userPrincipalName']}/mailboxSettings/userPurpose").json()
    assert sub["value"] == purpose and sub["@odata.context"].endswith("/mailboxSettings/userPurpose")


@pytest.mark.parametrize(
    "predicate,message",
    [
        (lambda u: u["userType"] == "Guest", NO_MAILBOX),
        (
            lambda u: u["mailbox"] is None and u["userType"] == "Member" and not u["assignedLicenses"],
            NO_MAILBOX,
        ),
        (
            lambda u: any(p.get("provisioningStatus") == "PendingInput" for p in u["provisionedPlans"]),
            NO_MAILBOX,
        ),
        (lambda u: any(p["capabilityStatus"] == "Suspended" for p in u["assignedPlans"]), NO_MAILBOX),
        (_box("user", "onprem"), "REST API is not yet supported for this mailbox."),
    ],
    ids=["guest", "unlicensed", "not-provisioned", "suspended", "on-premises"],
)
def test_accounts_without_a_reachable_mailbox(graph, tenant, predicate, message):
    user = kind(tenant, predicate)
    response = graph.get(f"/users/{user['id']}/mailboxSettings")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    assert response.json()["error"]["message"] == message


def test_unknown_and_soft_deleted_users_are_invalid(graph, tenant):
    for key in ("ghost@contoso.com", tenant["deleted_users"][0]["id"]):
        response = graph.get(f"/users/{key}/mailboxSettings")
        assert response.status_code == 404
        assert response.json()["error"] == {
            **response.json()["error"],
            "code": "ErrorInvalidUser",
            "message": f"The requested user '{key}' is invalid.",
        }


def test_mailbox_settings_needs_its_own_permission(sim, tenant):
    user = kind(tenant, _box("user"))
    response = Graph(sim, tenant, tenant["clients"][1]).get(f"/users/{user['id']}/mailboxSettings")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ErrorAccessDenied"
    assert response.json()["error"]["message"] == "Access is denied. Check credentials and try again."


def test_mail_folder_probe(sim, tenant):
    user = kind(tenant, _box("user"))
    drafts_app = Graph(sim, tenant, tenant["clients"][2])
    inbox = drafts_app.get(f"/users/{user['id']}/mailFolders/inbox")
    assert inbox.status_code == 200 and inbox.json()["displayName"] == "Inbox"
    assert Graph(sim, tenant).get(f"/users/{user['id']}/mailFolders/inbox").status_code == 403


def _message(to: str = "secops@contoso.com") -> dict:
    return {
        "subject": "Readiness report",
        "body": {"contentType": "Text", "content": "attached"},
        "toRecipients": [{"emailAddress": {"address": to}}],
    }


def test_send_mail_is_recorded(sim, graph, tenant):
    sender = kind(tenant, _box("shared"))
    response = graph.post(f"/users/{sender['userPrincipalName']}/sendMail", json={"message": _message()})
    assert response.status_code == 202 and response.content == b""
    assert sim.sent_mail[-1]["user"] == sender["userPrincipalName"]
    assert sim.sent_mail[-1]["message"]["subject"] == "Readiness report"


def test_send_mail_refusals(sim, graph, tenant):
    sender = kind(tenant, _box("user"))
    path = f"/users/{sender['id']}/sendMail"
    too_big = {
        "message": {
            **_message(),
            "attachments": [
                {
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": "big.bin",
                    "contentBytes": base64.b64encode(b"x" * (3 * 1024 * 1024 + 200_000)).decode(),
                }
            ],
        }
    }
    assert graph.post(path, json=too_big).status_code == 413
    no_recipients = graph.post(path, json={"message": {"subject": "x"}})
    assert no_recipients.status_code == 400 and no_recipients.json()["error"]["code"] == "ErrorInvalidRecipients"
    assert graph.post(path, data=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    no_role = Graph(sim, tenant, tenant["clients"][1]).post(path, json={"message": _message()})
    assert no_role.status_code == 403 and no_role.json()["error"]["code"] == "ErrorAccessDenied"
    unlicensed = kind(tenant, lambda u: u["mailbox"] is None and u["userType"] == "Member")
    assert graph.post(f"/users/{unlicensed['id']}/sendMail", json={"message": _message()}).status_code == 404


def test_draft_with_large_attachment_upload_session(sim, tenant):
    sender = kind(tenant, _box("shared"))
    app = Graph(sim, tenant, tenant["clients"][2])
    draft = app.post(f"/users/{sender['id']}/messages", json=_message())
    assert draft.status_code == 201 and draft.json()["isDraft"] is True
    message_id = draft.json()["id"]
    payload = bytes(range(256)) * 20_000  # 5,120,000 bytes
    session = app.post(
        f"/users/{sender['id']}/messages/{message_id}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": "report.xlsx", "size": len(payload)}},
    )
    assert session.status_code == 201 and session.json()["nextExpectedRanges"] == ["0-"]
    upload_url = session.json()["uploadUrl"]
    chunk = 2 * 1024 * 1024
    for start in range(0, len(payload), chunk):
        part = payload[start : start + chunk]
        end = start + len(part) - 1
        response = requests.put(
            upload_url,
            data=part,
            verify=sim.ca_path,
            timeout=30,
            headers={
                "Content-Range": f"bytes {start}-{end}/{len(payload)}",
                "Content-Type": "application/octet-stream",
            },
        )
        if end + 1 < len(payload):
            assert response.status_code == 200 and response.json()["nextExpectedRanges"] == [str(end + 1)]
        else:
            assert response.status_code == 201 and "/attachments('" in response.headers["Location"]
    sent = app.post(f"/users/{sender['id']}/messages/{message_id}/send")
    assert sent.status_code == 202
    attachment = sim.sent_mail[-1]["message"]["attachments"][0]
    assert attachment["name"] == "report.xlsx" and base64.b64decode(attachment["contentBytes"]) == payload
    assert app.post(f"/users/{sender['id']}/messages/{message_id}/send").status_code == 404, "a sent draft is gone"


def test_upload_out_of_order_is_refused(sim, tenant):
    sender = kind(tenant, _box("user"))
    app = Graph(sim, tenant, tenant["clients"][2])
    message_id = app.post(f"/users/{sender['id']}/messages", json=_message()).json()["id"]
    url = app.post(
        f"/users/{sender['id']}/messages/{message_id}/attachments/createUploadSession",
        json={"AttachmentItem": {"attachmentType": "file", "name": "a.bin", "size": 10}},
    ).json()["uploadUrl"]
    late = requests.put(url, data=b"xxxxx", headers={"Content-Range": "bytes 5-9/10"}, verify=sim.ca_path, timeout=10)
    assert late.status_code == 416
    assert Graph(sim, tenant).post(f"/users/{sender['id']}/messages", json=_message()).status_code == 403


# ------------------------------------------------------------------------------------------ $batch
def _settings_requests(users: list[dict]) -> list[dict]:
    return [{"id": str(i), "method": "GET", "url": f"/users/{u['id']}/mailboxSettings"} for i, u in enumerate(users)]


def test_batch_answers_each_item(graph, tenant):
    users = tenant["users"][:18]
    requests_ = _settings_requests(users) + [
        {"id": "dir", "method": "GET", "url": "users?$select=id&$top=2"},
        {"id": "bad", "method": "GET", "url": "/nothing"},
    ]
    response = graph.post("/$batch", json={"requests": requests_})
    assert response.status_code == 200
    answers = {a["id"]: a for a in response.json()["responses"]}
    assert set(answers) == {r["id"] for r in requests_}
    for i, user in enumerate(users):
        expected = 200 if user["mailbox"] and user["mailbox"]["location"] == "cloud" else 404
        assert answers[str(i)]["status"] == expected
    assert len(answers["dir"]["body"]["value"]) == 2
    assert answers["bad"]["status"] == 400
    assert answers["0"]["headers"]["Content-Type"].startswith("application/json")


def test_batch_answers_may_come_out_of_order(graph, tenant):
    orders = set()
    for _ in range(3):
        body = graph.post("/$batch", json={"requests": _settings_requests(tenant["users"][:10])}).json()
        orders.add(tuple(a["id"] for a in body["responses"]))
    assert any(order != tuple(str(i) for i in range(10)) for order in orders)


def test_batch_limits(sim, graph, tenant):
    before = sim.counters.snapshot()["batch_sizes"]
    assert graph.post("/$batch", json={"requests": _settings_requests(tenant["users"][:21])}).status_code == 400
    duplicate = _settings_requests(tenant["users"][:2])
    duplicate[1]["id"] = "0"
    assert graph.post("/$batch", json={"requests": duplicate}).status_code == 400
    assert graph.post("/$batch", json={"requests": []}).status_code == 400
    ok = graph.post("/$batch", json={"requests": _settings_requests(tenant["users"][:20])})
    assert ok.status_code == 200
    assert sim.counters.snapshot()["batch_sizes"] == [*before, 20]


def test_batch_depends_on(graph, tenant):
    requests_ = [
        {"id": "1", "method": "GET", "url": "/users/ghost@contoso.com"},
        {"id": "2", "method": "GET", "url": f"/users/{tenant['users'][0]['id']}", "dependsOn": ["1"]},
    ]
    answers = {a["id"]: a["status"] for a in graph.post("/$batch", json={"requests": requests_}).json()["responses"]}
    assert answers == {"1": 404, "2": 424}


def test_batch_items_need_their_permissions(sim, tenant):
    limited = Graph(sim, tenant, tenant["clients"][1])
    user = kind(tenant, _box("user"))
    body = limited.post("/$batch", json={"requests": _settings_requests([user])}).json()
    assert body["responses"][0]["status"] == 403
    assert body["responses"][0]["body"]["error"]["code"] == "ErrorAccessDenied"


def test_batch_item_with_a_body_needs_a_content_type(graph, tenant):
    sender = kind(tenant, _box("user"))
    item = {
        "id": "1",
        "method": "POST",
        "url": f"/users/{sender['id']}/sendMail",
        "body": {"message": _message()},
    }
    without = graph.post("/$batch", json={"requests": [item]}).json()["responses"][0]
    assert without["status"] == 400
    item["headers"] = {"Content-Type": "application/json"}
    with_type = graph.post("/$batch", json={"requests": [item]}).json()["responses"][0]
    assert with_type["status"] == 202 and "body" not in with_type


def test_user_purpose_as_an_object_when_the_tenant_asks(tenant):
    """The older example of api/user-get-mailboxsettings.md (v1.0) shows "userPurpose": {"value": "user"}."""
    old = {**tenant, "user_purpose_shape": "object"}
    user = kind(old, _box("shared"))
    with Simulator([old]) as running:
        body = Graph(running, old).get(f"/users/{user['id']}/mailboxSettings").json()
    assert body["userPurpose"] == {"value": "shared"}


def test_mailbox_settings_select(graph, tenant):
    user = kind(tenant, _box("room"))
    body = graph.get(f"/users/{user['id']}/mailboxSettings", {"$select": "userPurpose"}).json()
    assert body["userPurpose"] == "room" and set(body) == {"@odata.context", "userPurpose"}
