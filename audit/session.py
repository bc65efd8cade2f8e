"""Signing in to a tenant and the context its checks run in: shared by the audit, triage and mail."""

from __future__ import annotations

import os
from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

from audit.auth import TokenProvider, graph_base
from audit.checks import CheckContext
from audit.config import AuditConfig, Config, ConfigError, TenantConfig
from audit.graph import GraphClient
from audit.logs import register_secret


def tls_verify(audit: AuditConfig) -> str | bool:
    """requests' `verify`: the configured CA bundle, else the system's trust store. Never False."""
    return str(audit.ca_bundle) if audit.ca_bundle else True


def proxy_url(audit: AuditConfig) -> str | None:
    """The proxy URL to use, with the password from audit.proxy_password_env put in at run time.

    The password is registered for redaction, both as read and percent-encoded as it sits in the URL.
    """
    if not audit.proxy or not audit.proxy_password_env:
        return audit.proxy
    password = os.environ.get(audit.proxy_password_env)
    if not password:
        raise ConfigError(
            f"audit.proxy_password_env: environment variable {audit.proxy_password_env} is not set (or is "
            "empty). Set it to the proxy password in the job's environment."
        )
    encoded = quote(password, safe="")
    register_secret(password)
    register_secret(encoded)
    split = urlsplit(audit.proxy)
    user, _, host = split.netloc.rpartition("@")
    return urlunsplit(split._replace(netloc=f"{user}:{encoded}@{host}"))


def connect(tenant: TenantConfig, audit: AuditConfig, *, sign_in: bool = True) -> tuple[TokenProvider, GraphClient]:
    """A token provider and a Graph client for the tenant. With sign_in, a token is fetched now, so a bad
    secret or an unknown tenant raises AuthError here rather than on the first Graph call."""
    verify = tls_verify(audit)
    proxy = proxy_url(audit)
    provider = TokenProvider(tenant, verify=verify, proxy=proxy)
    if sign_in:
        provider.token()
    return provider, GraphClient(graph_base(tenant), provider, verify=verify, proxy=proxy)


def check_context(tenant: TenantConfig, config: Config, now: datetime) -> CheckContext:
    return CheckContext(
        now=now,
        tenant_count=len(config.tenants),
        configured_tenant_ids=frozenset(t.tenant_id.lower() for t in config.tenants),
        remediation_app=config.remediation_app,
        domains=tenant.domains,
        other_domains=frozenset(d.lower() for t in config.tenants if t is not tenant for d in t.domains),
        first_tenant=tenant is config.tenants[0],
    )
