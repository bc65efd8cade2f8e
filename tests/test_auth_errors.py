"""What an admin reads when Entra refuses the sign-in: one line, the AADSTS code, the fix, no secret.

Every case goes through TokenProvider.token(): msal asks the simulator's token endpoint over HTTPS, and
the simulator answers with Entra's JSON error (error, error_codes, an error_description that starts with
the AADSTS code and goes on with Trace ID / Correlation ID lines), as Entra does.
"""

from __future__ import annotations

import copy

import pytest

from audit.auth import AuthError, TokenProvider
from audit.config import TenantConfig
from audit.simulator import Simulator

SECRET_ENV = "ETD_TEST_AUDIT_SECRET"


def refusing(sim_factory, spec: dict, status: int, error: str, code: int, text: str) -> tuple[Simulator, dict]:
    tenant = copy.deepcopy(spec)
    tenant["clients"][0]["refuse_with"] = {"status": status, "error": error, "code": code, "text": text}
    return sim_factory([tenant]), tenant


def sign_in(sim: Simulator, tenant: dict, monkeypatch: pytest.MonkeyPatch) -> AuthError:
    monkeypatch.setenv(SECRET_ENV, tenant["clients"][0]["secret"])
    config = TenantConfig(
        name="contoso",
        tenant_id=tenant["tenant_id"],
        client_id=tenant["clients"][0]["client_id"],
        client_secret_env=SECRET_ENV,
        authority_host=sim.url,
        graph_endpoint=sim.url,
    )
    with pytest.raises(AuthError) as caught:
        TokenProvider(config, verify=str(sim.ca_path)).token()
    return caught.value


@pytest.mark.parametrize(
    ("status", "error", "code", "text", "says"),
    [
        (
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
            "tenant 'contoso': sign-in failed with AADSTS7000215: Invalid client secret provided. The client "
            f"secret is wrong: check the value in the environment variable {SECRET_ENV} (it must be the secret's "
            "Value, not its Secret ID), or create a new secret for the app and put it there.",
        ),
        (
            401,
            "invalid_client",
            7000222,
            "The provided client secret keys are expired.",
            f"The client secret has expired: create a new secret for the app and put it in {SECRET_ENV}.",
        ),
        (
            400,
            "invalid_request",
            90002,
            "Tenant not found.",
            "Tenant not found: check tenant_id ({tenant_id}) and that cloud (global) is where it lives.",
        ),
        (
            400,
            "invalid_request",
            900023,
            "Specified tenant identifier 'authorize' is neither a valid DNS name, nor a valid external domain.",
            "The tenant id is malformed: tenant_id ({tenant_id}) must be the tenant's GUID or one of its domain",
        ),
        (
            400,
            "unauthorized_client",
            700016,
            "App x",
            "must be multi-tenant and an administrator of this tenant must consent to it.",
        ),
        (
            401,
            "invalid_client",
            700027,
            "bad sig",
            "check certificate_thumbprint, that this certificate is uploaded to the app's Certificates & secrets",
        ),
        (400, "invalid_scope", 1002012, "scope", "The requested scope is not valid: check cloud (global)"),
        (400, "invalid_request", 50059, "other", "Look the code up in Microsoft Entra's list of sign-in error codes."),
    ],
    ids=["7000215", "7000222", "90002", "900023", "700016", "700027", "1002012", "unknown"],
)
def test_a_refused_sign_in_is_one_clear_line_with_its_fix(
    sim_factory, small_tenant, monkeypatch, status, error, code, text, says
) -> None:
    sim, tenant = refusing(sim_factory, small_tenant, status, error, code, text)
    refused = sign_in(sim, tenant, monkeypatch)
    message = str(refused)
    assert refused.code == f"AADSTS{code}"
    first_sentence = text.split(". ")[0].rstrip(".")
    assert message.startswith(f"tenant 'contoso': sign-in failed with AADSTS{code}: {first_sentence}")
    assert says.format(tenant_id=tenant["tenant_id"]) in message
    assert "\n" not in message and "\r" not in message and "Trace ID" not in message


def test_the_secret_is_masked_even_if_the_answer_repeats_it(sim_factory, small_tenant, monkeypatch) -> None:
    secret = small_tenant["clients"][0]["secret"]
    sim, tenant = refusing(sim_factory, small_tenant, 401, "invalid_client", 7000215, f"got {secret} back")
    message = str(sign_in(sim, tenant, monkeypatch))
    assert secret not in message
    assert "got *** back" in message
