"""Credentials stay where they belong: SMTP passwords, the bearer token, webhook and download URLs, proxies.

Each test talks to a real local server (SMTP, HTTPS, a proxy, the Graph simulator) or loads a real
config file, and fails if a credential would travel in clear, to a foreign host, or into a message.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from audit import logs
from audit.auth import AuthError, TokenProvider, graph_base
from audit.collect import USAGE_REPORT
from audit.config import ConfigError, EmailConfig, load_config
from audit.delivery import MailError, post_webhook, send_smtp
from audit.graph import GraphClient, GraphError, same_origin
from audit.session import connect, proxy_url
from audit.simulator import generate_tenant
from audit.simulator.pki import make_server_pki
from tests.local_http import serving as running
from tests.simconfig import secrets_env, sim_toml
from tests.test_config import SECRET_ENV, base_config, write


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SECRET_ENV, "not-a-real-secret")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "fabrikam.pem").write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    return tmp_path


def load_with(folder: Path, section: str, **values) -> object:
    data = copy.deepcopy(base_config())
    data[section].update(values)
    return load_config(write(folder, data))


# ---- 5: no SMTP password over plain TCP -----------------------------------------------------------


@pytest.fixture
def smtp_credentials(monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setenv("ETD_SMTP_USER", "audit@contoso.com")
    monkeypatch.setenv("ETD_SMTP_PASSWORD", "smtp-pass-123456")
    return {"smtp_username_env": "ETD_SMTP_USER", "smtp_password_env": "ETD_SMTP_PASSWORD"}


def test_smtp_security_none_with_a_password_to_a_remote_host_is_refused(folder: Path, smtp_credentials) -> None:
    with pytest.raises(ConfigError) as caught:
        load_with(folder, "email", smtp_security="none", **smtp_credentials)
    text = str(caught.value)
    assert text.startswith(f"{folder / 'audit.toml'}: email.smtp_security: 'none' would send the SMTP password")
    assert "starttls" in text and "smtp-pass-123456" not in text


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_smtp_security_none_with_a_password_is_accepted_to_a_local_relay(
    folder: Path, smtp_credentials, host: str
) -> None:
    config = load_with(folder, "email", smtp_security="none", smtp_host=host, **smtp_credentials)
    assert config.email.smtp_security == "none" and config.email.smtp_password_env == "ETD_SMTP_PASSWORD"


def test_smtp_security_none_without_credentials_is_accepted(folder: Path) -> None:
    assert load_with(folder, "email", smtp_security="none").email.smtp_security == "none"


def test_send_smtp_refuses_a_clear_password_even_when_built_without_the_loader(smtp_credentials) -> None:
    email = EmailConfig(to=("secops@contoso.com",), sender="a@contoso.com", smtp_host="smtp.contoso.com")
    email = replace(email, smtp_security="none", **smtp_credentials)
    with pytest.raises(MailError, match="in clear"):  # raised before any connection is opened
        send_smtp(None, email)  # type: ignore[arg-type]


# ---- 7: the webhook URL is https only and redirects are not followed ------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ssl.SSLContext]:
    folder = tmp_path_factory.mktemp("tls")
    material = make_server_pki("127.0.0.1")
    (folder / "ca.pem").write_text(material.ca_pem)
    (folder / "server.pem").write_text(material.cert_pem)
    (folder / "server.key").write_text(material.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    return str(folder / "ca.pem"), context


class Recorder(BaseHTTPRequestHandler):
    """Answers every request as `answer` says and records (method, path, headers) of each."""

    seen: list[tuple[str, str, dict]]
    answer: tuple[int, dict[str, str], bytes]

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).seen.append((self.command, self.path, dict(self.headers)))
        status, headers, body = type(self).answer
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _any  # noqa: N815 - http.server's hook names

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(answer: tuple[int, dict[str, str], bytes], context: ssl.SSLContext | None = None) -> Iterator:
    handler = type("Handler", (Recorder,), {"seen": [], "answer": answer})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if context is not None else "http"
    with running(server) as host:
        yield handler, f"{scheme}://{host}"


def test_webhook_redirect_is_not_followed(tls, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    ca, context = tls
    with serving((200, {}, b""), context) as (elsewhere, elsewhere_url):
        redirect = (307, {"Location": f"{elsewhere_url}/collected"}, b"")
        with serving(redirect, context) as (hook, hook_url):
            monkeypatch.setenv("ETD_WEBHOOK", f"{hook_url}/hooks/secret-path-123")
            with caplog.at_level(logging.INFO, logger="audit"):
                assert post_webhook("ETD_WEBHOOK", "etd-audit: contoso — 1 finding", verify=ca) is False
    assert [(m, p) for m, p, _ in hook.seen] == [("POST", "/hooks/secret-path-123")]
    assert elsewhere.seen == []  # the summary never reached the redirect's target
    assert "answered 307, a redirect (not followed)" in caplog.text and "secret-path-123" not in caplog.text


def test_webhook_over_http_is_not_posted(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    with serving((200, {}, b"")) as (hook, url):
        monkeypatch.setenv("ETD_WEBHOOK", f"{url}/hooks/secret-path-123")
        with caplog.at_level(logging.INFO, logger="audit"):
            assert post_webhook("ETD_WEBHOOK", "hello") is False
    assert hook.seen == [] and "not https://" in caplog.text and "secret-path-123" not in caplog.text


def test_webhook_over_http_is_a_config_error(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETD_WEBHOOK", "http://chat.contoso.com/hooks/secret-path-123")
    with pytest.raises(ConfigError) as caught:
        load_with(folder, "email", webhook_url_env="ETD_WEBHOOK")
    text = str(caught.value)
    assert text.startswith(f"{folder / 'audit.toml'}: email.webhook_url_env: the URL in environment variable")
    assert "not an https:// URL" in text and "secret-path-123" not in text
    monkeypatch.setenv("ETD_WEBHOOK", "https://chat.contoso.com/hooks/secret-path-123")
    assert load_with(folder, "email", webhook_url_env="ETD_WEBHOOK").email.webhook_url_env == "ETD_WEBHOOK"


def test_webhook_section_over_http_is_a_config_error(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETD_WEBHOOK", "http://chat.contoso.com/hooks/secret-path-123")
    data = copy.deepcopy(base_config())
    data["webhook"] = {"url_env": "ETD_WEBHOOK"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, data))
    text = str(caught.value)
    assert text.startswith(f"{folder / 'audit.toml'}: webhook.url_env: the URL in environment variable")
    assert "not an https:// URL" in text and "secret-path-123" not in text


# ---- 6: a next link to another host is not followed with the token ---------------------------------


def graph_client(sim, make_config, tenant: dict, tmp_path: Path) -> tuple[GraphClient, TokenProvider]:
    config = make_config(sim, [tenant], tmp_path)
    provider = TokenProvider(config.tenants[0], verify=str(sim.ca_path))
    client = GraphClient(graph_base(config.tenants[0]), provider, verify=str(sim.ca_path), sleep=lambda s: None)
    return client, provider


def test_next_link_to_a_foreign_host_is_refused_without_sending_the_token(
    sim_factory, make_config, small_tenant: dict, tmp_path: Path
) -> None:
    with serving((200, {"Content-Type": "application/json"}, b'{"value": []}')) as (foreign, foreign_url):
        sim = sim_factory([small_tenant], faults=f"next_link_base={foreign_url}")
        client, provider = graph_client(sim, make_config, small_tenant, tmp_path)
        pages = client.iter_pages("/users", params={"$select": "id", "$top": 10})
        assert len(next(pages)) == 10  # the first page comes from Graph
        with pytest.raises(GraphError) as caught:
            next(pages)
    assert foreign.seen == []  # nothing at all went to the other host, so neither did the token
    assert caught.value.code == "UntrustedNextLink"
    assert foreign_url in str(caught.value) and "skiptoken" not in str(caught.value)


def test_next_link_on_graph_is_followed(sim_factory, make_config, small_tenant: dict, tmp_path: Path) -> None:
    sim = sim_factory([small_tenant])
    client, _ = graph_client(sim, make_config, small_tenant, tmp_path)
    pages = list(client.iter_pages("/users", params={"$select": "id", "$top": 10}))
    assert sum(len(p) for p in pages) == len(small_tenant["users"]) and len(pages) > 1


@pytest.mark.parametrize(
    ("url", "same"),
    [
        ("https://graph.microsoft.com/v1.0/users?$skiptoken=x", True),
        ("https://GRAPH.microsoft.com:443/v1.0/users", True),
        ("http://graph.microsoft.com/v1.0/users", False),
        ("https://graph.microsoft.com:8443/v1.0/users", False),
        ("https://graph.microsoft.com.example.net/v1.0/users", False),
        ("https://evil.example/https://graph.microsoft.com/v1.0", False),
        ("https://graph.microsoft.com@evil.example/v1.0/users", False),
        ("/v1.0/users", False),
    ],
)
def test_same_origin(url: str, same: bool) -> None:
    assert same_origin(url, "https://graph.microsoft.com/v1.0") is same


# ---- 8: the usage report's pre-authenticated download URL stays out of errors and logs --------------


def test_unreachable_report_download_names_only_host_and_error(
    sim_factory, make_config, small_tenant: dict, tmp_path: Path, caplog
) -> None:
    with serving((200, {}, b"")) as (_, url):
        closed = url.replace("http://", "https://")  # a port that is shut once the block ends
    sim = sim_factory([small_tenant], faults=f"download_base={closed}")
    client, _ = graph_client(sim, make_config, small_tenant, tmp_path)
    with caplog.at_level(logging.DEBUG, logger="audit"), pytest.raises(GraphError) as caught:
        client.get_report(USAGE_REPORT)
    (token,) = sim.app.downloads  # the pre-authenticated part of the download URL
    host = closed.removeprefix("https://")
    assert caught.value.code == "ConnectionError"
    assert str(caught.value).startswith(f"0 ConnectionError: ConnectionError downloading from {host}")
    assert token not in str(caught.value) and "reports-download" not in str(caught.value)
    assert token not in caplog.text and "reports-download" not in caplog.text and host in caplog.text


# ---- 10: the proxy password comes from the environment, and proxy URLs with credentials are not echoed


def test_proxy_password_comes_from_its_variable(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETD_PROXY_PASSWORD", "p@ss:w/rd%1-long")
    config = load_with(
        folder, "audit", proxy="http://audit@proxy.contoso.com:8080", proxy_password_env="ETD_PROXY_PASSWORD"
    )
    assert config.audit.proxy == "http://audit@proxy.contoso.com:8080"  # no password kept in the config
    url = proxy_url(config.audit)
    assert url == "http://audit:p%40ss%3Aw%2Frd%251-long@proxy.contoso.com:8080"
    assert "p@ss:w/rd%1-long" not in logs.redact(url) and "p%40ss" not in logs.redact(url)
    monkeypatch.delenv("ETD_PROXY_PASSWORD")
    with pytest.raises(ConfigError, match="ETD_PROXY_PASSWORD is not set"):
        proxy_url(config.audit)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"proxy_password_env": "ETD_PROXY_PASSWORD"},
            "audit.proxy_password_env: is set but audit.proxy is not",
        ),
        (
            {"proxy": "http://proxy.contoso.com:8080", "proxy_password_env": "ETD_PROXY_PASSWORD"},
            "audit.proxy: 'http://proxy.contoso.com:8080' names no user",
        ),
        (
            {"proxy": "http://audit:hunter2pw@proxy.contoso.com:8080", "proxy_password_env": "ETD_PROXY_PASSWORD"},
            "audit.proxy: the URL carries a password and proxy_password_env is set as well",
        ),
        (
            {"proxy": "ftp://audit:hunter2pw@proxy.contoso.com:8080"},
            "audit.proxy: 'ftp://***@proxy.contoso.com:8080' is not a http or https or socks5 or socks5h URL",
        ),
        ({"proxy": "audit:hunter2pw@proxy.contoso.com:8080"}, "audit.proxy: '***@proxy.contoso.com:8080' is not"),
    ],
    ids=["without-proxy", "without-user", "password-twice", "bad-scheme", "no-scheme"],
)
def test_bad_proxy_settings(folder: Path, monkeypatch: pytest.MonkeyPatch, values: dict, message: str) -> None:
    monkeypatch.setenv("ETD_PROXY_PASSWORD", "from-the-environment")
    with pytest.raises(ConfigError) as caught:
        load_with(folder, "audit", **values)
    text = str(caught.value)
    assert text.startswith(f"{folder / 'audit.toml'}: {message}"), text
    assert "hunter2pw" not in text and "from-the-environment" not in text


class ProxyRecorder(BaseHTTPRequestHandler):
    """A proxy that records each CONNECT's headers and refuses it (407)."""

    seen: list[dict]

    def do_CONNECT(self) -> None:  # noqa: N802 - http.server's hook name
        type(self).seen.append(dict(self.headers))
        self.send_response(407)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_sign_in_goes_through_the_proxy_with_the_password_from_the_environment(
    sim_factory, make_config, small_tenant: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    password = "proxy-p@ss/word-1"
    monkeypatch.setenv("ETD_PROXY_PASSWORD", password)
    handler = type("Proxy", (ProxyRecorder,), {"seen": []})
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        sim = sim_factory([small_tenant])
        config = make_config(
            sim,
            [small_tenant],
            tmp_path,
            proxy=f"http://audit@127.0.0.1:{proxy.server_address[1]}",
            proxy_password_env="ETD_PROXY_PASSWORD",
        )
        with pytest.raises(AuthError) as caught:
            connect(config.tenants[0], config.audit)
    finally:
        proxy.shutdown()
        proxy.server_close()
    expected = "Basic " + base64.b64encode(f"audit:{password}".encode()).decode()
    assert handler.seen and all(h.get("Proxy-Authorization") == expected for h in handler.seen)
    assert password not in str(caught.value) and "p%40ss" not in str(caught.value)


# ---- 6 through the real command ------------------------------------------------------------------


def test_a_run_given_a_foreign_next_link_fails_the_tenant_without_sending_the_token(
    sim_factory, tmp_path: Path
) -> None:
    from tests.test_json_logs import etd_audit, json_lines

    tenant = generate_tenant("contoso", 1100, seed=4, scenario="healthy")  # more than one 999-user page
    config = tmp_path / "etd-audit.toml"
    with serving((200, {"Content-Type": "application/json"}, b'{"value": []}')) as (foreign, foreign_url):
        sim = sim_factory([tenant], faults=f"next_link_base={foreign_url}")
        config.write_text(sim_toml(sim, str(tmp_path / "reports")))
        done = etd_audit("--log-format", "json", "run", "--config", str(config), "--no-email", env=secrets_env(sim))
    assert foreign.seen == []
    assert done.returncode == 3  # the tenant could not be read: a partial run, and the report says why
    failed = [r for r in json_lines(done.stderr) if r.get("tenant") == "contoso" and r["level"] == "error"]
    assert failed and "UntrustedNextLink" in failed[0]["message"] and foreign_url in failed[0]["message"]
