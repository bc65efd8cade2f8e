"""Configuration: a TOML file, validated strictly. Every error names the file, the key and the fix.

Messages read `<file>: <key path>: <what is wrong>. <how to fix>.` Key paths count array items from 0
(`tenants[0]` is the first tenant). Secrets never live in the file: it names environment variables.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from audit.clouds import CLOUDS
from audit.cron import CRON_HINT, cron_trigger
from audit.logs import register_secret
from audit.models import Severity

log = logging.getLogger("audit")


class ConfigError(Exception):
    """A configuration problem the user must fix. str(e) is the whole message shown to them."""


@dataclass(frozen=True)
class TenantConfig:
    name: str
    tenant_id: str
    client_id: str
    client_secret_env: str | None = None  # name of the environment variable holding the secret
    client_secret_file: Path | None = None  # a file holding the secret (a mounted Kubernetes secret)
    certificate_path: Path | None = None  # PEM with the private key (and optionally the certificate)
    certificate_thumbprint: str | None = None  # SHA-1 hex of the certificate
    cloud: str = "global"
    domains: tuple[str, ...] = ()  # domains the remediation product is set up for in this tenant
    authority_host: str | None = None  # override of the cloud's login host (simulator, proxies)
    graph_endpoint: str | None = None  # override of the cloud's Graph root
    # Workload identity federation: a platform-signed token file sent as the client assertion. With
    # federated_token_from_env the path comes from AZURE_FEDERATED_TOKEN_FILE when signing in.
    federated_token_file: Path | None = None
    federated_token_from_env: bool = False
    managed_identity: str | None = None  # "system", or the client id of a user-assigned identity


@dataclass(frozen=True)
class RemediationAppConfig:
    app_id: str
    home_tenant_id: str | None = None
    access_policy_file: Path | None = None  # Get-ApplicationAccessPolicy export, JSON or CSV
    credential_warning_days: int = 30
    # Exchange RBAC for Applications exports (see audit/rbac.py for what each holds)
    role_assignments_file: Path | None = None  # Get-ManagementRoleAssignment -RoleAssigneeType ServicePrincipal
    management_scopes_file: Path | None = None  # Get-ManagementScope
    exchange_service_principals_file: Path | None = None  # Get-ServicePrincipal (optional)


@dataclass(frozen=True)
class AuditConfig:
    out_dir: Path = Path("reports")
    fail_on: str = "high"  # severity at or above which the exit code is 1
    keep: int = 12  # old reports retained in out_dir
    ca_bundle: Path | None = None
    proxy: str | None = None  # may name a user (http://user@host:port); the password comes from the next key
    proxy_password_env: str | None = None  # environment variable with the proxy password
    probe: str = "auto"  # auto (inventory first, probe the rest) | all | none
    formats: tuple[str, ...] = ("xlsx", "json")
    tenant_concurrency: int = 4
    exceptions_file: Path | None = None
    max_outlook_concurrency: int = 16  # Outlook probes in flight per app, at most (the audit learns Graph's cap)


@dataclass(frozen=True)
class EmailConfig:
    to: tuple[str, ...] = ()
    transport: str = "smtp"  # smtp | graph
    sender: str | None = None  # From address; for graph, the mailbox that sends
    sender_tenant: str | None = None  # for graph: name of the configured tenant that sends
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: str = "starttls"  # starttls | tls | none
    smtp_username_env: str | None = None
    smtp_password_env: str | None = None
    only_on_change: bool = False
    webhook_url_env: str | None = None  # deprecated spelling of [webhook] url_env, still read


@dataclass(frozen=True)
class WebhookConfig:
    url_env: str  # environment variable holding the incoming webhook's https:// URL (itself a credential)
    only_on_change: bool = False


@dataclass(frozen=True)
class ScheduleConfig:
    cron: str = "0 6 * * 1"
    timezone: str = "UTC"
    misfire_grace_seconds: int = 3600
    heartbeat_file: Path | None = None  # None: a private folder (audit.schedule.default_heartbeat_file)


@dataclass(frozen=True)
class Config:
    path: Path
    tenants: tuple[TenantConfig, ...]
    remediation_app: RemediationAppConfig
    audit: AuditConfig = field(default_factory=AuditConfig)
    email: EmailConfig | None = None
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    webhook: WebhookConfig | None = None


# ---------------------------------------------------------------------------------------------------
# Shapes of values

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EMAIL_RE = re.compile(r"^[^@\s<>\"',;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,63}$")
THUMBPRINT_RE = re.compile(r"^[0-9a-fA-F]{40}$")
SECRET_KEYS = frozenset(
    {
        "client_secret",
        "secret",
        "password",
        "smtp_password",
        "api_key",
        "token",
        "access_token",
        "private_key",
    }
)
SECRET_HINT = "put the secret in an environment variable and name that variable in client_secret_env"
SEVERITIES = tuple(s.value for s in Severity.worst_first())


class _Loader:
    """Walks the parsed TOML; each `take_*` reads one key, checks its type and shape, or raises."""

    def __init__(self, path: Path):
        self.path = path
        self.base = path.parent

    def fail(self, where: str, problem: str, fix: str) -> ConfigError:
        fix = fix[:1].upper() + fix[1:]
        end = "" if fix.endswith(("?", ".")) else "."
        return ConfigError(f"{self.path}: {where}: {problem}. {fix}{end}")

    # ---- tables ---------------------------------------------------------------------------------

    def table(self, data: dict, where: str, known: tuple[str, ...]) -> None:
        """Refuse literal secrets and unknown keys in one table (not nested ones)."""
        for key in data:
            at = f"{where}.{key}" if where else key
            lowered = key.lower()
            if lowered in SECRET_KEYS or (lowered.endswith(("_secret", "_password")) and not lowered.endswith("_env")):
                raise self.fail(
                    at,
                    "secrets are not accepted in the config file",
                    f"{SECRET_HINT} (for SMTP: smtp_password_env)",
                )
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys here: {', '.join(known)}"
                raise self.fail(at, f"unknown key '{key}'", f"Remove it or fix its spelling; {hint}")

    def sub_table(self, data: dict, key: str, required: bool) -> dict | None:
        if key not in data:
            if required:
                raise self.fail(key, f"required section [{key}] is missing", f"add a [{key}] section")
            return None
        value = data[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_kind(value)}", f"write it as a [{key}] section")
        return value

    # ---- scalars --------------------------------------------------------------------------------

    def take(self, data: dict, where: str, key: str, kind: type, example: str, required: bool = False) -> Any:
        at = f"{where}.{key}" if where else key
        if key not in data:
            if required:
                raise self.fail(where or key, f"required key '{key}' is missing", f"add {key} = {example}")
            return None
        value = data[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok:
            raise self.fail(at, f"expected {_kind_name(kind)}, got {_kind(value)}", f"write it like {key} = {example}")
        if isinstance(value, str) and not value.strip():
            raise self.fail(at, "is empty", f"write it like {key} = {example} or remove the key")
        return value.strip() if isinstance(value, str) else value

    def take_id(
        self, data: dict, where: str, key: str, fix: str, *, domain_ok: bool = False, required: bool = False
    ) -> str | None:
        """A GUID (or, with domain_ok, a tenant's domain name) written as a string."""
        value = self.take(data, where, key, str, GUID_EXAMPLE, required=required)
        if value is not None:
            what = "neither a GUID nor a domain name" if domain_ok else "not a GUID"
            ok = _is_tenant_ref(value) if domain_ok else bool(GUID_RE.match(value))
            self.check(ok, f"{where}.{key}", f"'{value}' is {what}", fix)
        return value

    def take_str_list(self, data: dict, where: str, key: str, example: str) -> tuple[str, ...] | None:
        at = f"{where}.{key}"
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(at, f"expected a list of strings, got {_kind(value)}", f"write it like {key} = {example}")
        return tuple(v.strip() for v in value)

    def take_choice(
        self, data: dict, where: str, key: str, choices: tuple[str, ...], default: str | None
    ) -> str | None:
        value = self.take(data, where, key, str, f'"{choices[0]}"')
        if value is None:
            return default
        if value.lower() not in choices:
            raise self.fail(
                f"{where}.{key}",
                f"'{value}' is not one of {', '.join(choices)}",
                f"use one of {', '.join(choices)}",
            )
        return value.lower()

    def take_int(self, data: dict, where: str, key: str, default: int, low: int, high: int | None = None) -> int:
        value = self.take(data, where, key, int, str(max(low, default)))
        if value is None:
            return default
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise self.fail(f"{where}.{key}", f"{value} is out of range", f"use a whole number {bound}")
        return value

    def take_env(self, data: dict, where: str, key: str, example: str, must_be_set: bool = False) -> str | None:
        """A key naming an environment variable: refuse values that look like the secret itself."""
        at = f"{where}.{key}"
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(at, f"expected a string, got {_kind(value)}", f"write it like {key} = {example}")
        if not ENV_NAME_RE.match(value):
            # Never echo the value: it may be the secret itself.
            raise self.fail(
                at,
                "this is not an environment variable name (it looks like a literal secret)",
                f"{SECRET_HINT}; a name has only letters, digits and '_', e.g. {key} = {example}",
            )
        if must_be_set and not os.environ.get(value):
            raise self.fail(
                at,
                f"environment variable {value} is not set (or is empty)",
                f"set {value} in the job's environment before running, or name another variable",
            )
        return value

    def take_path(self, data: dict, where: str, key: str, example: str, must_exist: bool = False) -> Path | None:
        value = self.take(data, where, key, str, example)
        if value is None:
            return None
        try:
            path = self.resolve(value)
        except (RuntimeError, ValueError, OSError):
            raise self.fail(
                f"{where}.{key}", f"'{value}' is not a usable path", f"write it like {key} = {example}"
            ) from None
        if must_exist:
            if not path.is_file():
                problem = "is a folder, not a file" if path.is_dir() else "does not exist"
                raise self.fail(f"{where}.{key}", f"{path} {problem}", "point it at an existing file")
            if not os.access(path, os.R_OK):
                raise self.fail(f"{where}.{key}", f"{path} cannot be read", "make the file readable by the job")
        return path

    def resolve(self, value: str) -> Path:
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base / path).resolve()

    def take_url(self, data: dict, where: str, key: str, schemes: tuple[str, ...]) -> str | None:
        value = self.take(data, where, key, str, f'"{schemes[0]}://host.example"')
        if value is None:
            return None
        m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://[^/\s]+(/\S*)?$", value)
        if not m or m.group(1).lower() not in schemes:
            raise self.fail(
                f"{where}.{key}",
                f"'{without_credentials(value)}' is not a {' or '.join(schemes)} URL",
                f'write a full URL such as "{schemes[0]}://host.example"',
            )
        return value.rstrip("/")

    def check(self, ok: bool, at: str, problem: str, fix: str) -> None:
        if not ok:
            raise self.fail(at, problem, fix)


def _kind(value: object) -> str:
    return {
        bool: "true/false",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


def _kind_name(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", str: "a string"}.get(kind, kind.__name__)


def _is_tenant_ref(value: str) -> bool:
    return bool(GUID_RE.match(value) or DOMAIN_RE.match(value))


# ---------------------------------------------------------------------------------------------------
# Sections

TOP_KEYS = ("tenants", "remediation_app", "audit", "email", "schedule", "webhook")
TENANT_KEYS = (
    "name",
    "tenant_id",
    "client_id",
    "client_secret_env",
    "client_secret_file",
    "certificate_path",
    "certificate_thumbprint",
    "federated_token_file",
    "managed_identity",
    "cloud",
    "domains",
    "authority_host",
    "graph_endpoint",
)
APP_KEYS = (
    "app_id",
    "home_tenant_id",
    "access_policy_file",
    "credential_warning_days",
    "role_assignments_file",
    "management_scopes_file",
    "exchange_service_principals_file",
)
AUDIT_KEYS = (
    "out_dir",
    "fail_on",
    "keep",
    "ca_bundle",
    "proxy",
    "proxy_password_env",
    "probe",
    "formats",
    "tenant_concurrency",
    "exceptions_file",
    "max_outlook_concurrency",
)
EMAIL_KEYS = (
    "to",
    "transport",
    "sender",
    "sender_tenant",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username_env",
    "smtp_password_env",
    "only_on_change",
    "webhook_url_env",
)
WEBHOOK_KEYS = ("url_env", "only_on_change")
SCHEDULE_KEYS = ("cron", "timezone", "misfire_grace_seconds", "heartbeat_file")
GUID_EXAMPLE = '"00000000-0000-0000-0000-000000000000"'


def _tenants(ld: _Loader, data: dict) -> tuple[TenantConfig, ...]:
    raw = data.get("tenants")
    if raw is None:
        raise ld.fail("tenants", "no tenant is configured", "add at least one [[tenants]] section")
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
        raise ld.fail("tenants", "expected one or more [[tenants]] sections", "write each tenant as [[tenants]]")
    tenants: list[TenantConfig] = []
    seen: dict[str, int] = {}
    for i, t in enumerate(raw):
        w = f"tenants[{i}]"
        ld.table(t, w, TENANT_KEYS)
        name = ld.take(t, w, "name", str, '"contoso"', required=True)
        if name.lower() in seen:
            raise ld.fail(
                f"{w}.name",
                f"'{name}' is already used by tenants[{seen[name.lower()]}]",
                "give each tenant a unique name",
            )
        seen[name.lower()] = i
        tenant_id = ld.take_id(
            t,
            w,
            "tenant_id",
            "use the directory (tenant) ID GUID or a verified domain such as contoso.onmicrosoft.com",
            domain_ok=True,
            required=True,
        )
        client_id = ld.take_id(t, w, "client_id", "use the audit app's application (client) ID, a GUID", required=True)
        # Whether a secret variable is set, or a secret or token file exists, is checked when the tenant
        # signs in: one tenant's missing credential fails that tenant, not the whole run.
        secret_env = ld.take_env(t, w, "client_secret_env", '"CONTOSO_AUDIT_SECRET"')
        secret_file = ld.take_path(t, w, "client_secret_file", '"/var/run/secrets/etd-audit/contoso"')
        cert_path = ld.take_path(t, w, "certificate_path", '"certs/audit.pem"')
        thumbprint = ld.take(t, w, "certificate_thumbprint", str, '"<40 hex digits>"')
        token_file, token_from_env = _federated_token_file(ld, t, w)
        managed = _managed_identity(ld, t, w)
        given = [
            key
            for key, value in (
                ("client_secret_env", secret_env),
                ("client_secret_file", secret_file),
                ("certificate_path", cert_path),
                ("federated_token_file", token_file or token_from_env or None),
                ("managed_identity", managed),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ld.fail(
                w,
                f"needs exactly one credential, one of {', '.join(CREDENTIAL_KEYS)}"
                + (f" ({' and '.join(given)} are set)" if given else " (none is set)"),
                "keep federated_token_file (workload identity) or managed_identity to sign in without a stored"
                " secret; client_secret_env or client_secret_file for a secret; or certificate_path with"
                " certificate_thumbprint for a certificate",
            )
        if cert_path is not None and thumbprint is None:
            raise ld.fail(
                w,
                "certificate_path is set but certificate_thumbprint is missing",
                "add certificate_thumbprint = \"<SHA-1 thumbprint shown for the certificate in the app's"
                ' Certificates & secrets page>"',
            )
        if thumbprint is not None:
            if cert_path is None:
                raise ld.fail(
                    f"{w}.certificate_thumbprint",
                    "is set without certificate_path",
                    "add certificate_path (the PEM file with the private key) or remove the thumbprint",
                )
            thumbprint = re.sub(r"[\s:]", "", thumbprint).upper()
            ld.check(
                bool(THUMBPRINT_RE.match(thumbprint)),
                f"{w}.certificate_thumbprint",
                "is not a SHA-1 thumbprint (40 hex digits)",
                "copy the thumbprint from the app's Certificates & secrets page",
            )
        cloud = ld.take_choice(t, w, "cloud", tuple(CLOUDS), "global")
        domains = ld.take_str_list(t, w, "domains", '["contoso.com"]') or ()
        for j, d in enumerate(domains):
            ld.check(
                bool(DOMAIN_RE.match(d)),
                f"{w}.domains[{j}]",
                f"'{d}' is not a domain name",
                "list plain domain names such as contoso.com",
            )
        tenants.append(
            TenantConfig(
                name=name,
                tenant_id=tenant_id,
                client_id=client_id,
                client_secret_env=secret_env,
                client_secret_file=secret_file,
                certificate_path=cert_path,
                certificate_thumbprint=thumbprint,
                cloud=cloud or "global",
                domains=tuple(d.lower() for d in domains),
                authority_host=ld.take_url(t, w, "authority_host", ("https",)),
                graph_endpoint=ld.take_url(t, w, "graph_endpoint", ("https",)),
                federated_token_file=token_file,
                federated_token_from_env=token_from_env,
                managed_identity=managed,
            )
        )
    return tuple(tenants)


CREDENTIAL_KEYS = (
    "federated_token_file",
    "managed_identity",
    "client_secret_env",
    "client_secret_file",
    "certificate_path",
)


def _federated_token_file(ld: _Loader, t: dict, w: str) -> tuple[Path | None, bool]:
    """federated_token_file: a path, or true for the file the platform names in AZURE_FEDERATED_TOKEN_FILE."""
    value = t.get("federated_token_file")
    if value is True:
        return None, True
    if value is False:
        raise ld.fail(
            f"{w}.federated_token_file",
            "false is not a token file",
            "remove the key, or set it to true (the platform's AZURE_FEDERATED_TOKEN_FILE) or to a path",
        )
    return ld.take_path(t, w, "federated_token_file", "true"), False


def _managed_identity(ld: _Loader, t: dict, w: str) -> str | None:
    value = ld.take(t, w, "managed_identity", str, '"system"')
    if value is None:
        return None
    if value.lower() == "system":
        return "system"
    ld.check(
        bool(GUID_RE.match(value)),
        f"{w}.managed_identity",
        f"'{value}' is neither \"system\" nor a client id",
        'write managed_identity = "system" for the system-assigned identity, or the client id (a GUID) of a'
        " user-assigned one",
    )
    return value.lower()


def _remediation_app(ld: _Loader, data: dict) -> RemediationAppConfig:
    w = "remediation_app"
    t = ld.sub_table(data, w, required=True)
    assert t is not None
    ld.table(t, w, APP_KEYS)
    app_id = ld.take_id(
        t, w, "app_id", "use the application (client) ID of the remediation product's app", required=True
    )
    home = ld.take_id(
        t, w, "home_tenant_id", "use the tenant ID where the remediation app is registered", domain_ok=True
    )
    return RemediationAppConfig(
        app_id=app_id.lower(),
        home_tenant_id=home,
        access_policy_file=ld.take_path(t, w, "access_policy_file", '"access-policies.json"', must_exist=True),
        credential_warning_days=ld.take_int(t, w, "credential_warning_days", 30, 0, 3650),
        role_assignments_file=ld.take_path(t, w, "role_assignments_file", '"role-assignments.json"', must_exist=True),
        management_scopes_file=ld.take_path(
            t, w, "management_scopes_file", '"management-scopes.json"', must_exist=True
        ),
        exchange_service_principals_file=ld.take_path(
            t, w, "exchange_service_principals_file", '"exchange-service-principals.json"', must_exist=True
        ),
    )


def _audit(ld: _Loader, data: dict) -> AuditConfig:
    w = "audit"
    t = ld.sub_table(data, w, required=False) or {}
    ld.table(t, w, AUDIT_KEYS)
    formats = ld.take_str_list(t, w, "formats", '["xlsx", "json"]')
    if formats is not None:
        from audit.report.formats import FORMATS  # late: the report package imports this module's neighbours

        bad = [f for f in formats if f.lower() not in FORMATS]
        ld.check(
            not bad and bool(formats),
            f"{w}.formats",
            f"unknown format {bad[0]!r}" if bad else "is empty",
            f"list one or more of {', '.join(FORMATS)}",
        )
        formats = tuple(dict.fromkeys(f.lower() for f in formats))
    proxy = ld.take_url(t, w, "proxy", ("http", "https", "socks5", "socks5h"))
    proxy_password_env = ld.take_env(t, w, "proxy_password_env", '"AUDIT_PROXY_PASSWORD"')
    _check_proxy_credentials(ld, proxy, proxy_password_env)
    return AuditConfig(
        out_dir=ld.take_path(t, w, "out_dir", '"reports"') or ld.base / "reports",
        fail_on=ld.take_choice(t, w, "fail_on", SEVERITIES, "high") or "high",
        keep=ld.take_int(t, w, "keep", 12, 1),
        ca_bundle=ld.take_path(t, w, "ca_bundle", '"corp-ca.pem"', must_exist=True),
        proxy=proxy,
        proxy_password_env=proxy_password_env,
        probe=ld.take_choice(t, w, "probe", ("auto", "all", "none"), "auto") or "auto",
        formats=formats or ("xlsx", "json"),
        tenant_concurrency=ld.take_int(t, w, "tenant_concurrency", 4, 1, 64),
        exceptions_file=ld.take_path(t, w, "exceptions_file", '"exceptions.toml"', must_exist=True),
        max_outlook_concurrency=ld.take_int(t, w, "max_outlook_concurrency", 16, 1, 64),
    )


def _check_proxy_credentials(ld: _Loader, proxy: str | None, password_env: str | None) -> None:
    """The proxy password comes from proxy_password_env, for the user named in the proxy URL."""
    if proxy is None:
        ld.check(
            password_env is None,
            "audit.proxy_password_env",
            "is set but audit.proxy is not",
            'add proxy = "http://user@proxy.contoso.com:8080", or remove proxy_password_env',
        )
        return
    split = urlsplit(proxy)
    if split.password is not None:
        register_secret(split.password)
        register_secret(unquote(split.password))
    if password_env is None:
        return
    ld.check(
        split.password is None,
        "audit.proxy",
        "the URL carries a password and proxy_password_env is set as well",
        "remove the password from the URL; it is taken from the variable in proxy_password_env",
    )
    ld.check(
        bool(split.username),
        "audit.proxy",
        f"'{proxy}' names no user for the password in proxy_password_env",
        'write the user name into the URL, e.g. proxy = "http://audit@proxy.contoso.com:8080"',
    )


def is_loopback(host: str) -> bool:
    """localhost or a loopback address (127.0.0.0/8, ::1): traffic that never leaves the machine."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def without_credentials(url: str) -> str:
    """A URL fit for an error message: any user name and password replaced by ***."""
    if "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    return f"{scheme}{sep}***@{rest.rpartition('@')[2]}"


def _email(ld: _Loader, data: dict, tenants: tuple[TenantConfig, ...]) -> EmailConfig | None:
    w = "email"
    t = ld.sub_table(data, w, required=False)
    if t is None:
        return None
    ld.table(t, w, EMAIL_KEYS)
    to = ld.take_str_list(t, w, "to", '["secops@contoso.com"]')
    if not to:
        raise ld.fail(f"{w}.to", "no recipient is listed", 'add to = ["secops@contoso.com"]')
    for j, addr in enumerate(to):
        ld.check(
            bool(EMAIL_RE.match(addr)),
            f"{w}.to[{j}]",
            f"'{addr}' is not an e-mail address",
            "fix the address",
        )
    transport = ld.take_choice(t, w, "transport", ("smtp", "graph"), "smtp") or "smtp"
    sender = ld.take(t, w, "sender", str, '"etd-audit@contoso.com"')
    if sender is None:
        raise ld.fail(w, "required key 'sender' is missing", 'add sender = "etd-audit@contoso.com"')
    ld.check(bool(EMAIL_RE.match(sender)), f"{w}.sender", f"'{sender}' is not an e-mail address", "fix the address")
    sender_tenant = ld.take(t, w, "sender_tenant", str, '"contoso"')
    smtp_host = ld.take(t, w, "smtp_host", str, '"smtp.contoso.com"')
    user_env = ld.take_env(t, w, "smtp_username_env", '"SMTP_USERNAME"')
    pass_env = ld.take_env(t, w, "smtp_password_env", '"SMTP_PASSWORD"')
    if transport == "graph":
        names = [x.name for x in tenants]
        if sender_tenant is None:
            raise ld.fail(
                w,
                "transport 'graph' needs sender_tenant",
                f"add sender_tenant = the name of the sending tenant, one of {', '.join(names)}",
            )
        ld.check(
            sender_tenant in names,
            f"{w}.sender_tenant",
            f"'{sender_tenant}' is not the name of a configured tenant",
            f"use one of {', '.join(names)}",
        )
        for key, value in (
            ("smtp_host", smtp_host),
            ("smtp_username_env", user_env),
            ("smtp_password_env", pass_env),
        ):
            ld.check(value is None, f"{w}.{key}", "is only used with transport 'smtp'", "remove it")
    else:
        if smtp_host is None:
            raise ld.fail(w, "transport 'smtp' needs smtp_host", 'add smtp_host = "smtp.contoso.com"')
        ld.check(sender_tenant is None, f"{w}.sender_tenant", "is only used with transport 'graph'", "remove it")
        ld.check(
            (user_env is None) == (pass_env is None),
            w,
            "smtp_username_env and smtp_password_env must be set together",
            "set both to sign in to the SMTP server, or neither to send without signing in",
        )
    security = ld.take_choice(t, w, "smtp_security", ("starttls", "tls", "none"), "starttls") or "starttls"
    if transport == "smtp" and security == "none" and pass_env is not None and not is_loopback(smtp_host or ""):
        raise ld.fail(
            f"{w}.smtp_security",
            f"'none' would send the SMTP password in {pass_env} in clear to {smtp_host}",
            'use smtp_security = "starttls" (port 587) or "tls" (port 465); "none" is only accepted without '
            "smtp_username_env/smtp_password_env, or for a relay on this machine (localhost, 127.0.0.1)",
        )
    webhook_env = _webhook_url_env(ld, t, w, "webhook_url_env")
    return EmailConfig(
        to=tuple(to),
        transport=transport,
        sender=sender,
        sender_tenant=sender_tenant,
        smtp_host=smtp_host,
        smtp_port=ld.take_int(t, w, "smtp_port", 587, 1, 65535),
        smtp_security=security,
        smtp_username_env=user_env,
        smtp_password_env=pass_env,
        only_on_change=bool(ld.take(t, w, "only_on_change", bool, "false")),
        webhook_url_env=webhook_env,
    )


def _webhook_url_env(ld: _Loader, t: dict, w: str, key: str) -> str | None:
    """A key naming the variable with the webhook URL, which must be https:// (the URL grants posting)."""
    webhook_env = ld.take_env(t, w, key, '"AUDIT_WEBHOOK_URL"')
    if webhook_env is not None:
        url = os.environ.get(webhook_env, "")
        register_secret(url)
        ld.check(
            is_https_url(url),
            f"{w}.{key}",
            f"the URL in environment variable {webhook_env} is not an https:// URL (the URL itself grants "
            "posting, so it must not travel in clear)",
            f"put the webhook's https:// URL in {webhook_env}",
        )
    return webhook_env


_DEPRECATIONS_LOGGED: set[str] = set()


def _deprecated(ld: _Loader, key: str, message: str) -> None:
    """Log a deprecation once per file and key in a process (the scheduler reloads the config every run)."""
    seen = f"{ld.path}:{key}"
    if seen not in _DEPRECATIONS_LOGGED:
        _DEPRECATIONS_LOGGED.add(seen)
        log.warning("%s: %s", ld.path, message)


def _webhook(ld: _Loader, data: dict, email: EmailConfig | None) -> WebhookConfig | None:
    """[webhook] url_env; the older [email] webhook_url_env is still read, with a deprecation warning."""
    w = "webhook"
    t = ld.sub_table(data, w, required=False)
    old = email.webhook_url_env if email else None
    if t is None:
        if old is None:
            return None
        _deprecated(
            ld,
            "email.webhook_url_env",
            f'email.webhook_url_env is deprecated; move it to a [webhook] section as url_env = "{old}" '
            "(it is still read for now)",
        )
        return WebhookConfig(url_env=old, only_on_change=bool(email and email.only_on_change))
    ld.table(t, w, WEBHOOK_KEYS)
    ld.check(
        old is None,
        "email.webhook_url_env",
        "is set as well as the [webhook] section",
        "remove email.webhook_url_env; [webhook] url_env replaces it",
    )
    url_env = _webhook_url_env(ld, t, w, "url_env")
    if url_env is None:
        raise ld.fail(w, "required key 'url_env' is missing", 'add url_env = "AUDIT_WEBHOOK_URL"')
    return WebhookConfig(url_env=url_env, only_on_change=bool(ld.take(t, w, "only_on_change", bool, "false")))


def is_https_url(url: str) -> bool:
    try:
        split = urlsplit(url.strip())
    except ValueError:
        return False
    return split.scheme.lower() == "https" and bool(split.hostname)


def _schedule(ld: _Loader, data: dict) -> ScheduleConfig:
    w = "schedule"
    t = ld.sub_table(data, w, required=False) or {}
    ld.table(t, w, SCHEDULE_KEYS)
    defaults = ScheduleConfig()
    zone = ld.take(t, w, "timezone", str, '"Europe/Berlin"') or defaults.timezone
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ld.fail(
            f"{w}.timezone",
            f"'{zone}' is not a known time zone",
            'use an IANA name such as "UTC" or "Europe/Berlin"',
        ) from None
    cron = ld.take(t, w, "cron", str, '"0 6 * * 1"') or defaults.cron
    try:
        cron_trigger(cron, zone)
    except ValueError as exc:
        raise ld.fail(
            f"{w}.cron",
            f"'{cron}' is not a valid cron expression ({exc})",
            CRON_HINT,
        ) from None
    return ScheduleConfig(
        cron=" ".join(cron.split()),
        timezone=zone,
        misfire_grace_seconds=ld.take_int(t, w, "misfire_grace_seconds", defaults.misfire_grace_seconds, 1),
        heartbeat_file=ld.take_path(t, w, "heartbeat_file", '"/var/lib/etd-audit/heartbeat"')
        or defaults.heartbeat_file,
    )


# ---------------------------------------------------------------------------------------------------


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming file, key and fix."""
    file = Path(path).expanduser()
    try:
        file = file.resolve()
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{file}: the config file does not exist. Check the path, or copy config/example.toml."
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder, not a config file. Give the path of the .toml file.") from None
    except OSError as exc:
        raise ConfigError(
            f"{file}: the config file cannot be read ({exc.strerror or exc}). Make it readable by the job."
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: is not a UTF-8 text file. Give the path of the TOML config file.") from None
    if "\x00" in text:
        raise ConfigError(f"{file}: is a binary file, not TOML. Give the path of the TOML config file.")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", msg)
        where = f"line {m.group(1)}, column {m.group(2)}" if m else "syntax"
        what = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", msg)
        if "end of document" in msg:
            where = "end of file"
        raise ConfigError(
            f"{file}: {where}: not valid TOML ({what}). Fix the syntax there; strings need double quotes."
        ) from None
    ld = _Loader(file)
    ld.table(data, "", TOP_KEYS)
    tenants = _tenants(ld, data)
    app, audit, email = _remediation_app(ld, data), _audit(ld, data), _email(ld, data, tenants)
    return Config(
        path=file,
        tenants=tenants,
        remediation_app=app,
        audit=audit,
        email=email,
        schedule=_schedule(ld, data),
        webhook=_webhook(ld, data, email),
    )


__all__ = [
    "AuditConfig",
    "Config",
    "ConfigError",
    "EmailConfig",
    "RemediationAppConfig",
    "ScheduleConfig",
    "TenantConfig",
    "WebhookConfig",
    "load_config",
]
