"""Signing in without a stored secret: workload identity federation and managed identity.

msal really signs in against the simulator: with the token file's content as the client assertion
(client_credential={"client_assertion": callable}, documented on msal's ConfidentialClientApplication,
https://learn.microsoft.com/en-us/python/api/msal/msal.application.confidentialclientapplication), and
through msal's ManagedIdentityClient, pointed at the simulator by IDENTITY_ENDPOINT / IDENTITY_HEADER as
App Service and Container Apps do (msal/managed_identity.py reads those two variables).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from audit.auth import AuthError, TokenProvider
from audit.cli import main
from audit.config import load_config
from audit.simulator import Simulator, generate_tenant
from tests.simconfig import secrets_env, sim_toml

SUBJECT = "system:serviceaccount:etd-audit:etd-audit"


def federated_spec(name: str, seed: int) -> dict:
    spec = generate_tenant(name, 8, seed=seed)
    spec["clients"][0]["federated_credentials"] = [{"subject": SUBJECT}]  # issuer: the simulator's own
    return spec


def use_federation(text: str, token_file: Path | str, *, tenant: str | None = None) -> str:
    line = "federated_token_file = true" if token_file == "env" else f'federated_token_file = "{token_file}"'
    env = Simulator.secret_env_name(tenant) if tenant else r"ETD_SIM_SECRET_\w+"
    return re.sub(rf'^client_secret_env = "{env}"$', line, text, flags=re.M)


def run(config: Path) -> int:
    return main(["run", "--config", str(config), "--no-email", "--probe", "none"])


def report_tenants(folder: Path) -> dict[str, dict]:
    (report,) = sorted(folder.glob("etd-audit-*.json"))
    return {t["name"]: t for t in json.loads(report.read_text())["tenants"]}


@pytest.fixture
def federated(sim_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    sim = sim_factory([federated_spec("contoso", 5), federated_spec("fabrikam", 6)])
    for name in secrets_env(sim):
        monkeypatch.delenv(name, raising=False)  # no stored secret anywhere
    token_file = tmp_path / "azure-identity-token"
    config = tmp_path / "config.toml"
    config.write_text(use_federation(sim_toml(sim, str(tmp_path / "reports")), token_file))
    return sim, config, token_file


def test_a_federated_token_file_signs_in_to_every_tenant(federated, tmp_path) -> None:
    sim, config, token_file = federated
    token_file.write_text(sim.federated_token())

    code = run(config)

    tenants = report_tenants(tmp_path / "reports")
    assert code in (0, 1), tenants
    assert {t["status"] for t in tenants.values()} == {"ok"}
    assert sim.counters.snapshot()["tokens_issued"] >= 2


def test_the_token_file_is_read_again_after_the_platform_rotates_it(federated) -> None:
    sim, config, token_file = federated
    tenant = load_config(config).tenants[0]
    provider = TokenProvider(tenant, verify=str(sim.ca_path))
    token_file.write_text(sim.federated_token(lifetime=2))
    provider.token()

    time.sleep(2.5)  # the first token file has expired; the platform wrote a new one in its place
    token_file.write_text(sim.federated_token())
    provider.invalidate()

    provider.token()  # signed in with the new file: a kept copy of the first would be refused as expired
    assert provider.token_requests == 2


def test_an_expired_token_file_fails_its_tenant_with_a_clear_message(federated, tmp_path) -> None:
    sim, config, token_file = federated
    token_file.write_text(sim.federated_token(issued_at=time.time() - 7200))

    assert run(config) == 2  # no tenant could sign in
    error = report_tenants(tmp_path / "reports")["contoso"]["error"]
    assert f"federated token file {token_file} holds a token that expired at" in error
    assert "the platform did not rotate it" in error


def test_a_token_for_another_audience_is_refused_with_what_to_mount(federated, tmp_path) -> None:
    sim, config, token_file = federated
    token_file.write_text(sim.federated_token(audience="api://not-the-token-exchange"))

    assert run(config) == 2
    error = report_tenants(tmp_path / "reports")["contoso"]["error"]
    assert "sign-in failed with AADSTS700212" in error
    assert "mount the projected service-account token with audience api://AzureADTokenExchange" in error


def test_a_token_of_another_service_account_is_refused(federated, tmp_path) -> None:
    sim, config, token_file = federated
    token_file.write_text(sim.federated_token(subject="system:serviceaccount:default:default"))

    assert run(config) == 2
    assert "AADSTS700213" in report_tenants(tmp_path / "reports")["contoso"]["error"]


def test_a_token_signed_by_an_unpublished_key_is_refused(federated, tmp_path) -> None:
    from audit.simulator.pki import new_key

    sim, config, token_file = federated
    token_file.write_text(sim.federated_token(key=new_key()))

    assert run(config) == 2
    assert "AADSTS700027" in report_tenants(tmp_path / "reports")["contoso"]["error"]


def test_the_platform_variables_name_the_token_file_and_sign_in_host(federated, tmp_path, monkeypatch) -> None:
    sim, config, token_file = federated
    token_file.write_text(sim.federated_token())
    text = config.read_text().replace(f'federated_token_file = "{token_file}"', "federated_token_file = true")
    config.write_text(re.sub(r"^authority_host = .*\n", "", text, flags=re.M))
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", sim.url + "/")

    assert run(config) in (0, 1)
    assert {t["status"] for t in report_tenants(tmp_path / "reports").values()} == {"ok"}


def test_a_different_platform_client_id_is_warned_about(federated, monkeypatch, caplog) -> None:
    sim, config, token_file = federated
    config.write_text(
        config.read_text().replace(f'federated_token_file = "{token_file}"', "federated_token_file = true")
    )
    monkeypatch.setenv("AZURE_CLIENT_ID", "99999999-9999-9999-9999-999999999999")
    tenant = load_config(config).tenants[0]

    TokenProvider(tenant, verify=str(sim.ca_path))

    other = "99999999-9999-9999-9999-999999999999"
    assert f"the pod's AZURE_CLIENT_ID is {other} but the tenant's client_id is {tenant.client_id}" in caplog.text


def test_true_without_the_platform_variable_says_what_is_missing(federated, tmp_path, monkeypatch) -> None:
    sim, config, token_file = federated
    config.write_text(
        config.read_text().replace(f'federated_token_file = "{token_file}"', "federated_token_file = true")
    )
    monkeypatch.delenv("AZURE_FEDERATED_TOKEN_FILE", raising=False)

    assert run(config) == 2
    assert "AZURE_FEDERATED_TOKEN_FILE is not set" in report_tenants(tmp_path / "reports")["fabrikam"]["error"]


# ---------------------------------------------------------------------------------------------------
# Managed identity


@pytest.fixture
def managed(sim_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    home = generate_tenant("contoso", 8, seed=7)
    home["clients"][0]["managed_identity"] = "system"
    other = generate_tenant("fabrikam", 8, seed=8)
    other["clients"][0]["managed_identity"] = "user"
    sim = sim_factory([home, other])
    for name in secrets_env(sim):
        monkeypatch.delenv(name, raising=False)
    for name, value in sim.managed_identity_env().items():
        monkeypatch.setenv(name, value)
    return sim, home, other


def managed_config(sim: Simulator, tmp_path: Path, identities: dict[str, str]) -> Path:
    text = sim_toml(sim, str(tmp_path / "reports"))
    for tenant, identity in identities.items():
        text = text.replace(
            f'client_secret_env = "{Simulator.secret_env_name(tenant)}"', f'managed_identity = "{identity}"'
        )
    config = tmp_path / "config.toml"
    config.write_text(text)
    return config


def test_system_and_user_assigned_managed_identities_sign_in(managed, tmp_path) -> None:
    sim, home, other = managed
    config = managed_config(sim, tmp_path, {"contoso": "system", "fabrikam": other["clients"][0]["client_id"]})

    assert run(config) in (0, 1)
    assert {t["status"] for t in report_tenants(tmp_path / "reports").values()} == {"ok"}
    assert sim.counters.snapshot()["by_route"]["managed_identity"] >= 2


def test_a_managed_identity_of_another_tenant_is_refused_by_name(managed, tmp_path) -> None:
    sim, home, other = managed
    # The system-assigned identity lives in contoso; naming it for fabrikam cannot work.
    config = managed_config(sim, tmp_path, {"fabrikam": "system"})
    tenant = next(t for t in load_config(config).tenants if t.name == "fabrikam")

    with pytest.raises(AuthError, match=f"the managed identity belongs to tenant {home['tenant_id']}"):
        TokenProvider(tenant, verify=str(sim.ca_path)).token()


def test_an_unknown_user_assigned_identity_is_a_clear_failure(managed, tmp_path) -> None:
    sim, home, other = managed
    config = managed_config(sim, tmp_path, {"contoso": "11111111-2222-3333-4444-555555555555"})
    tenant = load_config(config).tenants[0]

    with pytest.raises(AuthError, match="No managed identity found for client_id 11111111-2222-3333-4444-555555555555"):
        TokenProvider(tenant, verify=str(sim.ca_path)).token()
