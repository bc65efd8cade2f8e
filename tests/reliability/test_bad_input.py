"""Bad configs and files, through the real command: each row is what the user did and what they read.

Every row runs `etd-audit` (in-process `main`) against the simulator and checks the exit code and a
fragment of the exact text printed (stdout and stderr together: a tenant that cannot sign in is
reported on the tenant line, the rest on stderr). Secrets are never echoed back.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.cli import main
from audit.simulator import Simulator, generate_tenant
from tests.simconfig import secrets_env, sim_toml
from tests.test_auth import make_cert

LITERAL_SECRET = "Abc~123.LiteralSecret"


@dataclass
class Case:
    sim: Simulator
    spec: dict
    folder: Path
    monkeypatch: pytest.MonkeyPatch
    text: str = ""

    def config(self, edit: Callable[[str], str] = lambda t: t) -> Path:
        path = self.folder / "config.toml"
        path.write_text(edit(self.text))
        return path

    def file(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


def in_tenant(line: str) -> Callable[[str], str]:
    return lambda t: t.replace("[remediation_app]", f"{line}\n\n[remediation_app]", 1)


def in_audit(line: str) -> Callable[[str], str]:
    return lambda t: t.replace("[audit]\n", f"[audit]\n{line}\n", 1)


def drop_line(key: str) -> Callable[[str], str]:
    return lambda t: re.sub(rf"^{key} = .*\n", "", t, count=1, flags=re.M)


def with_certificate(c: Case, pem: str | bytes, thumbprint: str) -> Path:
    cert = c.file("audit.pem", pem if isinstance(pem, bytes) else pem.encode())
    return c.config(
        lambda t: re.sub(
            r"^client_secret_env = .*$",
            f'certificate_path = "{cert}"\ncertificate_thumbprint = "{thumbprint}"',
            t,
            count=1,
            flags=re.M,
        )
    )


def run(config: Path, *extra: str) -> list[str]:
    return ["run", "--config", str(config), "--no-email", "--probe", "all", *extra]


def wrong_secret(c: Case) -> list[str]:
    c.monkeypatch.setenv(Simulator.secret_env_name("contoso"), "Wrong~Secret.Value-123")
    return run(c.config())


def unreadable_certificate(c: Case) -> list[str]:
    return run(with_certificate(c, b"\x30\x82\x04\xff\xfe\x00", c.spec["clients"][0]["thumbprint"]))


def mismatched_thumbprint(c: Case) -> list[str]:
    client = c.spec["clients"][0]
    return run(with_certificate(c, client["private_key_pem"] + client["certificate_pem"], "0" * 40))


def foreign_certificate(c: Case) -> list[str]:
    client = c.spec["clients"][0]
    other_cert, _, thumbprint = make_cert()
    return run(with_certificate(c, client["private_key_pem"] + other_cert, thumbprint))


def certificate_not_uploaded(c: Case) -> list[str]:
    cert_pem, key_pem, thumbprint = make_cert()
    return run(with_certificate(c, key_pem + cert_pem, thumbprint))


def unknown_tenant(c: Case) -> list[str]:
    return run(c.config(lambda t: t.replace(c.spec["tenant_id"], "0b0b0b0b-1111-4222-8333-444455556666")))


def out_dir_not_writable(c: Case) -> list[str]:
    blocker = c.file("not-a-folder", b"x")
    return run(c.config(lambda t: re.sub(r"^out_dir = .*$", f'out_dir = "{blocker}/reports"', t, flags=re.M)))


def recipients(data: bytes) -> Callable[[Case], list[str]]:
    return lambda c: run(c.config(), "--recipients", str(c.file("recipients.csv", data)))


def error_log(data: bytes) -> Callable[[Case], list[str]]:
    return lambda c: ["triage", "--config", str(c.config()), str(c.file("errors.csv", data))]


BINARY = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe"  # the start of an .xlsx, not a CSV

# (id, roles taken from the audit app, how the user gets there, exit code, what they read)
ROWS: list[tuple[str, tuple[str, ...], Callable[[Case], list[str]], int, str]] = [
    (
        "missing-key",
        (),
        lambda c: run(c.config(drop_line("client_id"))),
        2,
        "tenants[0]: required key 'client_id' is missing. Add client_id = ",
    ),
    (
        "unknown-key",
        (),
        lambda c: run(c.config(in_tenant('clound = "global"'))),
        2,
        "tenants[0].clound: unknown key 'clound'. Remove it or fix its spelling; did you mean 'cloud'?",
    ),
    (
        "mistyped-value",
        (),
        lambda c: run(c.config(in_audit('keep = "12"'))),
        2,
        "audit.keep: expected a whole number, got a string. Write it like keep = 12.",
    ),
    (
        "literal-secret",
        (),
        lambda c: run(c.config(in_tenant(f'client_secret = "{LITERAL_SECRET}"'))),
        2,
        "tenants[0].client_secret: secrets are not accepted in the config file. Put the secret in an environment "
        "variable and name that variable in client_secret_env",
    ),
    (
        "unset-secret-variable",
        (),
        lambda c: run(c.config(lambda t: t.replace("ETD_SIM_SECRET_CONTOSO", "ETD_TEST_UNSET_SECRET"))),
        2,
        "tenant 'contoso': environment variable ETD_TEST_UNSET_SECRET (client_secret_env) is not set. "
        "Set it to the app's client secret in the job's environment.",
    ),
    ("unreadable-certificate", (), unreadable_certificate, 2, "cannot be read (it is not a text PEM file)"),
    ("mismatched-thumbprint", (), mismatched_thumbprint, 2, "does not match the certificate in the file"),
    (
        "certificate-of-another-key",
        (),
        foreign_certificate,
        2,
        "the certificate in the file does not belong to its private key",
    ),
    ("certificate-not-uploaded", (), certificate_not_uploaded, 2, "sign-in failed with AADSTS700027"),
    (
        "wrong-secret",
        (),
        wrong_secret,
        2,
        "tenant 'contoso': sign-in failed with AADSTS7000215: Invalid client secret provided. The client secret is "
        "wrong: check the value in the environment variable ETD_SIM_SECRET_CONTOSO (it must be the secret's Value, "
        "not its Secret ID)",
    ),
    (
        "unknown-tenant",
        (),
        unknown_tenant,
        2,
        "sign-in failed with AADSTS90002: Tenant '0b0b0b0b-1111-4222-8333-444455556666' not found. Tenant not "
        "found: check tenant_id (0b0b0b0b-1111-4222-8333-444455556666) and that cloud (global) is where it lives",
    ),
    (
        "audit-lacks-User.Read.All",
        ("User.Read.All",),
        lambda c: run(c.config()),
        3,
        "partial  users       0  the audit app may not read users (Graph 403 Authorization_RequestDenied); grant "
        "it the application permission User.Read.All with admin consent",
    ),
    (
        "audit-lacks-MailboxSettings.Read",
        ("MailboxSettings.Read",),
        lambda c: run(c.config()),
        3,
        "not assessed: mailbox probe refused to the audit app (grant MailboxSettings.Read)",
    ),
    (
        "audit-lacks-Organization.Read.All",
        ("Organization.Read.All",),
        lambda c: ["readiness", "--config", str(c.config())],
        1,
        "FAIL  audit app holds Organization.Read.All                           missing: grant it to read verified "
        "domains and subscribed licenses",
    ),
    (
        "out-dir-not-writable",
        (),
        out_dir_not_writable,
        2,
        "audit.out_dir: cannot write reports to {folder}/not-a-folder/reports (Not a directory). Point out_dir (or "
        "--out) at a folder this user can create and write to.",
    ),
    (
        "bad-cron",
        (),
        lambda c: ["schedule", "--config", str(c.config(lambda t: t + '\n[schedule]\ncron = "0 6 * *"\n'))],
        2,
        "schedule.cron: '0 6 * *' is not a valid cron expression",
    ),
    (
        "recipients-empty",
        (),
        recipients(b""),
        2,
        "recipients.csv: the file is empty. It needs a header row and one row per address.",
    ),
    ("recipients-blank-lines", (), recipients(b"\r\n \r\n"), 2, "recipients.csv: the file is empty."),
    (
        "recipients-binary",
        (),
        recipients(BINARY),
        2,
        "recipients.csv: this is not a text CSV file (it contains binary data). Export the list as CSV (UTF-8).",
    ),
    (
        "recipients-no-address-column",
        (),
        recipients(b"Name,Department\nAnn,Sales\n"),
        2,
        "recipients.csv: no address column among 'Name', 'Department'. Name the column holding the mailbox "
        "addresses 'Address' (or 'Mailbox', 'Email', 'UPN').",
    ),
    (
        "recipients-header-only",
        (),
        recipients(b"address\n"),
        2,
        "recipients.csv: the 'address' column holds no addresses.",
    ),
    ("error-log-empty", (), error_log(b""), 2, "errors.csv: the file is empty."),
    (
        "error-log-binary",
        (),
        error_log(BINARY),
        2,
        "errors.csv: this is not a text CSV file (it contains binary data).",
    ),
    (
        "error-log-no-address-column",
        (),
        error_log(b"Name,Remediation Error\nAnn,Resource is Not Found\n"),
        2,
        "errors.csv: no address column among 'Name', 'Remediation Error'. Name the column holding the "
        "mailbox addresses 'Address' (or 'Mailbox', 'Email', 'UPN').",
    ),
    (
        "error-log-no-error-column",
        (),
        error_log(b"Mailbox,Note\nann@contoso.com,hello\n"),
        2,
        "errors.csv: no remediation error column among 'Mailbox', 'Note'. Name the column holding the error text "
        "'Remediation Error' (or 'Error').",
    ),
    (
        "error-log-runaway-quote",
        (),
        error_log(b'Mailbox,Error\n"' + b"x" * 140_000 + b"\n"),
        2,
        "errors.csv: cannot be read as CSV near line 2 (field larger than field limit (131072)). Export it again "
        "as CSV (UTF-8).",
    ),
]


@pytest.fixture(autouse=True)
def restore_logging():
    """main() points the log handler at this test's captured stderr; put the old handlers back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), logging.getLogger("audit").level
    yield
    root.handlers[:] = handlers
    logging.getLogger("audit").setLevel(level)


@pytest.mark.parametrize(("taken", "make", "code", "says"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_refused_with_a_clear_message(sim_factory, tmp_path, monkeypatch, capsys, taken, make, code, says):
    spec = generate_tenant("contoso", 12, seed=2)
    spec["clients"][0]["roles"] = [r for r in spec["clients"][0]["roles"] if r not in taken]
    sim = sim_factory([spec])
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    case = Case(sim, spec, tmp_path, monkeypatch, sim_toml(sim, str(tmp_path / "reports")))

    exit_code = main(make(case))

    out, err = capsys.readouterr()
    seen = " ".join((out + err).split())  # the words the user reads, whatever the line wrapping
    assert " ".join(says.format(folder=tmp_path).split()) in seen, seen
    assert exit_code == code, seen
    assert "Traceback" not in seen
    for secret in (LITERAL_SECRET, spec["clients"][0]["secret"], spec["clients"][0]["private_key_pem"][40:80]):
        assert secret not in seen
