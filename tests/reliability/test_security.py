"""Nothing secret leaks; TLS is verified; reports are not world-readable; tenant data stays inert.

One real `etd-audit --verbose --log-format json run` (a subprocess) against the simulator, with a
recognisable client secret (tenant contoso), a certificate whose key signs client assertions (tenant
fabrikam), and the report mailed over STARTTLS with a recognisable SMTP password to a local aiosmtpd
server. Every output is searched: stdout, stderr, every file the run created (reports unzipped, and
anything under its working folder and HOME, where a token cache would go), and the mail received
(raw, and each part decoded). Searched for: the secrets, the private key, and any JWT at all (every
access token and client assertion is one), plus the ids of the tokens the simulator issued.

The config has no key for a certificate passphrase (an encrypted key is refused, see tests/test_auth.py),
so there is no passphrase to search for.
"""

from __future__ import annotations

import base64
import email
import email.policy
import io
import json
import os
import re
import socket
import ssl
import stat
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from openpyxl import load_workbook

from audit.simulator import generate_tenant
from audit.simulator.pki import make_server_pki
from tests.simconfig import sim_toml

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SECRET = "ETDTEST~ClientSecret.q7Rz4vLp9Wk2"
SMTP_USER = "audit-bot"
SMTP_PASSWORD = "ETDTEST-SmtpPassword-m3Xc8Tb"
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
EVIL_NAME = '=HYPERLINK("http://evil.example/","open") <img src=x onerror=alert(1)><script>x()</script>'


@dataclass
class Inbox:
    messages: list[bytes] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(envelope.original_content)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        if ok:
            self.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_tls(tmp_path):
    """A STARTTLS SMTP server requiring a login; yields (inbox, port, its CA certificate in PEM)."""
    material = make_server_pki("127.0.0.1")
    (tmp_path / "smtp.pem").write_text(material.cert_pem)
    (tmp_path / "smtp.key").write_text(material.key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "smtp.pem", tmp_path / "smtp.key")
    inbox, port = Inbox(), free_port()
    server = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_required=True,
    )
    server.start()
    try:
        yield inbox, port, material.ca_pem
    finally:
        server.stop()


def tenants() -> list[dict]:
    contoso = generate_tenant("contoso", 40, seed=3)
    contoso["clients"][0]["secret"] = CLIENT_SECRET
    for user in contoso["users"]:
        user["displayName"] = EVIL_NAME
    fabrikam = generate_tenant("fabrikam", 20, seed=3)
    return [contoso, fabrikam]


def mail_parts(raw: bytes) -> list[bytes]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = [part.get_payload(decode=True) or b"" for part in message.walk() if not part.is_multipart()]
    return [unzipped(part) for part in parts]


def unzipped(data: bytes) -> bytes:
    """The bytes, and for a zip (a workbook) every member decompressed after them."""
    if data.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data += b"".join(archive.read(name) for name in archive.namelist())
    return data


def files_under(*folders: Path) -> list[Path]:
    return [p for folder in folders for p in folder.rglob("*") if p.is_file()]


def test_verbose_json_run_leaks_no_secret_token_or_assertion(sim_factory, smtp_tls, tmp_path):
    inbox, smtp_port, smtp_ca = smtp_tls
    specs = tenants()
    sim = sim_factory(specs)
    work, home, out = tmp_path / "work", tmp_path / "home", tmp_path / "work" / "reports"
    work.mkdir()
    home.mkdir()
    fabrikam = specs[1]["clients"][0]
    key_file = tmp_path / "fabrikam-audit.pem"
    key_file.write_text(fabrikam["private_key_pem"] + fabrikam["certificate_pem"])
    key_file.chmod(0o600)
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(sim.ca_path.read_text() + smtp_ca)
    text = sim_toml(sim, str(out))
    text = text.replace(
        'client_secret_env = "ETD_SIM_SECRET_FABRIKAM"',
        f'certificate_path = "{key_file}"\ncertificate_thumbprint = "{fabrikam["thumbprint"]}"',
    )
    text = text.replace(f'ca_bundle = "{sim.ca_path}"', f'ca_bundle = "{bundle}"')
    text += (
        f'\n[email]\nto = ["secops@contoso.com"]\nsender = "audit@contoso.com"\nsmtp_host = "127.0.0.1"\n'
        f'smtp_port = {smtp_port}\nsmtp_security = "starttls"\nsmtp_username_env = "ETD_SMTP_USER"\n'
        'smtp_password_env = "ETD_SMTP_PASSWORD"\n'
    )
    config = work / "config.toml"
    config.write_text(text)
    assert "client_secret_env" in text and "certificate_path" in text  # one tenant of each kind
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETD_")}
    env.update(
        HOME=str(home),
        PYTHONPATH=str(ROOT),
        ETD_SIM_SECRET_CONTOSO=CLIENT_SECRET,
        ETD_SMTP_USER=SMTP_USER,
        ETD_SMTP_PASSWORD=SMTP_PASSWORD,
    )

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "--verbose",
            "--log-format",
            "json",
            "run",
            "--config",
            str(config),
            "--probe",
            "all",
            "--format",
            "xlsx,json,csv",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        timeout=300,
    )

    stderr = done.stderr.decode()
    assert done.returncode in (0, 1), stderr[-3000:]
    assert [json.loads(line)["level"] for line in stderr.splitlines() if line.strip()]  # JSON log lines
    assert '"level": "debug"' in stderr  # --verbose was on: request lines were logged
    counters = sim.counters.snapshot()
    assert counters["tokens_issued"] >= 2 and counters["by_route"]["token"] >= 2
    assert inbox.logins == [SMTP_USER] and len(inbox.messages) == 1  # mailed over STARTTLS with the login
    written = files_under(work, home)
    reports = [p for p in written if p.parent == out]
    assert {p.suffix for p in reports} == {".xlsx", ".json", ".csv"}

    outputs: dict[str, bytes] = {"stdout": done.stdout, "stderr": done.stderr, "mail": inbox.messages[0]}
    outputs.update({f"mail part {i}": part for i, part in enumerate(mail_parts(inbox.messages[0]))})
    outputs.update({str(p): unzipped(p.read_bytes()) for p in written if p != config})
    upn = specs[0]["users"][0]["userPrincipalName"].encode()
    assert upn in outputs[str(next(p for p in reports if p.suffix == ".xlsx"))]  # the search sees inside
    assert any(upn in part for name, part in outputs.items() if name.startswith("mail part"))
    token_ids = [uti.encode() for uti in sim.app.issued]
    assert token_ids
    secrets = {
        "client secret": CLIENT_SECRET.encode(),
        "client secret (base64)": base64.b64encode(CLIENT_SECRET.encode()),
        "SMTP password": SMTP_PASSWORD.encode(),
        "SMTP password (base64)": base64.b64encode(SMTP_PASSWORD.encode()),
        "private key": fabrikam["private_key_pem"].splitlines()[5].encode(),
    }
    for where, data in outputs.items():
        for what, secret in secrets.items():
            assert secret not in data, f"{what} found in {where}"
        assert not JWT.search(data), f"a JWT (access token or client assertion) found in {where}"
        assert not [t for t in token_ids if t in data], f"an issued token's id found in {where}"

    # Reports (and any other file the run wrote: there is no token cache on disk) are 0o640 or stricter.
    for path in written:
        if path != config:
            assert stat.S_IMODE(path.stat().st_mode) & 0o137 == 0, f"{path}: {oct(path.stat().st_mode)}"
    assert stat.S_IMODE(out.stat().st_mode) & 0o027 == 0

    # Tenant data cannot inject markup into the mail nor formulas into the workbook or CSV.
    html = next(
        p
        for p in email.message_from_bytes(inbox.messages[0], policy=email.policy.default).walk()
        if p.get_content_type() == "text/html"
    ).get_content()
    assert "<img" not in html and "<script" not in html
    book = load_workbook(next(p for p in reports if p.suffix == ".xlsx"))
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    names = [c for c in cells if isinstance(c.value, str) and "HYPERLINK" in c.value]
    assert names and all(c.data_type == "s" and c.value.startswith("'=") for c in names)
    csv_text = next(p for p in reports if p.suffix == ".csv").read_text(encoding="utf-8-sig")
    assert "HYPERLINK" in csv_text and not re.search(r'(^|,)"?=HYPERLINK', csv_text, re.M)


def test_the_command_refuses_an_untrusted_certificate_unless_ca_bundle_names_it(sim_factory, tmp_path):
    specs = tenants()[:1]
    sim = sim_factory(specs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETD_")}
    env.update(PYTHONPATH=str(ROOT), ETD_SIM_SECRET_CONTOSO=CLIENT_SECRET)
    if "REQUESTS_CA_BUNDLE" not in env:  # as on CI: the system bundle, which must not let the simulator in
        env["REQUESTS_CA_BUNDLE"] = ssl.get_default_verify_paths().cafile or ""
    trusted = sim_toml(sim, str(tmp_path / "reports"))
    untrusted = re.sub(r"^ca_bundle = .*\n", "", trusted, flags=re.M)
    results = {}
    for name, text in (("untrusted", untrusted), ("trusted", trusted)):
        config = tmp_path / f"{name}.toml"
        config.write_text(text)
        results[name] = subprocess.run(
            [sys.executable, "-m", "audit", "run", "--config", str(config), "--probe", "none", "--no-email"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    refused = results["untrusted"]
    assert refused.returncode == 2, refused.stderr
    assert (
        f"the sign-in service at {sim.url.removeprefix('https://')} presented a certificate this machine "
        "does not trust (certificate verify failed"
    ) in refused.stdout
    assert results["trusted"].returncode in (0, 1), results["trusted"].stderr
    assert "contoso              ok" in results["trusted"].stdout
