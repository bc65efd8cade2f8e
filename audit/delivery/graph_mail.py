"""Mail channel: the report by Graph sendMail from a mailbox of one configured tenant.

An attachment over 3 MB goes through an upload session (a draft, the file in chunks, then send).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import requests

from audit.config import Config, EmailConfig, TenantConfig
from audit.delivery.message import (
    SMTP_TIMEOUT,
    Delivery,
    MailError,
    attachment_path,
    file_type,
    render_html,
    subject_line,
)
from audit.models import RunResult
from audit.session import connect

if TYPE_CHECKING:
    from audit.graph import GraphClient
    from audit.report import ReportFiles

log = logging.getLogger("audit")

NAME = "graph"
# Graph refuses request bodies over 4 MB and base64 grows a file by a third: an attachment over 3 MB,
# or one that would push the sendMail body over 4 MB, goes through an upload session (up to 150 MB).
GRAPH_INLINE_LIMIT = 3 * 1024 * 1024
GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024 - 16 * 1024  # whole sendMail body, with room for headers
GRAPH_UPLOAD_LIMIT = 150 * 1024 * 1024
UPLOAD_CHUNK = 3 * 1024 * 1024  # Graph takes at most 4 MB per PUT
UPLOAD_TIMEOUT = SMTP_TIMEOUT


def configured(config: Config) -> bool:
    return config.email is not None and bool(config.email.to) and config.email.transport == NAME


def only_on_change(config: Config) -> bool:
    return bool(config.email and config.email.only_on_change)


def deliver(delivery: Delivery) -> None:
    email = delivery.config.email
    assert email is not None
    send_graph(delivery.result, delivery.files, email, delivery.graph or sender_client(delivery.config))
    log.info("report mailed to %s by %s", ", ".join(email.to), NAME)


def _sending_tenant(config: Config) -> TenantConfig:
    email = config.email
    wanted = email.sender_tenant if email else None
    for tenant in config.tenants:
        if wanted in (tenant.name, tenant.tenant_id):
            return tenant
    raise MailError(
        f"email.sender_tenant {wanted!r} is not a configured tenant. Name the tenant whose mailbox sends the report."
    )


def sender_client(config: Config) -> GraphClient:
    """A Graph client signed in to email.sender_tenant (its app needs Mail.Send)."""
    _, client = connect(_sending_tenant(config), config.audit, sign_in=False)  # signs in on the first request
    return client


def graph_message(result: RunResult, files: ReportFiles, email: EmailConfig) -> dict:
    """The Graph message resource (without attachments)."""
    return {
        "subject": subject_line(result, files),
        "body": {"contentType": "HTML", "content": render_html(result, files)},
        "toRecipients": [{"emailAddress": {"address": a}} for a in email.to],
    }


def _file_attachment(name: str, content: bytes) -> dict:
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "name": name,
        "contentType": file_type(name),
        "contentBytes": base64.b64encode(content).decode("ascii"),
    }


def send_graph(result: RunResult, files: ReportFiles, email: EmailConfig, client: GraphClient) -> None:
    """POST /users/{sender}/sendMail; an attachment over 3 MB goes through an upload session."""
    from audit.auth import AuthError
    from audit.graph import GraphError

    sender = email.sender
    if not sender:
        raise MailError("email.sender is not set. Name the mailbox that sends the report.")
    message = graph_message(result, files, email)
    attachment = attachment_path(files)
    content = attachment.read_bytes() if attachment else b""
    inline = {"message": message, "saveToSentItems": True}
    if attachment is not None:
        inline = {
            "message": {**message, "attachments": [_file_attachment(attachment.name, content)]},
            "saveToSentItems": True,
        }
    step = "sendMail"
    try:
        if len(content) <= GRAPH_INLINE_LIMIT and len(json.dumps(inline)) <= GRAPH_REQUEST_LIMIT:
            client.post(f"/users/{sender}/sendMail", inline)
            return
        if len(content) > GRAPH_UPLOAD_LIMIT:
            raise MailError(
                f"the workbook is {len(content) / 1e6:.1f} MB, more than Graph can attach "
                '(150 MB). Use transport "smtp" or write fewer findings per report.'
            )
        step = "create the draft"
        draft = client.post(f"/users/{sender}/messages", message) or {}
        step = "attach the workbook"
        _upload_attachment(client, sender, str(draft["id"]), attachment, content)
        step = "send the draft"
        client.post(f"/users/{sender}/messages/{draft['id']}/send", {})
    except GraphError as exc:
        need = "Mail.Send" if step == "sendMail" else "Mail.Send and Mail.ReadWrite (large attachments)"
        hint = f" Grant the sending app {need} (application) and admin consent." if exc.status == 403 else ""
        raise MailError(f"Graph refused to {step} as {sender}: {exc}.{hint}") from None
    except AuthError as exc:
        raise MailError(f"could not sign in to send the report as {sender}: {exc}") from None
    except (KeyError, TypeError):
        raise MailError(f"Graph answered the {step} step without the expected fields.") from None


def _upload_attachment(client: GraphClient, sender: str, message_id: str, path: Path, content: bytes) -> None:
    session = (
        client.post(
            f"/users/{sender}/messages/{message_id}/attachments/createUploadSession",
            {
                "AttachmentItem": {
                    "attachmentType": "file",
                    "name": path.name,
                    "size": len(content),
                    "contentType": file_type(path),
                }
            },
        )
        or {}
    )
    url = session["uploadUrl"]  # pre-authorised: it must not carry the bearer token
    for start in range(0, len(content), UPLOAD_CHUNK):
        chunk = content[start : start + UPLOAD_CHUNK]
        end = start + len(chunk) - 1
        try:
            answer = requests.put(
                url,
                data=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(len(chunk)),
                    "Content-Range": f"bytes {start}-{end}/{len(content)}",
                },
                timeout=UPLOAD_TIMEOUT,
                verify=client.verify,
                proxies=client.proxies,
            )
        except requests.RequestException as exc:
            raise MailError(
                f"uploading the workbook to Graph failed at byte {start}: {type(exc).__name__}. "
                "The draft stays in the sender's Drafts folder; try again or use SMTP."
            ) from None
        if answer.status_code not in (200, 201):
            raise MailError(
                f"Graph refused bytes {start}-{end} of the workbook ({answer.status_code}). "
                "The draft stays in the sender's Drafts folder; try again or use SMTP."
            )
