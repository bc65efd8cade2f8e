"""Sign-in: certificate reading, AADSTS messages, and msal against the simulator's identity endpoints."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from audit.auth import AuthError, TokenProvider, aadsts_code, graph_base, load_certificate, token_claims
from audit.config import TenantConfig
from audit.simulator import Simulator

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT = "0d3c6e2a-1111-4222-8333-944455556666"


def make_cert(days_valid: int = 30, *, key: rsa.RSAPrivateKey | None = None) -> tuple[str, str, str]:
    """(certificate PEM, key PEM, SHA-1 thumbprint) of a self-signed certificate."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "etd-audit test")])
    start = now - dt.timedelta(days=400) if days_valid < 0 else now - dt.timedelta(days=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now + dt.timedelta(days=days_valid))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return cert_pem, key_pem, cert.fingerprint(hashes.SHA1()).hex().upper()


@pytest.fixture(scope="module")
def cert() -> tuple[str, str, str]:
    return make_cert()


def tenant(**values: object) -> TenantConfig:
    base: dict[str, object] = {"name": "contoso", "tenant_id": TENANT, "client_id": CLIENT}
    base.update(values)
    return TenantConfig(**base)  # type: ignore[arg-type]


# ---- pure helpers ---------------------------------------------------------------------------------


def test_aadsts_code_from_codes_or_description() -> None:
    assert aadsts_code([7000215], "AADSTS90002: x") == "7000215"
    assert aadsts_code(None, "AADSTS700016: Application with identifier 'x' was not found") == "700016"
    assert aadsts_code(None, "no code here") is None


def test_token_claims_decodes_payload_without_verifying() -> None:
    payload = base64.urlsafe_b64encode(json.dumps({"roles": ["User.Read.All"], "tid": TENANT}).encode())
    token = "e30." + payload.decode().rstrip("=") + ".sig"
    assert token_claims(token) == {"roles": ["User.Read.All"], "tid": TENANT}
    assert token_claims("not-a-jwt") == {}


@pytest.mark.parametrize(
    ("cloud", "base"),
    [
        ("global", "https://graph.microsoft.com/v1.0"),
        ("usgov", "https://graph.microsoft.us/v1.0"),
        ("usgov-dod", "https://dod-graph.microsoft.us/v1.0"),
        ("china", "https://microsoftgraph.chinacloudapi.cn/v1.0"),
    ],
)
def test_graph_base_per_cloud(cloud: str, base: str) -> None:
    assert graph_base(tenant(cloud=cloud)) == base


def test_authority_and_scope_follow_cloud_or_override() -> None:
    p = TokenProvider(tenant(cloud="china", client_secret_env="X"))
    assert p.authority == f"https://login.chinacloudapi.cn/{TENANT}"
    assert p.scope == "https://microsoftgraph.chinacloudapi.cn/.default"
    p = TokenProvider(
        tenant(
            client_secret_env="X",
            authority_host="https://127.0.0.1:8443/",
            graph_endpoint="https://127.0.0.1:8443",
        )
    )
    assert p.authority == f"https://127.0.0.1:8443/{TENANT}"
    assert p.scope == "https://127.0.0.1:8443/.default"


def test_missing_secret_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ETD_TEST_UNSET_SECRET", raising=False)
    with pytest.raises(AuthError) as caught:
        TokenProvider(tenant(client_secret_env="ETD_TEST_UNSET_SECRET")).token()
    assert str(caught.value) == (
        "tenant 'contoso': environment variable ETD_TEST_UNSET_SECRET (client_secret_env) is not set. "
        "Set it to the app's client secret in the job's environment."
    )


# Refused sign-ins (one clear line per AADSTS code, the secret masked) are in test_auth_errors.py.


# ---- certificates ---------------------------------------------------------------------------------


def test_certificate_with_key_and_cert(tmp_path: Path, cert: tuple[str, str, str]) -> None:
    cert_pem, key_pem, thumb = cert
    path = tmp_path / "app.pem"
    path.write_text(key_pem + cert_pem)
    credential = load_certificate(path, thumb.lower())
    assert credential["thumbprint"] == thumb
    assert credential["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "BEGIN CERTIFICATE" in credential["public_certificate"]


def test_key_only_uses_configured_thumbprint(tmp_path: Path, cert: tuple[str, str, str]) -> None:
    _, key_pem, thumb = cert
    path = tmp_path / "key.pem"
    path.write_text(key_pem)
    assert load_certificate(path, thumb) == {"private_key": key_pem.strip(), "thumbprint": thumb}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "the file does not exist. Fix certificate_path."),
        ("cert-only", "holds no private key"),
        ("encrypted", "the private key is encrypted with a passphrase"),
        ("wrong-thumbprint", "does not match the certificate in the file"),
        ("expired", "the certificate expired on"),
        ("foreign-cert", "the certificate in the file does not belong to its private key"),
        ("binary", "cannot be read (it is not a text PEM file)"),
    ],
)
def test_certificate_problems(tmp_path: Path, cert: tuple[str, str, str], content: str | None, says: str) -> None:
    cert_pem, key_pem, thumb = cert
    path = tmp_path / "app.pem"
    if content == "cert-only":
        path.write_text(cert_pem)
    elif content == "encrypted":
        key = serialization.load_pem_private_key(key_pem.encode(), None)
        path.write_bytes(
            key.private_bytes(  # type: ignore[union-attr]
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"pw"),
            )
        )
    elif content == "wrong-thumbprint":
        path.write_text(key_pem + cert_pem)
        thumb = "0" * 40
    elif content == "expired":
        old_cert, old_key, thumb = make_cert(-5)
        path.write_text(old_key + old_cert)
    elif content == "foreign-cert":
        other_cert, _, _ = make_cert()
        path.write_text(key_pem + other_cert)
    elif content == "binary":
        path.write_bytes(b"\x30\x82\x04\xff\xfe\x00")
    with pytest.raises(AuthError) as caught:
        load_certificate(path, thumb)
    assert str(caught.value).startswith(f"certificate {path}: ")
    assert says in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)


# ---- against the simulator's identity endpoints, over real HTTPS ----------------------------------


@pytest.fixture
def sim(sim_factory, small_tenant: dict) -> Simulator:
    return sim_factory([small_tenant])


def sim_tenant(sim: Simulator, spec: dict, **values: object) -> TenantConfig:
    base: dict[str, object] = {
        "name": spec["name"],
        "tenant_id": spec["tenant_id"],
        "client_id": spec["clients"][0]["client_id"],
        "authority_host": sim.url,
        "graph_endpoint": sim.url,
    }
    base.update(values)
    return TenantConfig(**base)  # type: ignore[arg-type]


def with_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> str:
    monkeypatch.setenv("ETD_TEST_AUDIT_SECRET", secret)
    return "ETD_TEST_AUDIT_SECRET"


def test_secret_sign_in_and_roles(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    provider = TokenProvider(sim_tenant(sim, small_tenant, client_secret_env=env), verify=str(sim.ca_path))
    assert provider.roles() == tuple(small_tenant["clients"][0]["roles"])
    assert token_claims(provider.token())["tid"] == small_tenant["tenant_id"]


def test_tenant_given_by_domain(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    domain = small_tenant["verified_domains"][0]
    provider = TokenProvider(
        sim_tenant(sim, small_tenant, tenant_id=domain, client_secret_env=env), verify=str(sim.ca_path)
    )
    assert token_claims(provider.token())["tid"] == small_tenant["tenant_id"]


def test_msal_cache_means_one_token_request(
    sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    provider = TokenProvider(sim_tenant(sim, small_tenant, client_secret_env=env), verify=str(sim.ca_path))
    tokens = {provider.token() for _ in range(20)}
    assert len(tokens) == 1 and provider.token_requests == 1
    assert sim.counters.snapshot()["tokens_issued"] == 1
    provider.invalidate()
    assert provider.token() not in tokens  # asked the identity provider again
    assert provider.token_requests == 2 and sim.counters.snapshot()["tokens_issued"] == 2


@pytest.mark.parametrize("with_cert_in_file", [True, False], ids=["key+cert", "key-only"])
def test_certificate_sign_in(sim: Simulator, small_tenant: dict, tmp_path: Path, with_cert_in_file: bool) -> None:
    client = small_tenant["clients"][0]
    pem = tmp_path / "audit.pem"
    pem.write_text(client["private_key_pem"] + (client["certificate_pem"] if with_cert_in_file else ""))
    tenant_config = sim_tenant(sim, small_tenant, certificate_path=pem, certificate_thumbprint=client["thumbprint"])
    provider = TokenProvider(tenant_config, verify=str(sim.ca_path))
    assert token_claims(provider.token())["appidacr"] == "2"  # signed in with a certificate
    assert provider.token_requests == 1


def test_certificate_not_uploaded_is_700027(sim: Simulator, small_tenant: dict, tmp_path: Path) -> None:
    other_cert, other_key, other_thumb = make_cert()
    pem = tmp_path / "other.pem"
    pem.write_text(other_key + other_cert)
    tenant_config = sim_tenant(sim, small_tenant, certificate_path=pem, certificate_thumbprint=other_thumb)
    with pytest.raises(AuthError) as caught:
        TokenProvider(tenant_config, verify=str(sim.ca_path)).token()
    assert caught.value.code == "AADSTS700027"
    assert "check certificate_thumbprint, that this certificate is uploaded" in str(caught.value)
    assert "eyJ" not in str(caught.value)  # no assertion (a JWT) in the message


def test_wrong_secret_is_7000215(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, "Wrong~Secret.Value-123")
    with pytest.raises(AuthError) as caught:
        TokenProvider(sim_tenant(sim, small_tenant, client_secret_env=env), verify=str(sim.ca_path)).token()
    message = str(caught.value)
    assert caught.value.code == "AADSTS7000215"
    assert message.startswith("tenant 'contoso': sign-in failed with AADSTS7000215: Invalid client secret provided.")
    assert "check the value in the environment variable ETD_TEST_AUDIT_SECRET" in message
    assert "Wrong~Secret.Value-123" not in message


def test_expired_secret_is_7000222(sim_factory, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = copy.deepcopy(small_tenant)
    tenant["clients"][0]["secret_expires"] = "2020-01-01T00:00:00Z"
    sim = sim_factory([tenant])
    env = with_secret(monkeypatch, tenant["clients"][0]["secret"])
    with pytest.raises(AuthError) as caught:
        TokenProvider(sim_tenant(sim, tenant, client_secret_env=env), verify=str(sim.ca_path)).token()
    assert caught.value.code == "AADSTS7000222"
    assert "create a new secret for the app and put it in ETD_TEST_AUDIT_SECRET" in str(caught.value)


def test_unknown_tenant_is_90002(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    stranger = "9f3c0b1e-1111-4222-8333-944455556666"
    with pytest.raises(AuthError) as caught:
        TokenProvider(
            sim_tenant(sim, small_tenant, tenant_id=stranger, client_secret_env=env), verify=str(sim.ca_path)
        ).token()
    assert caught.value.code == "AADSTS90002"
    assert str(caught.value) == (
        f"tenant 'contoso': sign-in failed with AADSTS90002: Tenant '{stranger}' not found. Tenant not "
        "found: "
        f"check tenant_id ({stranger}) and that cloud (global) is where it lives."
    )


def test_malformed_tenant_is_900023_with_its_own_hint(
    sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tenant id one digit short, as in caddy-dns/azure#3, where Entra answered 400 invalid_request with
    # "AADSTS900023: Specified tenant identifier '...' is neither a valid DNS name, nor a valid external domain."
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    malformed = "e63649b2-07c0-49ed-a24b-87381dac292"
    with pytest.raises(AuthError) as caught:
        TokenProvider(
            sim_tenant(sim, small_tenant, tenant_id=malformed, client_secret_env=env), verify=str(sim.ca_path)
        ).token()
    assert caught.value.code == "AADSTS900023"
    message = str(caught.value)
    assert message.startswith(
        f"tenant 'contoso': sign-in failed with AADSTS900023: Specified tenant identifier '{malformed}' is neither "
        "a valid DNS name, nor a valid external domain."
    )
    assert f"The tenant id is malformed: tenant_id ({malformed}) must be the tenant's GUID" in message
    assert "Look the code up" not in message  # not the generic hint


def test_unknown_client_is_700016(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    tenant_config = sim_tenant(sim, small_tenant, client_id=CLIENT, client_secret_env=env)
    with pytest.raises(AuthError) as caught:
        TokenProvider(tenant_config, verify=str(sim.ca_path)).token()
    assert caught.value.code == "AADSTS700016"
    assert "check client_id; if the app is registered in another tenant it must be multi-tenant" in str(caught.value)


def test_ca_bundle_wins_over_environment_and_untrusted_is_refused(
    sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", os.environ.get("REQUESTS_CA_BUNDLE") or certifi.where())
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    tenant_config = sim_tenant(sim, small_tenant, client_secret_env=env)
    assert TokenProvider(tenant_config, verify=str(sim.ca_path)).token()
    with pytest.raises(AuthError) as caught:
        TokenProvider(tenant_config, verify=True).token()
    assert caught.value.code is None
    assert f"the sign-in service at {sim.url[len('https://') :]} presented a certificate this machine does not" in str(
        caught.value
    )
    assert "set audit.ca_bundle" in str(caught.value)


def test_unreachable_sign_in_service(small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    env = with_secret(monkeypatch, "x")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tenant_config = tenant(client_secret_env=env, authority_host=f"https://127.0.0.1:{port}")
    with pytest.raises(AuthError) as caught:
        TokenProvider(tenant_config, timeout=5).token()
    assert f"cannot reach the sign-in service at 127.0.0.1:{port} (ConnectionError)" in str(caught.value)


def test_proxy_setting_reaches_msal(sim: Simulator, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    env = with_secret(monkeypatch, small_tenant["clients"][0]["secret"])
    with socket.socket() as sock:  # a proxy address nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tenant_config = sim_tenant(sim, small_tenant, client_secret_env=env)
    provider = TokenProvider(tenant_config, verify=str(sim.ca_path), proxy=f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(AuthError) as caught:
        provider.token()
    assert "cannot reach the sign-in service" in str(caught.value) and "(ProxyError)" in str(caught.value)
    assert sim.counters.snapshot()["tokens_issued"] == 0
