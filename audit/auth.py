"""App-only sign-in per tenant with msal, msal's own token cache. Credentials: a client secret (from a
variable or a mounted file), a certificate, a platform-signed token file (workload identity federation)
or the managed identity of the Azure resource the job runs on.

Every failure becomes an AuthError whose text is one line: what failed, the AADSTS code when there is
one, and what to do. The text never carries the secret, the private key or the signed assertion.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import logging
import os
import re
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from requests.adapters import HTTPAdapter

from audit.clouds import CLOUDS
from audit.config import GUID_RE, TenantConfig
from audit.graph import tls_failure
from audit.logs import register_secret

log = logging.getLogger("audit")

# What to do, per AADSTS code. {env}, {client_id}, {tenant_id}, {cloud} are filled in.
_TENANT_HINT = "Tenant not found: check tenant_id ({tenant_id}) and that cloud ({cloud}) is where it lives"
_MALFORMED_TENANT_HINT = (
    "The tenant id is malformed: tenant_id ({tenant_id}) must be the tenant's GUID or one of its domain names, "
    "and authority_host only the sign-in host (no path)"
)
_SCOPE_HINT = (
    "The requested scope is not valid: check cloud ({cloud}); the Graph endpoint must belong to the same "
    "cloud as the sign-in host"
)
_CERT_HINT = (
    "The certificate was rejected: check certificate_thumbprint, that this certificate is uploaded to the "
    "app's Certificates & secrets page, and that this machine's clock is right"
)
HINTS: dict[str, str] = {
    "7000215": (
        "The client secret is wrong: check the value in the environment variable {env} (it must be the "
        "secret's Value, not its Secret ID), or create a new secret for the app and put it there"
    ),
    "7000222": "The client secret has expired: create a new secret for the app and put it in {env}",
    "90002": _TENANT_HINT,
    # AADSTS900023: "Specified tenant identifier '...' is neither a valid DNS name, nor a valid external
    # domain." (seen in public reports such as caddy-dns/azure#3 and microsoft/Analysis-Services#194)
    "900023": _MALFORMED_TENANT_HINT,
    "700016": (
        "The app {client_id} is not known in tenant {tenant_id}: check client_id; if the app is registered "
        "in another tenant it must be multi-tenant and an administrator of this tenant must consent to it"
    ),
    "700027": _CERT_HINT,
    "700024": _CERT_HINT,
    "1002012": _SCOPE_HINT,
    "70011": _SCOPE_HINT,
}
# Federated sign-in: Entra names what did not match a federated credential of the app. Codes as seen in
# public reports: 700211 issuer (Azure/azure-workload-identity#1200), 700212 audience, 700213 subject
# (Azure/login#619), 70021 no credential matched (Azure/azure-workload-identity#616), 700024 expired.
_FEDERATION_FIX = (
    "check that the app {client_id} has a federated credential in its home tenant with the cluster's issuer URL, "
    "the pod's service account as subject (system:serviceaccount:<namespace>:<name>) and audience "
    "api://AzureADTokenExchange"
)
FEDERATION_HINTS: dict[str, str] = {
    "700211": "The token's issuer is not trusted by the app: " + _FEDERATION_FIX,
    "700212": (
        "The token's audience does not match the app's federated credential: mount the projected service-account "
        "token with audience api://AzureADTokenExchange, or " + _FEDERATION_FIX
    ),
    "700213": "The token's subject is not trusted by the app: " + _FEDERATION_FIX,
    "70021": "No federated credential of the app matches the token: " + _FEDERATION_FIX,
    "700024": (
        "The token in {token_file} has expired: the platform did not rotate it. Check that the projected "
        "service-account token volume is mounted (Kubernetes refreshes it before it expires)"
    ),
    "700016": (
        "The app {client_id} is not known in tenant {tenant_id}: a federated credential signs in to other tenants "
        "only for a multi-tenant audit app, which an administrator of this tenant has consented to"
    ),
}
# The same refusals as for a secret in a variable, worded for a secret read from client_secret_file.
SECRET_FILE_HINTS: dict[str, str] = {
    "7000215": (
        "The client secret is wrong: check the value in {env} (it must be the secret's Value, not its Secret ID), "
        "or create a new secret for the app and put it there"
    ),
    "7000222": "The client secret has expired: create a new secret for the app and put it in {env}",
}
GENERIC_HINT = "Look the code up in Microsoft Entra's list of sign-in error codes"
KEY_RE = re.compile(r"-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----.+?-----END \1-----", re.S)
CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class AuthError(Exception):
    """Sign-in failed. str(e) is one line: what failed, the AADSTS code, and what to do."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


def graph_base(tenant: TenantConfig) -> str:
    """The Graph v1.0 root for this tenant's cloud (or its override)."""
    return (tenant.graph_endpoint or CLOUDS[tenant.cloud].graph_endpoint).rstrip("/") + "/v1.0"


def aadsts_code(*texts: Any) -> str | None:
    """The AADSTS number in an error: from `error_codes` (a list) or the text of a description."""
    for text in texts:
        if isinstance(text, list) and text and isinstance(text[0], int):
            return str(text[0])
        if isinstance(text, str):
            m = re.search(r"AADSTS(\d+)", text)
            if m:
                return m.group(1)
    return None


def load_certificate(path: Path, thumbprint: str | None, *, now: datetime | None = None) -> dict[str, str]:
    """Read a PEM with the private key (and maybe the certificate) into msal's client_credential.

    When the certificate is in the file, it must belong to the key, match the thumbprint and be in
    its validity period.
    """
    where = f"certificate {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AuthError(f"{where}: the file does not exist. Fix certificate_path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = "it is not a text PEM file" if isinstance(exc, UnicodeDecodeError) else exc.strerror or str(exc)
        raise AuthError(f"{where}: cannot be read ({reason}). Give a readable PEM file with the private key.") from None
    key_match = KEY_RE.search(text)
    if not key_match:
        raise AuthError(
            f"{where}: holds no private key. Use a PEM file with the private key (e.g. exported with "
            "'openssl pkcs12 -in app.pfx -nodes -out app.pem')."
        )
    if key_match.group(1).startswith("ENCRYPTED"):
        raise AuthError(
            f"{where}: the private key is encrypted with a passphrase. Store it unencrypted in a file "
            "only the job's account can read."
        )
    key_pem = key_match.group(0)
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise AuthError(f"{where}: the private key cannot be loaded ({exc}). Export the key again.") from None
    given = re.sub(r"[\s:]", "", thumbprint or "").upper() or None
    certs = []
    for block in CERT_RE.findall(text):
        try:
            certs.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError as exc:
            raise AuthError(f"{where}: a certificate in the file cannot be read ({exc}). Export it again.") from None
    credential = {"private_key": key_pem}
    if certs:
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        mine = [
            c
            for c in certs
            if c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            == public
        ]
        if not mine:
            raise AuthError(
                f"{where}: the certificate in the file does not belong to its private key. "
                "Put the matching key and certificate together."
            )
        cert = mine[0]
        actual = cert.fingerprint(hashes.SHA1()).hex().upper()  # the thumbprint Entra shows is SHA-1
        if given and given != actual:
            raise AuthError(
                f"{where}: certificate_thumbprint {given} does not match the certificate in the file "
                f"({actual}). Fix certificate_thumbprint or point certificate_path at the right file."
            )
        current = now or datetime.now(UTC)
        if cert.not_valid_after_utc < current:
            raise AuthError(
                f"{where}: the certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}. Create a new "
                "certificate, upload it to the app and point certificate_path at it."
            )
        if cert.not_valid_before_utc > current:
            raise AuthError(
                f"{where}: the certificate is not valid before "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC. Check this machine's clock or use a "
                "current certificate."
            )
        credential["thumbprint"] = actual
        credential["public_certificate"] = cert.public_bytes(serialization.Encoding.PEM).decode()
    elif given:
        credential["thumbprint"] = given
    else:
        raise AuthError(
            f"{where}: no certificate_thumbprint is configured and the file holds no certificate. "
            "Add certificate_thumbprint."
        )
    return credential


def _session(verify: str | bool, proxy: str | None, timeout: float) -> requests.Session:
    """The HTTP session msal uses. verify/proxies go on every request: a REQUESTS_CA_BUNDLE variable would
    otherwise replace a Session-level verify, and the configured CA bundle must win."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=1)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    proxies = {"http": proxy, "https": proxy} if proxy else None
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=verify, proxies=proxies, timeout=timeout
    )
    return session


class TokenProvider:
    """Access tokens for Graph in one tenant. Thread-safe; msal's cache answers until a token nears expiry."""

    def __init__(
        self,
        tenant: TenantConfig,
        *,
        verify: str | bool = True,
        proxy: str | None = None,
        timeout: float = 30,
    ):
        self.tenant = tenant
        cloud = CLOUDS[tenant.cloud]
        self.authority = f"{(tenant.authority_host or cloud.authority_host).rstrip('/')}/{tenant.tenant_id}"
        self.scope = f"{(tenant.graph_endpoint or cloud.graph_endpoint).rstrip('/')}/.default"
        self.verify = str(verify) if not isinstance(verify, bool) else verify
        self.proxy = proxy
        self.timeout = timeout
        self.token_requests = 0  # tokens fetched from the identity provider (not from the cache)
        self._app: msal.ConfidentialClientApplication | None = None
        self._secret: str | None = None
        self._managed: msal.ManagedIdentityClient | None = None
        self._lock = threading.RLock()
        if tenant.federated_token_from_env and not tenant.authority_host and os.environ.get("AZURE_AUTHORITY_HOST"):
            # The platform's sign-in host (the workload identity webhook sets it for the cluster's cloud).
            host = os.environ["AZURE_AUTHORITY_HOST"].rstrip("/")
            self.authority = f"{host}/{tenant.tenant_id}"
        platform_client = os.environ.get("AZURE_CLIENT_ID", "")
        if tenant.federated_token_from_env and platform_client and platform_client.lower() != tenant.client_id.lower():
            log.warning(
                "tenant %s: the pod's AZURE_CLIENT_ID is %s but the tenant's client_id is %s; the token file is "
                "accepted only by an app with a federated credential for this service account, so that app must "
                "be %s",
                tenant.name,
                platform_client,
                tenant.client_id,
                tenant.client_id,
            )

    def __repr__(self) -> str:
        return f"TokenProvider(tenant={self.tenant.name!r}, authority={self.authority!r})"

    @property
    def host(self) -> str:
        return urlsplit(self.authority).netloc

    def token(self) -> str:
        """An access token: msal's cache first, the identity provider when it has none."""
        with self._lock:
            if self.tenant.managed_identity:
                result = self._managed_token()
                self._check_managed_tenant(result)
            else:
                app = self._application()
                try:
                    result = app.acquire_token_for_client(scopes=[self.scope])
                except (ValueError, requests.RequestException) as exc:
                    raise self._wrap(exc) from exc
            if result and "access_token" in result:
                if result.get("token_source") == "identity_provider":
                    self.token_requests += 1
                    log.debug("tenant %s: new access token from %s", self.tenant.name, self.host)
                return result["access_token"]
            raise self._from_result(result or {})

    def invalidate(self) -> None:
        """Forget cached access tokens, so the next token() asks the identity provider."""
        with self._lock:
            if self._managed is not None:  # no public way to empty it: a new client starts with an empty cache
                self._managed = None
            if self._app is None:
                return
            cache = self._app.token_cache
            kind = msal.TokenCache.CredentialType.ACCESS_TOKEN
            for entry in list(cache.search(kind, query={"client_id": self.tenant.client_id})):
                cache.remove_at(entry)

    def roles(self) -> tuple[str, ...]:
        """Application permissions granted to the app in this tenant: the token's `roles` claim."""
        return tuple(token_claims(self.token()).get("roles") or ())

    # ---- internals ------------------------------------------------------------------------------

    def _credential(self) -> str | dict[str, Any]:
        t = self.tenant
        if t.client_secret_env:
            secret = os.environ.get(t.client_secret_env)
            if not secret:
                raise AuthError(
                    f"tenant '{t.name}': environment variable {t.client_secret_env} (client_secret_env) is "
                    "not set. Set it to the app's client secret in the job's environment."
                )
            return self._keep_secret(secret)
        if t.client_secret_file:
            return self._keep_secret(read_secret_file(t))
        if self.federated:
            read_federated_token(t)  # a missing or expired file fails here, with its own message
            # msal calls this before each token request it sends, so a rotated file is read afresh.
            return {"client_assertion": lambda: read_federated_token(t)}
        if t.certificate_path is None:
            raise AuthError(f"tenant '{t.name}': no credential configured. Set client_secret_env or certificate_path.")
        try:
            return load_certificate(t.certificate_path, t.certificate_thumbprint)
        except AuthError as exc:
            raise AuthError(f"tenant '{t.name}': {exc}") from None

    def _keep_secret(self, secret: str) -> str:
        register_secret(secret)  # from here on, no log line can carry it
        self._secret = secret
        return secret

    @property
    def federated(self) -> bool:
        return bool(self.tenant.federated_token_file or self.tenant.federated_token_from_env)

    def _check_managed_tenant(self, result: dict) -> None:
        """A managed identity lives in the tenant of its Azure subscription and signs in there only."""
        t = self.tenant
        tid = token_claims(result.get("access_token") or "").get("tid")
        if tid and GUID_RE.match(t.tenant_id) and tid.lower() != t.tenant_id.lower():
            raise AuthError(
                f"tenant '{t.name}': the managed identity belongs to tenant {tid}, not {t.tenant_id}. A managed "
                "identity signs in to its own tenant only: use it for the audit's home tenant and a federated "
                "credential of a multi-tenant audit app (federated_token_file) for the others."
            )

    def _managed_token(self) -> dict:
        """A token from the managed identity of the Azure resource this runs on (its own tenant only)."""
        if self._managed is None:
            mi = self.tenant.managed_identity
            identity = (
                msal.SystemAssignedManagedIdentity()
                if mi == "system"
                else msal.UserAssignedManagedIdentity(client_id=mi)
            )
            self._managed = msal.ManagedIdentityClient(
                identity,
                http_client=_session(self.verify, self.proxy, self.timeout),
                token_cache=msal.TokenCache(),
            )
        try:
            return self._managed.acquire_token_for_client(resource=self.scope.removesuffix("/.default"))
        except (ValueError, requests.RequestException) as exc:
            raise self._wrap(exc) from exc

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        credential = self._credential()
        known = urlsplit(self.authority).hostname in WELL_KNOWN_AUTHORITY_HOSTS
        try:
            self._app = msal.ConfidentialClientApplication(
                self.tenant.client_id,
                client_credential=credential,
                authority=self.authority,
                # Our own session carries verify/proxies on each request (see _session).
                http_client=_session(self.verify, self.proxy, self.timeout),
                instance_discovery=None if known else False,
                token_cache=msal.TokenCache(),
            )
        except (ValueError, requests.RequestException) as exc:
            raise self._wrap(exc) from exc
        return self._app

    def _message(self, code: str | None, what: str) -> str:
        t = self.tenant
        hints = {**HINTS, **FEDERATION_HINTS} if self.federated else HINTS
        if t.client_secret_file:
            hints = {**HINTS, **SECRET_FILE_HINTS}
        hint = hints.get(code or "", GENERIC_HINT if code else "")
        env = t.client_secret_env or (f"the file {t.client_secret_file}" if t.client_secret_file else None)
        token_file = t.federated_token_file or "AZURE_FEDERATED_TOKEN_FILE"
        hint = hint.format(env=env, client_id=t.client_id, tenant_id=t.tenant_id, cloud=t.cloud, token_file=token_file)
        prefix = f"tenant '{t.name}': sign-in failed" + (f" with AADSTS{code}" if code else "")
        text = f"{prefix}: {what.rstrip('.')}." + (f" {hint.rstrip('.')}." if hint else "")
        if self._secret:
            text = text.replace(self._secret, "***")
        return " ".join(text.split())

    def _from_result(self, result: dict) -> AuthError:
        description = str(result.get("error_description") or result.get("error") or "no reason given")
        code = aadsts_code(result.get("error_codes"), description)
        first = description.splitlines()[0] if description.strip() else description
        first = re.sub(r"^AADSTS\d+:\s*", "", first).strip() or str(result.get("error"))
        first = re.split(r"(?<=\.)\s", first, maxsplit=1)[0]  # its first sentence says what failed
        return AuthError(self._message(code, first), f"AADSTS{code}" if code else None)

    def _wrap(self, exc: Exception) -> AuthError:
        """Turn an exception raised inside msal or requests into an AuthError with a clear message."""
        host = self.host
        if isinstance(exc, requests.exceptions.SSLError):
            return AuthError(self._message(None, tls_failure(f"the sign-in service at {host}", exc)))
        if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
            what = f"the sign-in service at {host} answered HTTP {exc.response.status_code}. Try again later"
            return AuthError(self._message(aadsts_code(exc.response.text), what))
        if isinstance(exc, requests.RequestException) and self.tenant.managed_identity:
            what = (
                f"cannot reach the managed identity endpoint ({type(exc).__name__}). managed_identity works only "
                "on an Azure resource with that identity assigned (Container Apps, App Service, a VM)"
            )
            return AuthError(self._message(None, what))
        if isinstance(exc, requests.RequestException):
            what = (
                f"cannot reach the sign-in service at {host} ({type(exc).__name__}). "
                "Check network access and audit.proxy"
            )
            return AuthError(self._message(None, what))
        chain = " ".join(str(e) for e in (exc, exc.__context__, exc.__cause__) if e is not None)
        code = aadsts_code(chain)
        if code:
            m = re.search(rf"AADSTS{code}:\s*([^\r\n\"]+)", chain)
            what = m.group(1).strip() if m else f"{host} refused the tenant"
            what = re.split(r"\\r|\\n|Trace ID|(?<=\.)\s", what)[0].strip()
            return AuthError(self._message(code, what), f"AADSTS{code}")
        if "authority configuration" in str(exc) or "OIDC Discovery" in chain:
            what = (
                f"no sign-in configuration for tenant {self.tenant.tenant_id} at {host}. "
                "Check tenant_id, cloud and authority_host"
            )
            return AuthError(self._message(None, what))
        return AuthError(self._message(None, f"{exc}. Check cloud, authority_host and tenant_id"))


SECRET_FILE_LIMIT = 64 * 1024


def _read_small_file(path: Path) -> bytes:
    """At most SECRET_FILE_LIMIT + 1 bytes of a regular file (a FIFO or device would block or never end).
    Symlinks are followed: Kubernetes mounts secrets and projected tokens as links into a data folder."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    with open(path, "rb") as f:
        return f.read(SECRET_FILE_LIMIT + 1)


def read_secret_file(tenant: TenantConfig) -> str:
    """The client secret in client_secret_file (a mounted secret): its text without the line end."""
    path = tenant.client_secret_file
    where = f"tenant '{tenant.name}': client_secret_file {path}"
    try:
        raw = _read_small_file(path)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise AuthError(f"{where} does not exist. Mount the secret there or fix client_secret_file.") from None
    except OSError as exc:
        raise AuthError(f"{where} cannot be read ({exc.strerror or exc}). Make it readable by the job.") from None
    try:
        secret = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise AuthError(f"{where} is not text. It must hold the client secret's value only.") from None
    if not secret or len(raw) > SECRET_FILE_LIMIT or "\n" in secret:
        raise AuthError(f"{where} does not hold one secret value. It must hold the client secret's value only.")
    return secret


def federated_token_path(tenant: TenantConfig) -> Path:
    if tenant.federated_token_file:
        return tenant.federated_token_file
    name = os.environ.get("AZURE_FEDERATED_TOKEN_FILE")
    if not name:
        raise AuthError(
            f"tenant '{tenant.name}': federated_token_file = true, but AZURE_FEDERATED_TOKEN_FILE is not set. "
            'Label the pod for workload identity (azure.workload.identity/use: "true") or mount a projected '
            "service-account token and set federated_token_file to its path."
        )
    return Path(name)


def read_federated_token(tenant: TenantConfig, *, now: float | None = None) -> str:
    """The platform-signed token in the federated token file, read afresh (the platform rotates it)."""
    path = federated_token_path(tenant)
    where = f"tenant '{tenant.name}': federated token file {path}"
    try:
        raw = _read_small_file(path)
    except FileNotFoundError:
        raise AuthError(
            f"{where} does not exist. Mount the projected service-account token there (see deploy/cronjob.yaml)."
        ) from None
    except OSError as exc:
        raise AuthError(f"{where} cannot be read ({exc.strerror or exc}). Make it readable by the job.") from None
    token = raw.decode("utf-8", "replace").strip()
    claims = token_claims(token)
    if not claims or len(raw) > SECRET_FILE_LIMIT:
        raise AuthError(f"{where} does not hold a signed token (a JWT). Point it at the projected token file.")
    register_secret(token)
    exp = claims.get("exp")
    current = time.time() if now is None else now
    if isinstance(exp, int | float) and exp <= current:
        stamp = datetime.fromtimestamp(exp, UTC).strftime("%Y-%m-%d %H:%M:%S")
        raise AuthError(
            f"{where} holds a token that expired at {stamp} UTC: the platform did not rotate it. Check that the "
            "projected service-account token volume is mounted; Kubernetes refreshes it before it expires."
        )
    return token


def token_claims(access_token: str) -> dict:
    """The payload of a JWT, decoded without checking its signature (only for reading claims)."""
    try:
        payload = access_token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
