"""The tenants of a triage: each signed in and collected the way an audit run does, for the listed addresses only.

Sign-in and collection are the runner's (audit.runner.audit_tenant, over audit.session.connect); this
module adds what a triage needs on top: the routing of addresses to tenants and lookups by address.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from audit.auth import AuthError, TokenProvider
from audit.checks._facts import user_addresses
from audit.config import Config, TenantConfig
from audit.graph import GraphClient, GraphError
from audit.models import Finding, MailboxProbe, NotEvaluated, TenantResult, TenantSnapshot, User
from audit.runner import RunOptions, audit_tenant, sign_in_failed
from audit.session import connect
from audit.triage.result import TenantLookup

log = logging.getLogger("audit")

# Every listed mailbox is probed: the triage reads only those, so there is no inventory to save on.
TRIAGE_OPTIONS = RunOptions(probe="all")


@dataclass
class TenantView:
    """One configured tenant during a triage: its connection, the addresses sent to it, what it said."""

    config: TenantConfig
    addresses: list[str] = field(default_factory=list)
    provider: TokenProvider | None = None
    client: GraphClient | None = None
    error: str | None = None
    auth_failed: bool = False
    snapshot: TenantSnapshot | None = None
    findings: list[Finding] = field(default_factory=list)
    not_evaluated: list[NotEvaluated] = field(default_factory=list)
    _owners: dict[str, User] | None = None
    _deleted: dict[str, User] | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def connect(self, config: Config) -> GraphClient | None:
        """Sign in the way an audit run does (audit.session.connect): a token first, then the client."""
        if self.client is not None or self.error is not None:
            return self.client
        try:
            provider, client = connect(self.config, config.audit)
        except AuthError as err:
            log.error("%s: %s", self.name, err)
            self.error, self.auth_failed = f"authentication: {err}", True
            return None
        self.provider, self.client = provider, client
        return self.client

    def verified_domains(self, config: Config) -> frozenset[str]:
        client = self.connect(config)
        if client is None:
            return frozenset()
        try:
            # Read as a collection page: an answer without `value` is retried as a fault, not "no domains".
            pages = client.iter_pages("/organization", params={"$select": "verifiedDomains"})
            org = (next(pages, None) or [{}])[0]
        except GraphError as err:
            log.warning("%s: could not read the verified domains: %s", self.name, err)
            return frozenset()
        return frozenset(str(d.get("name") or "").lower() for d in org.get("verifiedDomains") or ())

    def collect(self, config: Config, now: datetime) -> None:
        """Collect and check the tenant with the runner, for this tenant's addresses only."""
        client = self.connect(config)
        if client is None or self.provider is None:
            return
        result: TenantResult = audit_tenant(
            self.config,
            config,
            TRIAGE_OPTIONS,
            recipients=self.addresses,
            addresses=self.addresses,
            connection=(self.provider, client),
            now=now,
        )
        if result.snapshot is None:
            self.error, self.auth_failed = result.error, sign_in_failed(result)
            return
        self.findings, self.not_evaluated = list(result.findings), list(result.not_evaluated)
        self.snapshot = result.snapshot

    # ---- what the tenant says about an address ---------------------------------------------------

    def owner(self, address: str) -> User | None:
        if self._owners is None:
            self._owners = _owners(self.snapshot.users.value if self.snapshot else None)
        return self._owners.get(address)

    def deleted_owner(self, address: str) -> User | None:
        if self._deleted is None:
            self._deleted = _owners(self.snapshot.deleted_users.value if self.snapshot else None)
        return self._deleted.get(address)

    def user_findings(self, user_id: str) -> dict[str, Finding]:
        return {f.check_id: f for f in self.findings if f.user_id == user_id}

    def tenant_findings(self, check_id: str) -> list[Finding]:
        return [f for f in self.findings if f.check_id == check_id and f.user_id is None]

    def address_finding(self, check_id: str, address: str) -> Finding | None:
        return next(
            (f for f in self.findings if f.check_id == check_id and (f.user_principal_name or "").lower() == address),
            None,
        )

    def probe(self, user: User) -> MailboxProbe | None:
        probes = self.snapshot.probes if self.snapshot else None
        return (probes.value or {}).get(user.id) if probes is not None and probes.ok else None

    def not_checked(self, check_ids: Iterable[str]) -> list[str]:
        wanted = set(check_ids)
        return [f"{n.check_id} ({n.reason})" for n in self.not_evaluated if n.check_id in wanted]

    @property
    def status(self) -> str:
        # The snapshot's collection faults only: a mailbox that could not be probed shows on its own row.
        if self.snapshot is None:
            return "failed"
        return "partial" if self.snapshot.problems else "ok"

    def lookup(self) -> TenantLookup:
        problems = self.error or ("; ".join(self.snapshot.problems) if self.snapshot else None) or None
        return TenantLookup(self.name, self.config.tenant_id, self.status, problems, len(self.addresses))


def _owners(users: Iterable[User] | None) -> dict[str, User]:
    owners: dict[str, User] = {}
    for user in users or ():
        for address in user_addresses(user):
            owners.setdefault(address, user)
    return owners


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def route(
    addresses: Sequence[str], tenants: Sequence[TenantView], config: Config, forced: bool
) -> dict[str, list[TenantView]]:
    """Which tenants each address is looked up in (see the package docstring)."""
    if forced or len(tenants) == 1:
        return {a: list(tenants) for a in addresses}
    routes: dict[str, list[TenantView]] = {}
    pending: list[str] = []
    for address in addresses:
        home = next((t for t in tenants if domain_of(address) in t.config.domains), None)
        if home is not None:
            routes[address] = [home]
        else:
            pending.append(address)
    if pending:
        verified = {t.name: t.verified_domains(config) for t in tenants}
        for address in pending:
            home = next((t for t in tenants if domain_of(address) in verified[t.name]), None)
            routes[address] = [home] if home is not None else list(tenants)
    return routes
