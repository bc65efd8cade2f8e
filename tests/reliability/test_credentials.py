"""One tenant's missing or unusable credential fails that tenant only, through the real command.

The config is still checked as a whole when it is loaded (typos and literal secrets stop the run, see
test_bad_input.py); whether a secret variable is set, or a secret file or certificate exists, is only
known when that tenant signs in.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from audit.cli import main
from audit.simulator import Simulator, generate_tenant
from tests.simconfig import secrets_env, sim_toml


@pytest.fixture
def two_tenants(sim_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Simulator, Path]:
    sim = sim_factory([generate_tenant("contoso", 8, seed=3), generate_tenant("fabrikam", 8, seed=4)])
    for name, value in secrets_env(sim).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "config.toml"
    config.write_text(sim_toml(sim, str(tmp_path / "reports")))
    return sim, config


def run(config: Path, *extra: str) -> int:
    return main(["run", "--config", str(config), "--no-email", "--probe", "none", *extra])


def tenants_in_report(folder: Path) -> dict[str, dict]:
    (report,) = sorted(folder.glob("etd-audit-*.json"))
    return {t["name"]: t for t in json.loads(report.read_text())["tenants"]}


def test_an_unset_secret_variable_fails_only_its_tenant(two_tenants, tmp_path, monkeypatch, capsys) -> None:
    sim, config = two_tenants
    monkeypatch.delenv(Simulator.secret_env_name("contoso"))

    code = run(config)

    seen = " ".join(capsys.readouterr().out.split())
    assert code == 3, seen
    tenants = tenants_in_report(tmp_path / "reports")
    assert tenants["contoso"]["status"] == "failed"
    assert "environment variable ETD_SIM_SECRET_CONTOSO (client_secret_env) is not set" in tenants["contoso"]["error"]
    assert tenants["fabrikam"]["status"] == "ok"


def test_tenant_option_needs_only_that_tenants_secret(two_tenants, tmp_path, monkeypatch) -> None:
    sim, config = two_tenants
    monkeypatch.delenv(Simulator.secret_env_name("contoso"))

    code = run(config, "--tenant", "fabrikam")

    assert code in (0, 1)
    assert list(tenants_in_report(tmp_path / "reports")) == ["fabrikam"]


def test_secret_file_signs_in_and_a_missing_one_fails_its_tenant(two_tenants, tmp_path, monkeypatch) -> None:
    sim, config = two_tenants
    secret = tmp_path / "fabrikam-secret"
    secret.write_text(sim.tenant("fabrikam")["clients"][0]["secret"] + "\n")  # as a mounted secret: with a line end
    text = config.read_text()
    text = text.replace('client_secret_env = "ETD_SIM_SECRET_FABRIKAM"', f'client_secret_file = "{secret}"')
    text = text.replace('client_secret_env = "ETD_SIM_SECRET_CONTOSO"', f'client_secret_file = "{tmp_path}/none"')
    config.write_text(text)
    for name in secrets_env(sim):
        monkeypatch.delenv(name)

    code = run(config)

    assert code == 3
    tenants = tenants_in_report(tmp_path / "reports")
    assert tenants["fabrikam"]["status"] == "ok"
    assert tenants["contoso"]["status"] == "failed"
    assert f"client_secret_file {tmp_path}/none does not exist" in tenants["contoso"]["error"]


def test_a_missing_certificate_file_fails_only_its_tenant(two_tenants, tmp_path) -> None:
    sim, config = two_tenants
    thumbprint = "A" * 40
    config.write_text(
        re.sub(
            r'^client_secret_env = "ETD_SIM_SECRET_CONTOSO"$',
            f'certificate_path = "{tmp_path}/gone.pem"\ncertificate_thumbprint = "{thumbprint}"',
            config.read_text(),
            flags=re.M,
        )
    )

    code = run(config)

    assert code == 3
    tenants = tenants_in_report(tmp_path / "reports")
    assert "the file does not exist. Fix certificate_path" in tenants["contoso"]["error"]
    assert tenants["fabrikam"]["status"] == "ok"


def test_every_tenant_without_a_credential_is_still_exit_2_with_a_report(two_tenants, tmp_path, monkeypatch) -> None:
    sim, config = two_tenants
    for name in secrets_env(sim):
        monkeypatch.delenv(name)

    assert run(config) == 2  # no tenant could sign in: the job's setup is wrong, as before
    assert {t["status"] for t in tenants_in_report(tmp_path / "reports").values()} == {"failed"}


MAIL = """
[email]
to = ["secops@contoso.com"]
sender = "etd-audit@contoso.com"
smtp_host = "127.0.0.1"
smtp_username_env = "ETD_TEST_SMTP_USER_UNSET"
smtp_password_env = "ETD_TEST_SMTP_PASSWORD_UNSET"
"""


def test_commands_that_never_sign_in_or_mail_need_none_of_those_secrets(two_tenants, tmp_path, monkeypatch) -> None:
    sim, config = two_tenants
    config.write_text(config.read_text() + MAIL)
    monkeypatch.delenv("ETD_TEST_SMTP_PASSWORD_UNSET", raising=False)
    # A shard with --no-email: the tenants' secrets, no mail secret.
    assert run(config, "--out", str(tmp_path / "shard-0")) in (0, 1)
    # The merge: no tenant secret in its environment (the merge pod holds none); here it does not mail
    # either, so no mail secret is needed.
    for name in secrets_env(sim):
        monkeypatch.delenv(name)

    code = main(
        ["merge", str(tmp_path / "shard-0"), "--out", str(tmp_path / "merged"), "--config", str(config), "--no-email"]
    )

    assert code in (0, 1)
    assert {t["status"] for t in tenants_in_report(tmp_path / "merged").values()} == {"ok"}


def test_a_wrong_secret_in_a_file_names_the_file(two_tenants, tmp_path) -> None:
    sim, config = two_tenants
    secret = tmp_path / "contoso-secret"
    secret.write_text("Wrong~Secret.Value-123\n")
    config.write_text(
        config.read_text().replace('client_secret_env = "ETD_SIM_SECRET_CONTOSO"', f'client_secret_file = "{secret}"')
    )

    assert run(config) == 3
    error = tenants_in_report(tmp_path / "reports")["contoso"]["error"]
    assert "sign-in failed with AADSTS7000215: Invalid client secret provided." in error
    assert f"The client secret is wrong: check the value in the file {secret} (it must be" in error
    assert "Wrong~Secret" not in error


def test_a_secret_file_that_is_a_fifo_is_refused_without_blocking(two_tenants, tmp_path) -> None:
    sim, config = two_tenants
    fifo = tmp_path / "secret-pipe"
    os.mkfifo(fifo)
    config.write_text(
        config.read_text().replace('client_secret_env = "ETD_SIM_SECRET_CONTOSO"', f'client_secret_file = "{fifo}"')
    )

    assert run(config) == 3
    error = tenants_in_report(tmp_path / "reports")["contoso"]["error"]
    assert f"client_secret_file {fifo} cannot be read (not a regular file)" in error
