"""Outlook endpoints: mailbox settings, mail folders, sendMail, drafts with large-attachment upload.

Mailbox outcomes follow what Exchange Online answers through Graph:
cloud mailbox -> 200; no mailbox (unlicensed, guest, licence suspended or mailbox not provisioned)
-> 404 MailboxNotEnabledForRESTAPI "The mailbox is either inactive, soft-deleted, or is hosted
on-premise."; mailbox on premises -> 404 MailboxNotEnabledForRESTAPI "REST API is not yet supported
for this mailbox."; unknown or soft-deleted user -> 404 ErrorInvalidUser; a tenant spec with
`exchange_online` false (no Exchange Online organisation) -> 401 OrganizationFromTenantGuidNotFound on
every mailbox.

Large attachments (3 MB to 150 MB) go through a draft: POST /users/{id}/messages, then
POST .../messages/{id}/attachments/createUploadSession {"AttachmentItem": {...}} -> 201 uploadSession
{"uploadUrl", "expirationDateTime", "nextExpectedRanges": ["0-"]}; PUT byte ranges (Content-Range
"bytes a-b/total", no Authorization header) to uploadUrl -> 200 {"nextExpectedRanges": ["<next>"]}
until the last one -> 201 with a Location header; then POST .../messages/{id}/send -> 202.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import threading
import uuid

from .odata import GraphFail, Request, Response, parse_select, project
from .state import TenantState

SEND_MAIL_LIMIT = 4 * 1024 * 1024  # sendMail refuses a larger request body
UPLOAD_LIMIT = 150 * 1024 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_WELL_KNOWN_FOLDERS = {
    "inbox": "Inbox",
    "drafts": "Drafts",
    "sentitems": "Sent Items",
    "deleteditems": "Deleted Items",
    "junkemail": "Junk Email",
    "archive": "Archive",
    "outbox": "Outbox",
    "msgfolderroot": "Top of Information Store",
}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_body(req: Request) -> dict:
    try:
        value = json.loads(req.body or b"null")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise GraphFail(
            400,
            "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
            "valid JSON format.",
        )
    return value


def _item_id(seed: str) -> str:
    return "AAMkA" + base64.urlsafe_b64encode(uuid.uuid5(uuid.NAMESPACE_URL, seed).bytes * 2).decode().rstrip("=")


def _canonical_body(message: dict) -> dict:
    """A request may write the body type in any case ("HTML"); an answer carries the bodyType member name."""
    body = message.get("body")
    if isinstance(body, dict) and isinstance(body.get("contentType"), str):
        return {"body": {**body, "contentType": body["contentType"].lower()}}
    return {}


class MailHandlers:
    url: str
    sent_mail: list[dict]
    mail_lock: threading.Lock
    upload_sessions: dict[str, dict]

    # ------------------------------------------------------------------------------------- mailbox
    @staticmethod
    def mailbox_user(req: Request, key: str) -> dict:
        tenant: TenantState = req.tenant
        if tenant.spec.get("exchange_online") is False:
            # No Exchange Online organisation for the tenant: every Outlook call is refused this way
            # (issues MicrosoftDocs/azure-docs#32957, O365/python-o365#757).
            raise GraphFail(
                401, "OrganizationFromTenantGuidNotFound", f"The tenant for tenant guid '{tenant.id}' does not exist."
            )
        user = tenant.user(key)
        if user is None:
            raise GraphFail(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        box = user.get("mailbox")
        if not box:
            raise GraphFail(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        if box.get("location", "cloud") != "cloud":
            raise GraphFail(404, "MailboxNotEnabledForRESTAPI", "REST API is not yet supported for this mailbox.")
        return user

    def mailbox_settings(self, req: Request, params: dict) -> Response:
        key = params["user"]
        user = self.mailbox_user(req, key)
        purpose = user["mailbox"].get("purpose", "user")
        settings = {
            "archiveFolder": _item_id(f"{user['id']}/archive"),
            "timeZone": "UTC",
            "automaticRepliesSetting": {
                "status": "disabled",
                "externalAudience": "all",
                "internalReplyMessage": "",
                "externalReplyMessage": "",
                "scheduledStartDateTime": {"dateTime": "2024-01-01T00:00:00.0000000", "timeZone": "UTC"},
                "scheduledEndDateTime": {"dateTime": "2024-01-02T00:00:00.0000000", "timeZone": "UTC"},
            },
            "language": {"locale": "en-US", "displayName": "English (United States)"},
            "workingHours": {
                "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                "startTime": "08:00:00.0000000",
                "endTime": "17:00:00.0000000",
                "timeZone": {"name": "UTC"},
            },
            # v1.0 metadata types userPurpose as the enum graph.userPurpose: a plain member name (resource
            # page resources/mailboxsettings.md, JSON representation). The older example response of
            # api/user-get-mailboxsettings.md wraps it, {"value": "user"}: served when the tenant asks.
            "userPurpose": {"value": purpose} if req.tenant.spec.get("user_purpose_shape") == "object" else purpose,
            "dateFormat": "M/d/yyyy",
            "timeFormat": "h:mm tt",
            "delegateMeetingMessageDeliveryOptions": "sendToDelegateOnly",
        }
        context = f"{self.url}/v1.0/$metadata#users('{key}')/mailboxSettings"
        setting = params.get("setting")
        if not setting:
            select = parse_select(req, {k.lower(): k for k in settings}, "mailboxSettings")
            if select:
                return Response.json(
                    200, {"@odata.context": f"{context}({','.join(select)})", **project(settings, select)}
                )
            return Response.json(200, {"@odata.context": context, **settings})
        name = next((k for k in settings if k.lower() == setting.lower()), None)
        if name is None:
            raise GraphFail(400, "BadRequest", f"Resource not found for the segment '{setting}'.")
        value = settings[name]
        if name == "userPurpose":
            value = purpose
        body = (
            {"@odata.context": f"{context}/{name}", **value}
            if isinstance(value, dict)
            else {"@odata.context": f"{context}/{name}", "value": value}
        )
        return Response.json(200, body)

    def mail_folder(self, req: Request, params: dict) -> Response:
        key, folder = params["user"], params["folder"]
        user = self.mailbox_user(req, key)
        name = _WELL_KNOWN_FOLDERS.get(folder.lower())
        if name is None:
            raise GraphFail(404, "ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return Response.json(
            200,
            {
                "@odata.context": f"{self.url}/v1.0/$metadata#users('{key}')/mailFolders/$entity",
                "id": _item_id(f"{user['id']}/{folder.lower()}"),
                "displayName": name,
                "parentFolderId": _item_id(f"{user['id']}/root"),
                "childFolderCount": 0,
                "unreadItemCount": 0,
                "totalItemCount": 0,
                "sizeInBytes": 0,
                "isHidden": False,
            },
        )

    # ------------------------------------------------------------------------------------- sending
    @staticmethod
    def _check_recipients(message: dict) -> None:
        recipients = [r for key in ("toRecipients", "ccRecipients", "bccRecipients") for r in message.get(key) or []]
        bad = [r for r in recipients if not (isinstance(r, dict) and (r.get("emailAddress") or {}).get("address"))]
        if not recipients or bad:
            raise GraphFail(
                400,
                "ErrorInvalidRecipients",
                "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
            )

    def send_mail(self, req: Request, params: dict) -> Response:
        if len(req.body) > SEND_MAIL_LIMIT:
            raise GraphFail(413, "RequestEntityTooLarge", "The request body is too large: sendMail accepts up to 4 MB.")
        body = _json_body(req)
        message = body.get("message") or body.get("Message")
        if not isinstance(message, dict):
            raise GraphFail(400, "ErrorInvalidParameter", "The value of the parameter 'Message' is empty.")
        self.mailbox_user(req, params["user"])
        self._check_recipients(message)
        save = body.get("saveToSentItems", True)
        with self.mail_lock:
            self.sent_mail.append({"user": params["user"], "message": message, "saveToSentItems": save})
        return Response.empty(202)

    def create_message(self, req: Request, params: dict) -> Response:
        user = self.mailbox_user(req, params["user"])
        message = _json_body(req)
        message_id = _item_id(f"{user['id']}/{uuid.uuid4()}")
        draft = {
            **message,
            **_canonical_body(message),
            "id": message_id,
            "isDraft": True,
            "createdDateTime": _now_iso(),
            "hasAttachments": False,
        }
        with self.mail_lock:
            req.tenant.messages[message_id] = {"user": user["id"], "message": draft, "attachments": []}
        return Response.json(
            201,
            {
                "@odata.context": f"{self.url}/v1.0/$metadata#users('{params['user']}')/messages/$entity",
                **draft,
            },
        )

    def _draft(self, req: Request, params: dict) -> dict:
        user = self.mailbox_user(req, params["user"])
        draft = req.tenant.messages.get(params["message"])
        if draft is None or draft["user"] != user["id"]:
            raise GraphFail(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return draft

    def add_attachment(self, req: Request, params: dict) -> Response:
        draft = self._draft(req, params)
        item = _json_body(req)
        try:
            size = len(base64.b64decode(item.get("contentBytes") or "", validate=True))
        except ValueError:
            raise GraphFail(400, "ErrorInvalidRequest", "The attachment content is not valid base64.") from None
        attachment = {
            "id": _item_id(f"{draft['message']['id']}/{uuid.uuid4()}"),
            "name": item.get("name"),
            "contentType": item.get("contentType") or "application/octet-stream",
            "size": size,
            "isInline": False,
            "contentBytes": item.get("contentBytes"),
        }
        with self.mail_lock:
            draft["attachments"].append(attachment)
        return Response.json(
            201,
            {
                "@odata.type": "#microsoft.graph.fileAttachment",
                **{k: v for k, v in attachment.items() if k != "contentBytes"},
            },
        )

    def create_upload_session(self, req: Request, params: dict) -> Response:
        draft = self._draft(req, params)
        body = _json_body(req)
        item = body.get("AttachmentItem") or body.get("attachmentItem") or {}
        size = item.get("size")
        if item.get("attachmentType", "file") != "file" or not isinstance(size, int) or not 0 < size <= UPLOAD_LIMIT:
            raise GraphFail(400, "ErrorInvalidRequest", "The AttachmentItem must be a file of 1 byte to 150 MB.")
        session_id = secrets.token_urlsafe(16)
        auth = secrets.token_urlsafe(24)
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
        with self.mail_lock:
            self.upload_sessions[session_id] = {
                "auth": auth,
                "draft": draft,
                "name": item.get("name"),
                "size": size,
                "user": params["user"],
                "contentType": item.get("contentType") or "application/octet-stream",
                "data": bytearray(),
                "expires": expires,
            }
        return Response.json(
            201,
            {
                "@odata.context": f"{self.url}/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": f"{self.url}/upload/{session_id}?authtoken={auth}",
                "expirationDateTime": expires,
                "nextExpectedRanges": ["0-"],
            },
        )

    def upload_chunk(self, session_id: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Response:
        """PUT of one byte range to an upload URL (pre-authenticated: no bearer token)."""
        with self.mail_lock:
            session = self.upload_sessions.get(session_id)
            if session is None or query.get("authtoken") != session["auth"]:
                raise GraphFail(404, "ErrorItemNotFound", "The upload session does not exist or has expired.")
            if "authorization" in headers:
                raise GraphFail(
                    401,
                    "InvalidAuthenticationToken",
                    "The upload URL is pre-authenticated: send no Authorization header.",
                )
            match = _RANGE.match(headers.get("content-range", ""))
            received = len(session["data"])
            if not match:
                raise GraphFail(
                    400,
                    "ErrorInvalidRequest",
                    "A Content-Range header 'bytes {start}-{end}/{total}' is required.",
                )
            start, end, total = (int(g) for g in match.groups())
            if total != session["size"] or end < start or end >= total or len(body) != end - start + 1:
                raise GraphFail(
                    400,
                    "ErrorInvalidRequest",
                    "The Content-Range does not match the body or the session size.",
                )
            if start != received:
                raise GraphFail(416, "invalidRange", "Uploaded fragment overlaps with existing data.")
            session["data"].extend(body)
            if len(session["data"]) < total:
                return Response.json(
                    200,
                    {
                        "@odata.context": f"{self.url}/api/v2.0/$metadata#AttachmentSessions/$entity",
                        "expirationDateTime": session["expires"],
                        "nextExpectedRanges": [str(len(session["data"]))],
                    },
                )
            del self.upload_sessions[session_id]
            draft = session["draft"]
            attachment_id = _item_id(f"{draft['message']['id']}/{session_id}")
            draft["attachments"].append(
                {
                    "id": attachment_id,
                    "name": session["name"],
                    "contentType": session["contentType"],
                    "size": total,
                    "isInline": False,
                    "contentBytes": base64.b64encode(bytes(session["data"])).decode(),
                }
            )
        message_url = f"{self.url}/v1.0/users('{session['user']}')/messages('{draft['message']['id']}')"
        location = f"{message_url}/attachments('{attachment_id}')"
        return Response.empty(201, {"Location": location})

    def send_draft(self, req: Request, params: dict) -> Response:
        draft = self._draft(req, params)
        self._check_recipients(draft["message"])
        with self.mail_lock:
            req.tenant.messages.pop(params["message"], None)
            message = {**draft["message"], "attachments": list(draft["attachments"])}
            self.sent_mail.append({"user": params["user"], "message": message, "saveToSentItems": True})
        return Response.empty(202)
