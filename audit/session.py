"""Signing in to a tenant and the context its checks run in: shared by the audit, triage and mail."""

from __future__ import annotations

from datetime import datetime

from audit.auth import TokenProvider, graph_base
from audit.checks import CheckContext
from audit.config import AuditConfig, Config, TenantConfig
from audit.graph import GraphClient


def tls_verify(audit: AuditConfig) -> str | bool:
    """requests' `verify`: the configured CA bundle, else the system's trust store. Never False."""
    return str(audit.ca_bundle) if audit.ca_bundle else True


def connect(tenant: TenantConfig, audit: AuditConfig, *, sign_in: bool = True) -> tuple[TokenProvider, GraphClient]:
    """A token provider and a Graph client for the tenant. With sign_in, a token is fetched now, so a bad
    secret or an unknown tenant raises AuthError here rather than on the first Graph call."""
    verify = tls_verify(audit)
    provider = TokenProvider(tenant, verify=verify, proxy=audit.proxy)
    if sign_in:
        provider.token()
    return provider, GraphClient(graph_base(tenant), provider, verify=verify, proxy=audit.proxy)


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
