"""The identity side msal uses for client credentials: OIDC discovery and the v2.0 token endpoint.

Errors use Entra's JSON shape (`error`, `error_description` starting with the AADSTS code,
`error_codes`, `timestamp`, `trace_id`, `correlation_id`). Access tokens are RS256 JWTs signed by the
simulator; Graph calls are checked against the same key.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import time
import uuid
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .odata import Response
from .pki import load_cert, x5t
from .state import TenantState
from .workload import (
    WorkloadIdentity,
    check_federated_assertion,
    managed_identity_client,
    managed_identity_error,
)

TOKEN_LIFETIME = 3599
NOT_REGISTERED = "The certificate with identifier used to sign the client assertion is not registered on application."
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class TokenError(Exception):
    def __init__(self, status: int, error: str, code: int, text: str) -> None:
        super().__init__(f"AADSTS{code}: {text}")
        self.status, self.error, self.code, self.text = status, error, code, text


def entra_error(err: TokenError, correlation_id: str | None) -> Response:
    now = dt.datetime.now(dt.UTC)
    trace = str(uuid.uuid4())
    correlation = correlation_id or str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{err.code}: {err.text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    body = {
        "error": err.error,
        "error_description": description,
        "error_codes": [err.code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={err.code}",
    }
    return Response.json(err.status, body, {"Content-Type": "application/json; charset=utf-8"})


class IdentityHandlers:
    url: str
    signing_key: rsa.RSAPrivateKey
    key_id: str
    workload: WorkloadIdentity
    tenants: list[TenantState]

    def resolve_tenant(self, segment: str) -> TenantState | None:  # provided by the owner
        raise NotImplementedError

    def openid_configuration(self, segment: str, url: str | None = None) -> Response:
        """`url`: the host the client asked (from its Host header), as Entra names itself in the answer."""
        tenant = self.resolve_tenant(segment)
        if tenant is None:
            return entra_error(_unknown_tenant(segment), None)
        base = f"{url or self.url}/{segment}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.url}/{tenant.id}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{self.url}/{tenant.id}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            },
        )

    def token(self, segment: str, headers: dict[str, str], body: bytes) -> tuple[Response, dict | None]:
        """Answer a token request; also the claims of the token issued, if one was."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        try:
            claims = self._client_credentials(segment, form)
        except TokenError as err:
            return entra_error(err, headers.get("client-request-id")), None
        token = jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.key_id})
        return Response.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME,
                "access_token": token,
            },
            {"Content-Type": "application/json; charset=utf-8"},
        ), claims

    def _client_credentials(self, segment: str, form: dict[str, str]) -> dict:
        tenant = self.resolve_tenant(segment)
        if tenant is None:
            raise _unknown_tenant(segment)
        if form.get("grant_type") != "client_credentials":
            raise TokenError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        scope = form.get("scope", "")
        if not client_id:
            raise TokenError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        client = tenant.clients.get(client_id.lower())
        if client is None:
            raise TokenError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.spec.get('display_name', tenant.name)}'. This can happen if the application "
                "has not been installed by the administrator of the tenant or consented to by any user "
                "in the tenant. You may have sent your authentication request to the wrong tenant.",
            )
        refusal = client.get("refuse_with")  # a client whose every sign-in Entra refuses with this error
        if refusal:
            raise TokenError(int(refusal["status"]), refusal["error"], int(refusal["code"]), refusal["text"])
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise TokenError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have "
                "a scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
        if form.get("client_assertion") is not None:
            self._check_assertion(segment, tenant, client, form)
            credential_type = "2"
        elif form.get("client_secret") is not None:
            if not hmac.compare_digest(form["client_secret"].encode(), str(client.get("secret", "")).encode()):
                raise TokenError(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{client['client_id']}'.",
                )
            expires = client.get("secret_expires")
            if expires and expires < dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
                raise TokenError(
                    401,
                    "invalid_client",
                    7000222,
                    f"The provided client secret keys for app '{client['client_id']}' are expired. Visit the "
                    "Azure portal to create new keys for your app.",
                )
            credential_type = "1"
        else:
            raise TokenError(
                400,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        return self.app_claims(tenant, client, scopes[0][: -len("/.default")], credential_type)

    def app_claims(self, tenant: TenantState, client: dict, resource: str, credential_type: str) -> dict:
        """The claims of an app-only access token for this client in this tenant."""
        now = int(time.time())
        sp = tenant.service_principal(app_id=client["client_id"])
        object_id = sp["id"] if sp else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant.id}/{client['client_id']}"))
        claims = {
            "aud": resource,
            "iss": f"https://sts.windows.net/{tenant.id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "tid": tenant.id,
            "appid": client["client_id"],
            "appidacr": credential_type,
            "idp": f"https://sts.windows.net/{tenant.id}/",
            "idtyp": "app",
            "oid": object_id,
            "sub": object_id,
            "app_displayname": client.get("display_name", "app"),
            "ver": "1.0",
            "uti": uuid.uuid4().hex[:22],
        }
        if client.get("roles"):
            claims["roles"] = list(client["roles"])
        return claims

    def managed_identity_token(self, query: dict[str, str], headers: dict[str, str]) -> tuple[Response, dict | None]:
        """The App Service style managed-identity endpoint: a token for the resource's own identity."""
        if not hmac.compare_digest(
            headers.get("x-identity-header", "").encode(), self.workload.identity_header.encode()
        ):
            return managed_identity_error(401, "The X-IDENTITY-HEADER header is missing or wrong."), None
        resource = query.get("resource", "")
        if not resource:
            return managed_identity_error(400, "The resource parameter is required."), None
        found = managed_identity_client(self.tenants, query.get("client_id"))
        if found is None:
            which = f"client_id {query['client_id']}" if query.get("client_id") else "the system-assigned identity"
            return managed_identity_error(400, f"No managed identity found for {which}."), None
        tenant, client = found
        claims = self.app_claims(tenant, client, resource.rstrip("/"), "2")
        token = jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.key_id})
        body = {
            "access_token": token,
            "expires_on": str(claims["exp"]),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client["client_id"],
        }
        return Response.json(200, body), claims

    def _check_assertion(self, segment: str, tenant: TenantState, client: dict, form: dict[str, str]) -> None:
        def bad(text: str, code: int = 700027) -> TokenError:
            return TokenError(401, "invalid_client", code, text)

        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise TokenError(400, "invalid_request", 50027, f"client_assertion_type must be '{ASSERTION_TYPE}'.")
        assertion = form["client_assertion"]
        try:
            signed_with_certificate = any(k in jwt.get_unverified_header(assertion) for k in ("x5t", "x5t#S256"))
        except jwt.PyJWTError:
            signed_with_certificate = True  # unreadable: the certificate path below says so
        if client.get("federated_credentials") and not signed_with_certificate:
            problem = check_federated_assertion(self.workload, self.url, client, assertion)
            if problem:
                raise bad(problem[1], problem[0])
            return
        pem = client.get("certificate_pem")
        if not pem:
            raise bad(NOT_REGISTERED)
        cert = load_cert(pem)
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise bad("Client assertion failed signature validation.") from None
        if "x5t#S256" in header:
            presented, expected = header["x5t#S256"], x5t(cert, "sha256")
        else:
            presented, expected = header.get("x5t", ""), x5t(cert, "sha1")
        if presented.rstrip("=") != expected:
            raise bad(
                f"{NOT_REGISTERED} [Reason - The key was not found., Thumbprint of key used by client: '{presented}']"
            )
        audiences = [f"{self.url}/{segment}/oauth2/v2.0/token", f"{self.url}/{tenant.id}/oauth2/v2.0/token"]
        try:
            claims = jwt.decode(
                assertion,
                cert.public_key(),
                algorithms=["RS256", "PS256"],
                audience=audiences,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise bad("Client assertion is not within its valid time range.", 700024) from None
        except jwt.InvalidAudienceError:
            raise bad(
                f"Client assertion audience claim does not match Realm issuer. Expected one of {audiences}."
            ) from None
        except jwt.PyJWTError:
            raise bad("Client assertion failed signature validation.") from None
        if claims.get("iss") != client["client_id"] or claims.get("sub") != client["client_id"]:
            raise bad("Client assertion application identifier doesn't match 'client_id' parameter.", 700021)


_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", re.I)
_AUTHORITY_ALIASES = frozenset({"common", "organizations", "consumers"})


def _unknown_tenant(segment: str) -> TokenError:
    """Entra's answer for a tenant it cannot find: AADSTS90002 for a well-formed id or domain nobody owns,
    AADSTS900023 (400 invalid_request) for one that is neither a GUID nor a DNS name, as public reports
    show it ("Specified tenant identifier 'f837e147-...' is neither a valid DNS name, nor a valid external
    domain.", caddy-dns/azure#3; the same for 'authorize' in microsoft/Analysis-Services#194)."""
    if not (_GUID.match(segment) or _DNS_NAME.match(segment) or segment.lower() in _AUTHORITY_ALIASES):
        return TokenError(
            400,
            "invalid_request",
            900023,
            f"Specified tenant identifier '{segment}' is neither a valid DNS name, nor a valid external domain.",
        )
    return TokenError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are "
        "no active subscriptions for the tenant.",
    )


def decode_access_token(token: str, key: rsa.RSAPublicKey, audiences: list[str]) -> dict:
    """Validated claims; raises jwt.PyJWTError subclasses."""
    return jwt.decode(token, key, algorithms=["RS256"], audience=audiences, options={"require": ["exp", "iat", "tid"]})
