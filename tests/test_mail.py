"""Delivering the report: the message itself, SMTP against a real local server (plain, STARTTLS and
implicit TLS), Graph sendMail against the simulator, and the chat webhook against a local HTTP server."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import io
import json
import logging
import random
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import openpyxl
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from audit.config import AuditConfig, Config, ConfigError, EmailConfig, RemediationAppConfig, WebhookConfig, load_config
from audit.delivery import (
    CHANNELS,
    UPLOAD_CHUNK,
    XLSX_TYPE,
    Delivery,
    MailError,
    build_message,
    configured,
    has_news,
    post_webhook,
    send_report,
    subject_line,
)
from audit.models import Finding, RunResult, Severity, TenantResult, TenantStatus
from audit.report import write_reports
from audit.simulator import generate_tenant
from audit.simulator.pki import make_server_pki
from tests.local_http import serving

CONTOSO = "11111111-1111-1111-1111-111111111111"
FABRIKAM = "33333333-3333-3333-3333-333333333333"
EVIL_NAME = '<script>alert("x")</script>'
EVIL_TENANT_ERROR = 'token refused "><img src=x onerror=alert(1)>'
SMTP_PASSWORD = "s3cret-smtp-password"
START = datetime(2025, 3, 3, 6, 0, tzinfo=UTC)


def finding(tenant: str, check: str, user: str, severity: Severity = Severity.HIGH, name: str | None = None) -> Finding:
    return Finding(
        tenant_id=tenant,
        check_id=check,
        severity=severity,
        user_principal_name=f"{user}@contoso.com",
        user_id=f"id-{user}",
        display_name=name or user.title(),
        predicted_error="The Requested User is Invalid",
        cause="no mailbox",
        fix="assign a license",
        evidence="mailboxSettings: 404",
    )


def run_result(findings: list[Finding], *, fabrikam: TenantStatus | None = None, start: datetime = START) -> RunResult:
    tenants = [
        TenantResult(
            "contoso",
            CONTOSO,
            TenantStatus.OK,
            users_scanned=120,
            findings=[f for f in findings if f.tenant_id == CONTOSO],
        ),
    ]
    if fabrikam is not None:
        tenants.append(
            TenantResult(
                "fabrikam",
                FABRIKAM,
                fabrikam,
                users_scanned=0,
                error=EVIL_TENANT_ERROR if fabrikam == TenantStatus.FAILED else None,
                findings=[f for f in findings if f.tenant_id == FABRIKAM],
            )
        )
    return RunResult(
        started=start, finished=start + timedelta(minutes=3), version="0.1.0", probes=True, tenants=tenants
    )


FIRST = [
    finding(CONTOSO, "no-mailbox", "ann", Severity.CRITICAL),
    finding(CONTOSO, "no-mailbox", "bob", Severity.CRITICAL),
    finding(CONTOSO, "guest-user", "cy", Severity.MEDIUM),
]
DEE = finding(CONTOSO, "on-prem-mailbox", "dee", Severity.HIGH, name=EVIL_NAME)  # new in the second run


@pytest.fixture
def reports(tmp_path: Path):
    """A second report (one finding new, one resolved) written by the real report writer."""
    out = tmp_path / "reports"
    write_reports(run_result(FIRST), out, stem="etd-audit-first")
    second = [FIRST[0], FIRST[2], DEE]
    result = run_result(second, start=START + timedelta(days=7))
    files = write_reports(result, out, stem="etd-audit-second")
    return result, files


def config(email_config: EmailConfig | None, *, ca_bundle: Path | None = None) -> Config:
    return Config(
        path=Path("etd-audit.toml"),
        tenants=(),
        remediation_app=RemediationAppConfig(app_id="55555555-5555-5555-5555-555555555555"),
        audit=AuditConfig(ca_bundle=ca_bundle),
        email=email_config,
    )


def workbook_text(content: bytes) -> set[str]:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return {str(v) for sheet in book.worksheets for row in sheet.iter_rows(values_only=True) for v in row if v}


# ---------------------------------------------------------------------------------------------------
# The message


def test_subject_one_tenant(reports) -> None:
    result, files = reports
    subject = subject_line(result, files)
    assert subject.startswith("etd-audit: contoso — 3 findings (")
    assert "1 critical" in subject and "+1 new, -1 resolved" in subject


def test_subject_several_tenants_and_a_failed_one(tmp_path: Path) -> None:
    result = run_result([FIRST[0]], fabrikam=TenantStatus.FAILED)
    result.tenants[1].name = "fabrikam\r\nBcc: everyone@example.com"  # no header injection either
    files = write_reports(result, tmp_path, stem="etd-audit-one")
    subject = subject_line(result, files)
    assert subject.startswith("etd-audit: ") and "1 finding" in subject
    assert "failed" in subject and "\n" not in subject and "\r" not in subject
    message = build_message(result, files, EmailConfig(to=("secops@contoso.com",), sender="audit@contoso.com"))
    assert message["Bcc"] is None


class TagCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes += attrs

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_html(markup: str) -> TagCollector:
    parser = TagCollector()
    parser.feed(markup)
    parser.close()
    return parser


def assert_inert(markup: str, *, failed_tenant: bool = False) -> None:
    """Only our own markup survives; the hostile display name (and error text) arrive as plain text."""
    parsed = parse_html(markup)
    assert parsed.tags <= {"html", "head", "meta", "title", "body", "p", "h3", "table", "tr", "th", "td"}
    assert {name for name, _ in parsed.attributes} <= {"charset", "style"}
    text = "".join(parsed.text)
    assert EVIL_NAME in text
    if failed_tenant:
        assert EVIL_TENANT_ERROR in text


def test_message_parts_and_escaping(tmp_path: Path) -> None:
    findings = [*FIRST, DEE, finding(FABRIKAM, "no-mailbox", "eve", Severity.LOW)]
    result = run_result(findings, fabrikam=TenantStatus.FAILED)
    files = write_reports(result, tmp_path, stem="etd-audit-x")
    message = build_message(result, files, EmailConfig(to=("secops@contoso.com",), sender="audit@contoso.com"))
    assert message.get_body(("plain",)) is not None
    html_part = message.get_body(("html",))
    assert_inert(html_part.get_content(), failed_tenant=True)
    attachments = list(message.iter_attachments())
    assert [a.get_content_type() for a in attachments] == [XLSX_TYPE]
    assert attachments[0].get_filename() == files.xlsx.name
    text = message.get_body(("plain",)).get_content()
    assert "contoso" in text and "fabrikam" in text and "failed" in text


# ---------------------------------------------------------------------------------------------------
# SMTP against a real aiosmtpd server


@dataclass
class Inbox:
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = auth_data.login == b"audit-bot" and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("pki")
    material = make_server_pki("127.0.0.1")
    (folder / "ca.pem").write_text(material.ca_pem)
    (folder / "server.pem").write_text(material.cert_pem)
    (folder / "server.key").write_text(material.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return folder / "ca.pem", context


@contextlib.contextmanager
def running_smtp(*, login: bool = False, **options) -> Iterator[tuple[Inbox, int]]:
    """An SMTP server on 127.0.0.1 with aiosmtpd's options (TLS...); with login, it requires AUTH."""
    inbox = Inbox()
    port = free_port()
    if login:
        options.update(authenticator=inbox.authenticate, auth_required=True)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def smtp_email(port: int, **settings) -> EmailConfig:
    return EmailConfig(
        to=("secops@contoso.com",), sender="audit@contoso.com", smtp_host="127.0.0.1", smtp_port=port, **settings
    )


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    """A plain SMTP server on 127.0.0.1 (a local relay)."""
    with running_smtp() as server:
        yield server


def received(inbox: Inbox) -> EmailMessage:
    assert len(inbox.messages) == 1
    return email.message_from_bytes(inbox.messages[0][2], policy=email.policy.default)


def test_smtp_plain_relay_delivers_body_and_workbook(reports, smtp_server) -> None:
    inbox, port = smtp_server
    result, files = reports
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com", "soc@contoso.com"),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
        )
    )
    assert send_report(result, files, cfg) is True
    mail_from, rcpts, _ = inbox.messages[0]
    assert (mail_from, rcpts) == ("audit@contoso.com", ["secops@contoso.com", "soc@contoso.com"])
    message = received(inbox)
    assert message["Subject"] == subject_line(result, files)
    assert_inert(message.get_body(("html",)).get_content())
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == XLSX_TYPE
    content = attachment.get_content()
    assert content == files.xlsx.read_bytes()
    assert "dee@contoso.com" in workbook_text(content)


def test_starttls_with_login_from_the_environment(reports, pki, monkeypatch, caplog) -> None:
    ca, server_context = pki
    monkeypatch.setenv("ETD_SMTP_USER", "audit-bot")
    monkeypatch.setenv("ETD_SMTP_PASSWORD", SMTP_PASSWORD)
    result, files = reports
    with running_smtp(tls_context=server_context, require_starttls=True, login=True) as (inbox, port):
        cfg = config(
            smtp_email(
                port, smtp_security="starttls", smtp_username_env="ETD_SMTP_USER", smtp_password_env="ETD_SMTP_PASSWORD"
            ),
            ca_bundle=ca,
        )
        with caplog.at_level(logging.DEBUG, logger="audit"):
            assert send_report(result, files, cfg) is True
    assert inbox.logins == ["audit-bot"]
    (attachment,) = list(received(inbox).iter_attachments())
    assert "dee@contoso.com" in workbook_text(attachment.get_content())
    assert SMTP_PASSWORD not in caplog.text


def test_starttls_refuses_an_untrusted_server(reports, pki) -> None:
    _, server_context = pki
    result, files = reports
    with running_smtp(tls_context=server_context, require_starttls=True) as (inbox, port):
        cfg = config(smtp_email(port, smtp_security="starttls"))  # no ca_bundle: CA not trusted
        with pytest.raises(MailError, match=r"SSLCertVerificationError|certificate verify failed"):
            send_report(result, files, cfg)
    assert inbox.messages == []


def test_implicit_tls(reports, pki) -> None:
    ca, server_context = pki
    result, files = reports
    with running_smtp(ssl_context=server_context) as (inbox, port):
        assert send_report(result, files, config(smtp_email(port, smtp_security="tls"), ca_bundle=ca)) is True
    assert received(inbox)["Subject"] == subject_line(result, files)


def test_wrong_password_is_a_mail_error_without_the_password(reports, pki, monkeypatch) -> None:
    ca, server_context = pki
    monkeypatch.setenv("ETD_SMTP_USER", "audit-bot")
    monkeypatch.setenv("ETD_SMTP_PASSWORD", "not-the-" + SMTP_PASSWORD)
    result, files = reports
    with running_smtp(tls_context=server_context, require_starttls=True, login=True) as (inbox, port):
        cfg = config(
            smtp_email(port, smtp_username_env="ETD_SMTP_USER", smtp_password_env="ETD_SMTP_PASSWORD"), ca_bundle=ca
        )
        with pytest.raises(MailError) as caught:
            send_report(result, files, cfg)
    assert "refused the sign-in" in str(caught.value) and "ETD_SMTP_PASSWORD" in str(caught.value)
    assert SMTP_PASSWORD not in str(caught.value)
    assert inbox.messages == []


def test_refused_connection_is_a_mail_error(reports, monkeypatch) -> None:
    monkeypatch.setenv("ETD_SMTP_USER", "audit-bot")
    monkeypatch.setenv("ETD_SMTP_PASSWORD", SMTP_PASSWORD)
    port = free_port()  # nothing listens there
    result, files = reports
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com",),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_username_env="ETD_SMTP_USER",
            smtp_password_env="ETD_SMTP_PASSWORD",
        )
    )
    with pytest.raises(MailError) as caught:
        send_report(result, files, cfg, timeout=10)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message and "ConnectionRefusedError" in message
    assert SMTP_PASSWORD not in message
    assert files.xlsx.exists()  # the report is still there


def test_unset_password_variable_is_a_mail_error(reports, monkeypatch) -> None:
    monkeypatch.setenv("ETD_SMTP_USER", "audit-bot")
    monkeypatch.delenv("ETD_SMTP_PASSWORD", raising=False)
    result, files = reports
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com",),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=free_port(),
            smtp_username_env="ETD_SMTP_USER",
            smtp_password_env="ETD_SMTP_PASSWORD",
        )
    )
    with pytest.raises(MailError, match="environment variable ETD_SMTP_PASSWORD, which is not set"):
        send_report(result, files, cfg)


# ---------------------------------------------------------------------------------------------------
# only_on_change


def test_only_on_change_skips_an_unchanged_report(tmp_path: Path, smtp_server) -> None:
    inbox, port = smtp_server
    out = tmp_path / "reports"
    write_reports(run_result(FIRST), out, stem="etd-audit-first")
    same = run_result(FIRST, start=START + timedelta(days=7))
    files = write_reports(same, out, stem="etd-audit-second")
    assert not has_news(same, files.assessment)
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com",),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            only_on_change=True,
        )
    )
    assert send_report(same, files, cfg) is False
    assert inbox.messages == []

    # A tenant that now fails is news even when no finding changed.
    failing = run_result(FIRST, fabrikam=TenantStatus.FAILED, start=START + timedelta(days=14))
    files = write_reports(failing, out, stem="etd-audit-third")
    assert has_news(failing, files.assessment)
    assert send_report(failing, files, cfg) is True
    assert len(inbox.messages) == 1


def test_only_on_change_sends_new_findings(reports, smtp_server) -> None:
    inbox, port = smtp_server
    result, files = reports
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com",),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_security="none",
            only_on_change=True,
        )
    )
    assert send_report(result, files, cfg) is True
    assert len(inbox.messages) == 1


# ---------------------------------------------------------------------------------------------------
# Webhook


class Hook(BaseHTTPRequestHandler):
    posts: list[tuple[str, dict]] = []
    answer = 200

    def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append((self.path, json.loads(body)))
        self.send_response(type(self).answer)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook(pki) -> Iterator[tuple[type[Hook], str]]:
    """An HTTPS webhook on 127.0.0.1, with a certificate from the `pki` fixture's CA."""
    handler = type("TestHook", (Hook,), {"posts": [], "answer": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = pki[1].wrap_socket(server.socket, server_side=True)
    with serving(server) as host:
        yield handler, f"https://{host}/hooks/abc-secret-token"


def test_webhook_posts_the_summary_line(webhook, pki, monkeypatch) -> None:
    hook, url = webhook
    monkeypatch.setenv("ETD_WEBHOOK", url)
    assert post_webhook("ETD_WEBHOOK", "etd-audit: contoso — 1 finding", verify=str(pki[0])) is True
    assert hook.posts == [("/hooks/abc-secret-token", {"text": "etd-audit: contoso — 1 finding"})]


def test_webhook_failure_is_logged_without_the_url(webhook, pki, monkeypatch, caplog) -> None:
    hook, url = webhook
    hook.answer = 500
    monkeypatch.setenv("ETD_WEBHOOK", url)
    with caplog.at_level(logging.INFO, logger="audit"):
        assert post_webhook("ETD_WEBHOOK", "hello", verify=str(pki[0])) is False
    assert "answered 500" in caplog.text and "ETD_WEBHOOK" in caplog.text
    assert "abc-secret-token" not in caplog.text


def test_failed_mail_still_posts_the_webhook_then_raises(reports, webhook, pki, monkeypatch) -> None:
    hook, url = webhook
    monkeypatch.setenv("ETD_WEBHOOK", url)
    result, files = reports
    cfg = config(
        EmailConfig(
            to=("secops@contoso.com",),
            sender="audit@contoso.com",
            smtp_host="127.0.0.1",
            smtp_port=free_port(),
            smtp_security="none",
            webhook_url_env="ETD_WEBHOOK",
        ),
        ca_bundle=pki[0],
    )
    with pytest.raises(MailError):
        send_report(result, files, cfg, timeout=10)
    assert [body["text"] for _, body in hook.posts] == [subject_line(result, files)]


def test_webhook_section_alone_posts_the_summary(reports, webhook, pki, monkeypatch) -> None:
    hook, url = webhook
    monkeypatch.setenv("ETD_WEBHOOK", url)
    result, files = reports
    cfg = replace(config(None, ca_bundle=pki[0]), webhook=WebhookConfig(url_env="ETD_WEBHOOK"))
    assert configured(cfg) == ["webhook"]
    assert send_report(result, files, cfg) is True
    assert [body["text"] for _, body in hook.posts] == [subject_line(result, files)]


def test_webhook_only_on_change_skips_an_unchanged_report(tmp_path: Path, webhook, pki, monkeypatch) -> None:
    hook, url = webhook
    monkeypatch.setenv("ETD_WEBHOOK", url)
    out = tmp_path / "reports"
    write_reports(run_result(FIRST), out, stem="etd-audit-first")
    same = run_result(FIRST, start=START + timedelta(days=7))
    files = write_reports(same, out, stem="etd-audit-second")
    cfg = replace(config(None, ca_bundle=pki[0]), webhook=WebhookConfig(url_env="ETD_WEBHOOK", only_on_change=True))
    assert send_report(same, files, cfg) is False
    assert hook.posts == []


def test_every_channel_has_the_same_interface() -> None:
    for name, channel in CHANNELS.items():
        assert channel.NAME == name
        assert all(callable(getattr(channel, f)) for f in ("configured", "only_on_change", "deliver"))


def test_a_new_channel_is_one_table_entry(reports, monkeypatch) -> None:
    """A throw-away channel added to the table alone is configured, delivered to, and its failure raised."""
    result, files = reports
    handed: list[Delivery] = []

    def deliver(delivery: Delivery) -> None:
        handed.append(delivery)
        raise MailError("the pager did not answer")

    pager = SimpleNamespace(
        NAME="pager", configured=lambda cfg: True, only_on_change=lambda cfg: False, deliver=deliver
    )
    monkeypatch.setitem(CHANNELS, "pager", pager)
    cfg = config(None)
    assert configured(cfg) == ["pager"]
    with pytest.raises(MailError, match="pager did not answer"):
        send_report(result, files, cfg, environ={})
    assert [(d.result, d.files, d.config) for d in handed] == [(result, files, cfg)]


def _config_file(folder: Path, email: str, webhook: str = "") -> Path:
    path = folder / "etd-audit.toml"
    path.write_text(
        "[[tenants]]\n"
        'name = "contoso"\n'
        f'tenant_id = "{CONTOSO}"\n'
        'client_id = "22222222-2222-2222-2222-222222222222"\n'
        'client_secret_env = "ETD_TEST_SECRET"\n'
        "[remediation_app]\n"
        'app_id = "55555555-5555-5555-5555-555555555555"\n'
        "[email]\n"
        'to = ["secops@contoso.com"]\n'
        'sender = "audit@contoso.com"\n'
        'smtp_host = "127.0.0.1"\n'
        f"{email}\n{webhook}",
        encoding="utf-8",
    )
    return path


def test_webhook_section_and_the_old_email_key_both_load(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv("ETD_TEST_SECRET", "not-a-real-secret")
    monkeypatch.setenv("ETD_WEBHOOK", "https://chat.contoso.com/hooks/secret-path-123")
    new = load_config(_config_file(tmp_path, "", '[webhook]\nurl_env = "ETD_WEBHOOK"\nonly_on_change = true\n'))
    assert new.webhook == WebhookConfig(url_env="ETD_WEBHOOK", only_on_change=True)
    assert configured(new) == ["smtp", "webhook"]

    old = _config_file(tmp_path, 'only_on_change = true\nwebhook_url_env = "ETD_WEBHOOK"')
    with caplog.at_level(logging.WARNING, logger="audit"):
        first, second = load_config(old), load_config(old)
    # The old key still works, inheriting the mail's only_on_change as it did, and is flagged once.
    assert first.webhook == second.webhook == WebhookConfig(url_env="ETD_WEBHOOK", only_on_change=True)
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(warnings) == 1 and "email.webhook_url_env" in warnings[0] and "[webhook]" in warnings[0]
    assert "secret-path-123" not in caplog.text


def test_webhook_named_in_both_places_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ETD_TEST_SECRET", "not-a-real-secret")
    monkeypatch.setenv("ETD_WEBHOOK", "https://chat.contoso.com/hooks/secret-path-123")
    path = _config_file(tmp_path, 'webhook_url_env = "ETD_WEBHOOK"', '[webhook]\nurl_env = "ETD_WEBHOOK"\n')
    with pytest.raises(ConfigError, match=r"email\.webhook_url_env: is set as well as the \[webhook\] section"):
        load_config(path)


# ---------------------------------------------------------------------------------------------------
# Graph sendMail against the simulator


def mailbox_owner(spec: dict) -> str:
    return next(
        u["userPrincipalName"]
        for u in spec["users"]
        if (u.get("mailbox") or {}).get("location", "cloud") == "cloud" and u.get("mailbox")
    )


@pytest.fixture
def graph_setup(sim_factory, make_config, tmp_path: Path):
    """Start a simulator for one tenant whose client has `roles`; a config that mails through it."""

    def start(roles_change: Callable[[list[str]], list[str]] = lambda roles: roles):
        spec = generate_tenant("contoso", 5, seed=3)
        spec["clients"][0]["roles"] = roles_change(list(spec["clients"][0]["roles"]))
        sim = sim_factory([spec])
        cfg = make_config(sim, [spec], tmp_path)
        mail = EmailConfig(
            to=("secops@contoso.com",),
            transport="graph",
            sender=mailbox_owner(spec),
            sender_tenant=spec["name"],
        )
        return sim, replace(cfg, email=mail)

    return start


def test_graph_sendmail_through_the_simulator(reports, graph_setup) -> None:
    sim, cfg = graph_setup()
    result, files = reports
    assert send_report(result, files, cfg) is True
    (sent,) = sim.sent_mail
    assert sent["user"].lower() == cfg.email.sender.lower()
    message = sent["message"]
    assert message["subject"] == subject_line(result, files)
    assert message["toRecipients"] == [{"emailAddress": {"address": "secops@contoso.com"}}]
    assert message["body"]["contentType"].lower() == "html"
    assert_inert(message["body"]["content"])
    (attachment,) = message["attachments"]
    assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert attachment["contentType"] == XLSX_TYPE
    assert attachment["name"] == files.xlsx.name
    assert "dee@contoso.com" in workbook_text(base64.b64decode(attachment["contentBytes"]))


def test_graph_without_mail_send_is_a_clear_mail_error(reports, graph_setup) -> None:
    sim, cfg = graph_setup(lambda roles: [r for r in roles if r != "Mail.Send"])
    result, files = reports
    with pytest.raises(MailError, match="Grant the sending app Mail.Send"):
        send_report(result, files, cfg)
    assert sim.sent_mail == []


def big_workbook(path: Path) -> Path:
    """A real workbook over 3 MB (incompressible cell text), with a marker cell."""
    rng = random.Random(5)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet["A1"] = "marker-cell"
    for row in range(2, 2600):
        sheet.cell(row=row, column=1, value=base64.b64encode(rng.randbytes(1500)).decode())
    book.save(path)
    assert path.stat().st_size > 3 * 1024 * 1024
    return path


@pytest.fixture(scope="module")
def big_xlsx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return big_workbook(tmp_path_factory.mktemp("big") / "etd-audit-big.xlsx")


def test_graph_large_workbook_goes_through_an_upload_session(reports, graph_setup, big_xlsx: Path) -> None:
    sim, cfg = graph_setup(lambda roles: [*roles, "Mail.ReadWrite"])
    result, files = reports
    files = replace(files, paths={**files.paths, "xlsx": big_xlsx})
    assert send_report(result, files, cfg) is True
    (sent,) = sim.sent_mail
    assert sent["message"]["subject"] == subject_line(result, files)
    (attachment,) = sent["message"]["attachments"]
    content = base64.b64decode(attachment["contentBytes"])
    assert content == big_xlsx.read_bytes()
    assert "marker-cell" in workbook_text(content)
    routes = sim.counters.by_route
    assert routes["sendMail"] == 0 and routes["attachments.uploadSession"] == 1
    assert routes["attachments.upload"] == -(-big_xlsx.stat().st_size // UPLOAD_CHUNK)  # one PUT per chunk
    assert routes["messages.send"] == 1


def test_graph_large_workbook_without_mail_readwrite(reports, graph_setup, big_xlsx: Path) -> None:
    sim, cfg = graph_setup(lambda roles: [r for r in roles if r != "Mail.ReadWrite"])
    result, files = reports
    with pytest.raises(MailError, match="Mail.ReadWrite"):
        send_report(result, replace(files, paths={**files.paths, "xlsx": big_xlsx}), cfg)
    assert sim.sent_mail == []
