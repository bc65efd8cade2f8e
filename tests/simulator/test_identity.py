"""The token side, through real msal and through plain requests."""

from __future__ import annotations

import time

import jwt
import msal
import pytest
import requests

from audit.simulator import Simulator, generate_tenant
from audit.simulator.pki import client_certificate, load_cert, sha1_thumbprint, x5t

from ._support import Graph, add_client, token_response


@pytest.fixture(scope="module")
def tenant() -> dict:
    spec = generate_tenant("contoso", 40, seed=3, scenario="healthy")
    add_client(spec, ["User.Read.All"], secret="expired-secret")["secret_expires"] = "2020-01-01T00:00:00Z"
    return spec


@pytest.fixture(scope="module")
def sim(tenant):
    with Simulator([tenant]) as running:
        yield running


def _http(sim) -> requests.Session:
    # REQUESTS_CA_BUNDLE (set on this machine) would override msal's verify=; a session that ignores the
    # environment keeps the simulator's CA in force.
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sim.ca_path)
    return session


def _msal(sim, tenant_segment: str, client_id: str, credential) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=f"{sim.url}/{tenant_segment}",
        instance_discovery=False,
        http_client=_http(sim),
    )


def test_msal_secret_token_carries_the_client_roles(sim, tenant):
    client = tenant["clients"][0]
    app = _msal(sim, tenant["tenant_id"], client["client_id"], client["secret"])
    result = app.acquire_token_for_client([f"{sim.url}/.default"])
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3599
    claims = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert claims["tid"] == tenant["tenant_id"]
    assert claims["appid"] == client["client_id"]
    assert claims["aud"] == sim.url
    assert sorted(claims["roles"]) == sorted(client["roles"])
    assert claims["exp"] - claims["iat"] == 3599
    again = app.acquire_token_for_client([f"{sim.url}/.default"])
    assert again["token_source"] == "cache", "no scope is echoed, so msal's cache must hit"


def test_authority_may_be_a_verified_domain(sim, tenant):
    client = tenant["clients"][0]
    app = _msal(sim, "contoso.com", client["client_id"], client["secret"])
    result = app.acquire_token_for_client([f"{sim.url}/.default"])
    assert "access_token" in result, result
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["tid"] == tenant["tenant_id"]


@pytest.mark.parametrize("mode", ["sha1-thumbprint", "public-certificate"])
def test_msal_certificate_token(sim, tenant, mode):
    client = tenant["clients"][0]
    credential = {"private_key": client["private_key_pem"]}
    if mode == "sha1-thumbprint":
        credential["thumbprint"] = client["thumbprint"]  # RS256 with x5t
    else:
        credential["public_certificate"] = client["certificate_pem"]  # PS256 with x5t#S256
    result = _msal(sim, tenant["tenant_id"], client["client_id"], credential).acquire_token_for_client(
        [f"{sim.url}/.default"]
    )
    assert "access_token" in result, result.get("error_description")
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["appidacr"] == "2"
    assert Graph(sim, tenant, bearer=result["access_token"]).get("/organization").status_code == 200


def test_msal_certificate_signed_by_another_key_is_refused(sim, tenant):
    client = tenant["clients"][0]
    other_cert, other_key = client_certificate("someone-else")
    credential = {"private_key": other_key, "thumbprint": sha1_thumbprint(other_cert)}
    result = _msal(sim, tenant["tenant_id"], client["client_id"], credential).acquire_token_for_client(
        [f"{sim.url}/.default"]
    )
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]
    assert result["error_description"].startswith("AADSTS700027:")


def test_msal_wrong_secret(sim, tenant):
    client = tenant["clients"][0]
    result = _msal(sim, tenant["tenant_id"], client["client_id"], "not-the-secret").acquire_token_for_client(
        [f"{sim.url}/.default"]
    )
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215:")
    assert result["error_codes"] == [7000215]
    for key in ("timestamp", "trace_id", "correlation_id"):
        assert result[key]


def test_msal_unknown_tenant_fails_at_discovery(sim, tenant):
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        _msal(sim, "00000000-0000-0000-0000-000000000000", tenant["clients"][0]["client_id"], "x")


def test_token_endpoint_errors_in_entra_shape(sim, tenant):
    unknown_tenant = requests.post(
        f"{sim.url}/nowhere.example/oauth2/v2.0/token",
        data={"client_id": "x", "client_secret": "y", "grant_type": "client_credentials"},
        verify=sim.ca_path,
        timeout=10,
    )
    assert unknown_tenant.status_code == 400
    body = unknown_tenant.json()
    assert body["error_codes"] == [90002] and body["error_description"].startswith("AADSTS90002:")

    wrong_secret = token_response(sim, tenant, client_secret="nope")
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error_codes"] == [7000215]

    stranger = token_response(sim, tenant, client={"client_id": "11111111-2222-3333-4444-555555555555", "secret": "s"})
    assert stranger.status_code == 400
    assert stranger.json()["error_description"].startswith("AADSTS700016: Application with identifier")

    bad_scope = token_response(sim, tenant, scope="User.Read")
    assert bad_scope.json()["error"] == "invalid_scope"

    expired = token_response(sim, tenant, client=tenant["clients"][1])
    assert expired.status_code == 401 and expired.json()["error_codes"] == [7000222]

    garbage_assertion = token_response(
        sim,
        tenant,
        client_secret=None,
        client_assertion="not.a.jwt",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert garbage_assertion.json()["error_codes"] == [700027]


def test_expired_assertion_is_refused(sim, tenant):
    client = tenant["clients"][0]
    token_url = f"{sim.url}/{tenant['tenant_id']}/oauth2/v2.0/token"
    now = int(time.time())
    assertion = jwt.encode(
        {
            "aud": token_url,
            "iss": client["client_id"],
            "sub": client["client_id"],
            "iat": now - 900,
            "exp": now - 300,
        },
        client["private_key_pem"],
        algorithm="RS256",
        headers={"x5t": _x5t(client["certificate_pem"])},
    )
    response = token_response(
        sim,
        tenant,
        client_secret=None,
        client_assertion=assertion,
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    )
    assert response.status_code == 401
    assert response.json()["error_codes"] == [700024]


def test_openid_configuration_points_at_the_given_segment(sim, tenant):
    body = requests.get(
        f"{sim.url}/contoso.com/v2.0/.well-known/openid-configuration", verify=sim.ca_path, timeout=10
    ).json()
    assert body["token_endpoint"] == f"{sim.url}/contoso.com/oauth2/v2.0/token"
    assert body["issuer"] == f"{sim.url}/{tenant['tenant_id']}/v2.0"
    assert sim.counters.snapshot()["by_route"]["openid"] >= 1


def test_graph_refuses_missing_and_forged_tokens(sim, tenant):
    missing = requests.get(f"{sim.url}/v1.0/users", verify=sim.ca_path, timeout=10)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert missing.headers["request-id"]
    forged = jwt.encode(
        {"aud": sim.url, "tid": tenant["tenant_id"], "appid": "x", "iat": 1, "exp": int(time.time()) + 60},
        client_certificate("forger")[1],
        algorithm="RS256",
    )
    response = Graph(sim, tenant, bearer=forged).get("/users")
    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Access token validation failure")


def _x5t(pem: str) -> str:
    return x5t(load_cert(pem))
