"""Deliver a written report: by SMTP or Graph sendMail, plus an optional one-line chat webhook.

The caller writes the report first and only then calls `send_report`, so a failed send never loses
the report: `send_report` raises MailError (a clear message without secrets) and the CLI logs it and
chooses the exit code. A webhook failure is only logged.

Everything taken from the tenants (names, display names, error texts) is HTML-escaped in the body.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import smtplib
import ssl
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from audit.config import Config, EmailConfig, TenantConfig, is_https_url, is_loopback
from audit.logs import register_secret
from audit.models import Finding, RunResult, Severity, TenantStatus
from audit.report.tally import severity_counts
from audit.session import connect, proxy_url, tls_verify

if TYPE_CHECKING:
    from audit.graph import GraphClient
    from audit.report import ReportFiles

log = logging.getLogger("audit")

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FILE_TYPES = {".xlsx": XLSX_TYPE, ".json": "application/json", ".csv": "text/csv"}
SEVERITIES = Severity.worst_first()
SMTP_TIMEOUT = 60.0
WEBHOOK_TIMEOUT = 15.0
# Graph refuses request bodies over 4 MB and base64 grows a file by a third: an attachment over 3 MB,
# or one that would push the sendMail body over 4 MB, goes through an upload session (up to 150 MB).
GRAPH_INLINE_LIMIT = 3 * 1024 * 1024
GRAPH_REQUEST_LIMIT = 4 * 1024 * 1024 - 16 * 1024  # whole sendMail body, with room for headers
GRAPH_UPLOAD_LIMIT = 150 * 1024 * 1024
UPLOAD_CHUNK = 3 * 1024 * 1024  # Graph takes at most 4 MB per PUT
LISTED_FINDINGS = 50  # new / resolved findings listed in the body; the workbook has them all


class MailError(Exception):
    """The report could not be delivered. str(e) says what failed and what to do; it holds no secret."""


# ---------------------------------------------------------------------------------------------------
# What the message says


@dataclass(frozen=True)
class TenantLine:
    name: str
    status: str
    error: str | None
    users_scanned: int
    by_severity: dict[str, int]
    findings: int
    new: int
    resolved: int


@dataclass(frozen=True)
class CheckLine:
    check_id: str
    severity: str
    predicted_error: str
    findings: int


@dataclass(frozen=True)
class Summary:
    tenants: tuple[TenantLine, ...]
    checks: tuple[CheckLine, ...]
    new: tuple[Finding, ...]
    resolved: tuple[Finding, ...]


def summarize(result: RunResult, files: ReportFiles) -> Summary:
    findings = list(files.findings)  # the findings that count (accepted exceptions taken out)
    new, resolved = tuple(files.changes.new), tuple(files.changes.resolved)
    lines = []
    for tenant in result.tenants:
        tid = tenant.tenant_id.lower()
        own = [f for f in findings if f.tenant_id.lower() == tid]
        lines.append(
            TenantLine(
                name=tenant.name,
                status=str(tenant.status),
                error=tenant.error,
                users_scanned=tenant.users_scanned,
                by_severity=_severity_counts(own),
                findings=len(own),
                new=sum(1 for f in new if f.tenant_id.lower() == tid),
                resolved=sum(1 for f in resolved if f.tenant_id.lower() == tid),
            )
        )
    per_check = Counter(f.check_id for f in findings)
    first = {}
    for f in findings:
        first.setdefault(f.check_id, f)
    checks = sorted(
        (CheckLine(cid, str(first[cid].severity), first[cid].predicted_error, n) for cid, n in per_check.items()),
        key=lambda c: (-Severity(c.severity).rank, -c.findings, c.check_id),
    )
    return Summary(tuple(lines), tuple(checks), new, resolved)


def _severity_counts(findings: Iterable[Finding]) -> dict[str, int]:
    return severity_counts(findings)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())  # no CR/LF can reach a header


def subject_line(result: RunResult, files: ReportFiles) -> str:
    """e.g. `etd-audit: contoso — 12 findings (3 critical, +2 new, -1 resolved)`; also the webhook text."""
    from audit.report import summary_line

    return _one_line(f"etd-audit: {summary_line(result, files)}")


def _h(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_CELL = 'style="border:1px solid #ccc;padding:4px 8px;text-align:left"'
_NUM = 'style="border:1px solid #ccc;padding:4px 8px;text-align:right"'


def _table(head: list[str], rows: list[list[object]], numeric: set[int]) -> str:
    out = ['<table style="border-collapse:collapse;font-family:sans-serif;font-size:13px">', "<tr>"]
    out += [f"<th {_CELL}>{_h(h)}</th>" for h in head]
    out.append("</tr>")
    for row in rows:
        cells = [f"<td {_NUM if i in numeric else _CELL}>{_h(v)}</td>" for i, v in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _finding_rows(findings: Iterable[Finding], tenants: Mapping[str, str]) -> list[list[object]]:
    rows = []
    for f in list(findings)[:LISTED_FINDINGS]:
        who = f.user_principal_name or "(tenant setting)"
        rows.append(
            [
                tenants.get(f.tenant_id.lower(), f.tenant_id),
                str(f.severity),
                f.check_id,
                who,
                f.display_name,
                f.predicted_error,
            ]
        )
    return rows


def _unverified(files: ReportFiles) -> str:
    count = len(getattr(files.changes, "unverified", ()))
    if not count:
        return ""
    return (
        f"{_plural(count, 'earlier finding')} could not be re-checked in this run (its tenant failed "
        "or the data was not readable); they are counted neither as open nor as resolved."
    )


def _report_names(files: ReportFiles) -> list[str]:
    return [str(p) for p in (files.xlsx, files.json, files.csv) if p]


def render_html(result: RunResult, files: ReportFiles) -> str:
    summary = summarize(result, files)
    names = {t.tenant_id.lower(): t.name for t in result.tenants}
    tenant_rows = [
        [
            t.name,
            t.status + (f": {t.error}" if t.error else ""),
            t.users_scanned,
            *(t.by_severity[s.value] for s in SEVERITIES),
            t.findings,
            f"+{t.new}",
            f"-{t.resolved}",
        ]
        for t in summary.tenants
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8"><title>etd-audit report</title></head>',
        '<body style="font-family:sans-serif;font-size:14px">',
        f"<p>{_h(subject_line(result, files))}</p>",
        f"<p>Run from {_h(result.started.isoformat(timespec='seconds'))} to "
        f"{_h(result.finished.isoformat(timespec='seconds'))}, etd-audit {_h(result.version)}.</p>",
        "<h3>Tenants</h3>",
        _table(
            [
                "Tenant",
                "Status",
                "Users scanned",
                "Critical",
                "High",
                "Medium",
                "Low",
                "Findings",
                "New",
                "Resolved",
            ],
            tenant_rows,
            {2, 3, 4, 5, 6, 7, 8, 9},
        ),
    ]
    if summary.checks:
        parts += [
            "<h3>Findings by check</h3>",
            _table(
                ["Check", "Severity", "Remediation would fail with", "Findings"],
                [[c.check_id, c.severity, c.predicted_error, c.findings] for c in summary.checks],
                {3},
            ),
        ]
    for title, found in (
        ("New since the last report", summary.new),
        ("Resolved since the last report", summary.resolved),
    ):
        if found:
            more = f" (first {LISTED_FINDINGS} of {len(found)})" if len(found) > LISTED_FINDINGS else ""
            parts += [
                f"<h3>{_h(title)}{_h(more)}</h3>",
                _table(
                    ["Tenant", "Severity", "Check", "Account", "Display name", "Remediation would fail with"],
                    _finding_rows(found, names),
                    set(),
                ),
            ]
    if _unverified(files):
        parts.append(f"<p>{_h(_unverified(files))}</p>")
    parts.append("<p>The attached report lists every finding with its cause and fix.</p>")
    if _report_names(files):
        parts.append("<p>Report files: " + ", ".join(_h(n) for n in _report_names(files)) + "</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_text(result: RunResult, files: ReportFiles) -> str:
    summary = summarize(result, files)
    out = [subject_line(result, files), ""]
    out.append(
        f"{'Tenant':<24} {'Status':<8} {'Users':>7} {'Crit':>5} {'High':>5} {'Med':>5} {'Low':>5} {'New':>5} {'Res':>5}"
    )
    for t in summary.tenants:
        s = t.by_severity
        out.append(
            f"{_one_line(t.name)[:24]:<24} {t.status:<8} {t.users_scanned:>7} {s['critical']:>5} "
            f"{s['high']:>5} {s['medium']:>5} {s['low']:>5} {'+' + str(t.new):>5} {'-' + str(t.resolved):>5}"
        )
        if t.error:
            out.append(f"    {_one_line(t.error)}")
    if summary.checks:
        out += ["", "Findings by check:"]
        out += [f"  {c.findings:>6}  {c.severity:<8} {c.check_id}: {c.predicted_error}" for c in summary.checks]
    names = {t.tenant_id.lower(): t.name for t in result.tenants}
    for title, found in (("New since the last report", summary.new), ("Resolved", summary.resolved)):
        if found:
            out += ["", f"{title}:"]
            out += [f"  {row[0]} {row[1]} {row[2]} {row[3]}" for row in _finding_rows(found, names)]
    if _unverified(files):
        out += ["", _unverified(files)]
    out += ["", "The attached report lists every finding with its cause and fix."]
    if _report_names(files):
        out.append("Report files: " + ", ".join(_report_names(files)))
    return "\n".join(out) + "\n"


def _attachment(files: ReportFiles) -> Path | None:
    """The workbook; the JSON or CSV only when no workbook was written."""
    for path in (files.xlsx, files.json, files.csv):
        if path:
            return Path(path)
    return None


def build_message(result: RunResult, files: ReportFiles, email: EmailConfig) -> EmailMessage:
    """The report as a MIME message: HTML body with a plain-text alternative, the workbook attached."""
    message = EmailMessage()
    message["Subject"] = subject_line(result, files)
    message["From"] = email.sender or "etd-audit@localhost"
    message["To"] = ", ".join(email.to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=(email.sender or "localhost").rpartition("@")[2] or None)
    message.set_content(render_text(result, files))
    message.add_alternative(render_html(result, files), subtype="html")
    attachment = _attachment(files)
    if attachment:
        maintype, _, subtype = FILE_TYPES.get(attachment.suffix.lower(), "application/octet-stream").partition("/")
        message.add_attachment(attachment.read_bytes(), maintype=maintype, subtype=subtype, filename=attachment.name)
    return message


# ---------------------------------------------------------------------------------------------------
# Whether to send


def _previous_statuses(previous: Path | None) -> dict[str, str] | None:
    """Tenant statuses recorded in the previous JSON report, or None when they cannot be read."""
    from audit.report.jsonreport import ReportError, read_json_report

    if not previous:
        return None
    try:
        earlier, _ = read_json_report(previous)
    except (ReportError, OSError):
        return None
    return {t.tenant_id.lower(): str(t.status) for t in earlier.tenants}


def has_news(result: RunResult, files: ReportFiles) -> bool:
    """New or resolved findings, a first report, or a tenant whose status is not what it was."""
    changes = files.changes
    if changes.new or changes.resolved or changes.previous is None:
        return True
    before = _previous_statuses(changes.previous)
    if before is None:
        return any(t.status != TenantStatus.OK for t in result.tenants)
    return any(before.get(t.tenant_id.lower()) != str(t.status) for t in result.tenants)


# ---------------------------------------------------------------------------------------------------
# Sending


def send_report(
    result: RunResult,
    files: ReportFiles,
    config: Config,
    *,
    graph: GraphClient | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = SMTP_TIMEOUT,
) -> bool:
    """Mail the written report as config.email says; post the one-line summary to the webhook.

    Returns False when nothing was sent (no [email], or only_on_change and nothing changed).
    Raises MailError when the mail could not be delivered (the webhook is still tried first).
    graph: a client for the sending tenant (transport "graph"); built from the config when omitted.
    """
    email = config.email
    if email is None:
        return False
    env = os.environ if environ is None else environ
    if email.only_on_change and not has_news(result, files):
        log.info("report not mailed: nothing changed since the last report (only_on_change)")
        return False
    failure: MailError | None = None
    if email.to:
        try:
            if email.transport == "graph":
                send_graph(result, files, email, graph or sender_client(config))
            else:
                send_smtp(
                    build_message(result, files, email),
                    email,
                    environ=env,
                    ca_bundle=config.audit.ca_bundle,
                    timeout=timeout,
                )
            log.info("report mailed to %s by %s", ", ".join(email.to), email.transport)
        except MailError as exc:
            failure = exc
    if email.webhook_url_env:
        post_webhook(
            email.webhook_url_env,
            subject_line(result, files),
            environ=env,
            verify=tls_verify(config.audit),
            proxy=proxy_url(config.audit),
        )
    if failure:
        raise failure
    return True


def _secret(environ: Mapping[str, str], name: str | None, what: str) -> str | None:
    if name is None:
        return None
    value = environ.get(name)
    if not value:
        raise MailError(
            f"{what} is read from the environment variable {name}, which is not set. "
            f"Set {name} in the environment that runs etd-audit."
        )
    register_secret(value)
    return value


def send_smtp(
    message: EmailMessage,
    email: EmailConfig,
    *,
    environ: Mapping[str, str] | None = None,
    ca_bundle: Path | None = None,
    timeout: float = SMTP_TIMEOUT,
) -> None:
    """Send by SMTP with STARTTLS, implicit TLS or none (a local relay); MailError on any failure."""
    env = os.environ if environ is None else environ
    host, port, security = email.smtp_host, email.smtp_port, email.smtp_security
    if not host:
        raise MailError("email.smtp_host is not set. Name the SMTP server in [email] smtp_host.")
    username = _secret(env, email.smtp_username_env, "The SMTP user name")
    password = _secret(env, email.smtp_password_env, "The SMTP password")
    if security == "none" and password is not None and not is_loopback(host):
        raise MailError(
            f'smtp_security = "none" would send the SMTP password to {host} in clear. Use "starttls" or "tls", '
            "or a relay on this machine without signing in."
        )
    context = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
    where = f"{host}:{port} ({security})"
    try:
        if security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if username is not None and password is not None:
                client.login(username, password)
            refused = client.send_message(message)
    except smtplib.SMTPAuthenticationError as exc:
        raise MailError(
            f"the SMTP server {where} refused the sign-in ({exc.smtp_code}). Check the account "
            f"in {email.smtp_username_env} and its password in {email.smtp_password_env}."
        ) from None
    except smtplib.SMTPNotSupportedError:
        raise MailError(
            f'the SMTP server {where} does not offer STARTTLS. Use smtp_security = "tls" '
            '(usually port 465), or "none" only for a relay on the same host.'
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise MailError(
            f"the SMTP server {where} refused every recipient ({_refusals(exc.recipients)}). "
            "Check email.to and whether the server relays for the sender."
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise MailError(
            f"could not send the report through the SMTP server {where}: "
            f"{type(exc).__name__}: {exc}. Check smtp_host, smtp_port and smtp_security, "
            "and that the server can be reached from here."
        ) from None
    if refused:
        log.warning("the SMTP server refused some recipients: %s", _refusals(refused))


def _refusals(recipients: Mapping[str, Any]) -> str:
    return "; ".join(f"{addr}: {reply[0]}" for addr, reply in recipients.items())


# ---- Graph ----------------------------------------------------------------------------------------


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
        "contentType": FILE_TYPES.get(Path(name).suffix.lower(), "application/octet-stream"),
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
    attachment = _attachment(files)
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
                    "contentType": FILE_TYPES.get(path.suffix.lower(), "application/octet-stream"),
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
                timeout=SMTP_TIMEOUT,
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


# ---- Webhook --------------------------------------------------------------------------------------


def post_webhook(
    url_env: str,
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    verify: str | bool = True,
    proxy: str | None = None,
    timeout: float = WEBHOOK_TIMEOUT,
) -> bool:
    """POST {"text": text} to the incoming webhook in $url_env. Failures are logged, never raised.

    The URL itself is a credential (anyone holding it can post), so it is never logged.
    """
    env = os.environ if environ is None else environ
    url = env.get(url_env)
    register_secret(url)
    if not url:
        log.warning("webhook not posted: the environment variable %s is not set", url_env)
        return False
    if not is_https_url(url):
        log.warning("webhook in %s not posted: the URL is not https://, and it must not travel in clear", url_env)
        return False
    try:
        # A redirect is not followed: it would carry the post (and the URL's secret path) somewhere else.
        answer = requests.post(
            url,
            json={"text": text},
            timeout=timeout,
            verify=verify,
            proxies={"https": proxy, "http": proxy} if proxy else None,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.warning("webhook in %s not posted: %s", url_env, type(exc).__name__)
        return False
    if 300 <= answer.status_code < 400:
        log.warning(
            "webhook in %s not posted: the server answered %d, a redirect (not followed)", url_env, answer.status_code
        )
        return False
    if answer.status_code >= 300:
        log.warning("webhook in %s not posted: the server answered %d", url_env, answer.status_code)
        return False
    log.info("summary posted to the webhook in %s", url_env)
    return True
