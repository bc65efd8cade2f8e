"""Signing in without a stored secret: workload identity federation and a managed-identity endpoint.

Federation: the simulator is also the token issuer a cluster would be (an OIDC issuer with a published
key set). `federated_token()` mints the token a platform mounts for the pod; a client that lists
`federated_credentials` (issuer, subject, audiences) accepts such a token as its client assertion. The
assertion is checked the way Entra describes it: signature against the issuer's published keys, then
issuer, expiry, audience and subject, each with its own AADSTS code (see audit/auth.py for the sources).

Managed identity: the App Service / Container Apps style endpoint (GET with the X-IDENTITY-HEADER
header, `resource` and optionally `client_id`; the answer carries `expires_on` in epoch seconds), the
shape msal's ManagedIdentityClient reads when IDENTITY_ENDPOINT and IDENTITY_HEADER are set
(msal/managed_identity.py, _obtain_token_on_app_service). A client with `"managed_identity": "system"`
is the resource's system-assigned identity; `"user"` a user-assigned one, addressed by its client_id.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .odata import Response
from .pki import new_key
from .state import TenantState

TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"  # the audience Entra expects by default
SERVICE_ACCOUNT = "system:serviceaccount:etd-audit:etd-audit"
FEDERATION_PATH = "/federation"
MANAGED_IDENTITY_PATH = "/msi/token"


class WorkloadIdentity:
    """The issuer key, its published key set, and the managed-identity header secret."""

    def __init__(self) -> None:
        self.key: rsa.RSAPrivateKey = new_key()
        self.key_id = secrets.token_urlsafe(9)
        self.identity_header = secrets.token_urlsafe(18)

    def issuer(self, url: str) -> str:
        return url + FEDERATION_PATH

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    def mint(
        self,
        url: str,
        *,
        subject: str = SERVICE_ACCOUNT,
        audience: str = TOKEN_EXCHANGE_AUDIENCE,
        lifetime: int = 3600,
        issued_at: float | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> str:
        now = int(time.time() if issued_at is None else issued_at)
        claims = {
            "iss": self.issuer(url),
            "sub": subject,
            "aud": [audience],
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key or self.key, algorithm="RS256", headers={"kid": self.key_id})


def federated_credentials_answer(workload: WorkloadIdentity, url: str, path: str) -> Response | None:
    """The issuer's discovery document and key set, as a cluster's issuer publishes them."""
    if path == FEDERATION_PATH + "/.well-known/openid-configuration":
        issuer = workload.issuer(url)
        return Response.json(200, {"issuer": issuer, "jwks_uri": issuer + "/openid/v1/jwks"})
    if path == FEDERATION_PATH + "/openid/v1/jwks":
        return Response.json(200, workload.jwks())
    return None


def check_federated_assertion(workload: WorkloadIdentity, url: str, client: dict, assertion: str):
    """None when the assertion matches one of the client's federated credentials, else (code, text)."""
    try:
        unverified = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        return 700027, "Client assertion failed signature validation."
    issuer = unverified.get("iss")
    records = [dict(r, issuer=r.get("issuer") or workload.issuer(url)) for r in client["federated_credentials"]]
    matching = [r for r in records if r["issuer"] == issuer]
    if not matching:
        return 700211, (
            f"No matching federated identity record found for presented assertion issuer '{issuer}'. Please check "
            "your federated identity credential Subject, Audience and Issuer against the presented assertion."
        )
    try:
        header = jwt.get_unverified_header(assertion)
        published = jwt.PyJWKSet.from_dict(workload.jwks())  # only what the issuer publishes is trusted
        key = next(k for k in published.keys if k.key_id == header.get("kid"))
        claims = jwt.decode(
            assertion,
            key.key,
            algorithms=["RS256"],
            options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        return 700024, "Client assertion is not within its valid time range."
    except (jwt.PyJWTError, StopIteration):
        return 700027, "Client assertion failed signature validation."
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    matching = [r for r in matching if set(r.get("audiences") or [TOKEN_EXCHANGE_AUDIENCE]) & set(audiences)]
    if not matching:
        return 700212, (
            f"No matching federated identity record found for presented assertion audience '{audiences[0]}'. "
            "Please check your federated identity credential Subject, Audience and Issuer against the presented "
            "assertion."
        )
    if not any(hmac.compare_digest(r["subject"], claims["sub"]) for r in matching):
        return 700213, (
            f"No matching federated identity record found for presented assertion subject '{claims['sub']}'. "
            "Please check your federated identity credential Subject, Audience and Issuer against the presented "
            "assertion."
        )
    return None


def managed_identity_client(tenants: list[TenantState], client_id: str | None) -> tuple[TenantState, dict] | None:
    for tenant in tenants:
        for client in tenant.clients.values():
            kind = client.get("managed_identity")
            if client_id is None and kind == "system":
                return tenant, client
            if client_id is not None and kind == "user" and client["client_id"].lower() == client_id.lower():
                return tenant, client
    return None


def managed_identity_error(status: int, message: str) -> Response:
    return Response.json(status, {"statusCode": status, "message": message, "correlationId": str(uuid.uuid4())})
