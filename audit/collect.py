"""Read everything the checks need from one tenant, once, into a TenantSnapshot.

Each Graph call is made once per tenant. A dataset that cannot be read carries the reason (and the
permission to grant) instead of an empty value, so no check can pass silently on missing data.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from audit.clouds import GRAPH_APP_ID
from audit.config import Config, TenantConfig
from audit.graph import GraphClient, GraphError
from audit.models import (
    READ_IN_HOME_AUDIT,
    AppScope,
    AssignedPlan,
    Dataset,
    License,
    LicenseState,
    MailboxProbe,
    ProvisionedPlan,
    TenantSnapshot,
    User,
)

log = logging.getLogger("audit")

USER_FIELDS = (
    "id,userPrincipalName,displayName,mail,proxyAddresses,userType,accountEnabled,assignedLicenses,"
    "assignedPlans,provisionedPlans,licenseAssignmentStates,onPremisesSyncEnabled,onPremisesImmutableId,"
    "createdDateTime"
)
DELETED_USER_FIELDS = USER_FIELDS + ",deletedDateTime"
SP_FIELDS = "id,appId,displayName,accountEnabled,signInAudience,appOwnerOrganizationId"
APP_FIELDS = "id,appId,displayName,signInAudience,passwordCredentials,keyCredentials"

# What the audit's own app must hold to read each dataset (least privileged first).
PERMISSION = {
    "users": "User.Read.All",
    "deleted_users": "User.Read.All",
    "organization": "Organization.Read.All",
    "subscribed_skus": "Organization.Read.All",
    "remediation_sp": "Application.Read.All",
    "application": "Application.Read.All",
    "probes": "MailboxSettings.Read",
    "app_scope": "GroupMember.Read.All",
    "usage_report": "Reports.Read.All",
}
NO_MAILBOX_CODES = {"MailboxNotEnabledForRESTAPI", "MailboxNotSupportedForRESTAPI", "ResourceNotFound",
                    "ErrorInvalidUser"}

FILTER_SAFE = " '()=:/@,"  # everything else (#, &, %, +) is percent-encoded inside a batch url
Progress = Callable[[str, int, int | None], None]


def user_from_graph(d: dict) -> User:
    """Turn one Graph user object into the compact record the checks read."""
    return User(
        id=d["id"],
        upn=d.get("userPrincipalName") or "",
        display_name=d.get("displayName"),
        mail=d.get("mail"),
        proxy_addresses=tuple(d.get("proxyAddresses") or ()),
        user_type=d.get("userType") or "Member",
        enabled=bool(d.get("accountEnabled", True)),
        created=d.get("createdDateTime"),
        sync_enabled=d.get("onPremisesSyncEnabled") is True,
        immutable_id=d.get("onPremisesImmutableId"),
        licenses=tuple(
            License(lic["skuId"].lower(), tuple(p.lower() for p in lic.get("disabledPlans") or ()))
            for lic in d.get("assignedLicenses") or ()
        ),
        plans=tuple(
            AssignedPlan((p.get("servicePlanId") or "").lower(), p.get("service") or "",
                         p.get("capabilityStatus") or "")
            for p in d.get("assignedPlans") or ()
        ),
        provisioned=tuple(
            ProvisionedPlan(p.get("service") or "", p.get("capabilityStatus") or "",
                            p.get("provisioningStatus") or "")
            for p in d.get("provisionedPlans") or ()
        ),
        license_states=tuple(
            LicenseState((s.get("skuId") or "").lower(), s.get("state") or "", s.get("error") or None,
                         s.get("assignedByGroup"))
            for s in d.get("licenseAssignmentStates") or ()
        ),
        deleted=d.get("deletedDateTime"),
    )


def probe_from_item(status: int, body: dict | None) -> MailboxProbe:
    """Classify one mailboxSettings answer the way the remediation would experience the mailbox."""
    if status == 200:
        purpose = (body or {}).get("userPurpose")
        if isinstance(purpose, dict):  # v1.0 wraps it: {"value": "shared"}
            purpose = purpose.get("value")
        return MailboxProbe("mailbox", purpose=purpose or "user")
    code = ((body or {}).get("error") or {}).get("code") or str(status)
    if status == 404 and code in NO_MAILBOX_CODES:
        return MailboxProbe("no_mailbox", code=code)
    if status == 403:
        return MailboxProbe("access_denied", code=code)
    return MailboxProbe("failed", code=code)


def should_probe(user: User) -> bool:
    """Members that have, or should have, a mailbox: what the remediation could be asked to touch."""
    if user.is_guest:
        return False
    return user.enabled or bool(user.mail) or bool(user.proxy_addresses) or bool(user.plans)


def read_access_policies(path: Path) -> list[dict]:
    """Rows of a Get-ApplicationAccessPolicy export, as JSON (object or list) or CSV."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith(("[", "{")):
        rows = json.loads(text)
        return [rows] if isinstance(rows, dict) else list(rows)
    return list(csv.DictReader(io.StringIO(text)))


class Collector:
    """One tenant's collection run. Keeps the reasons for anything it could not read."""

    def __init__(self, client: GraphClient, tenant: TenantConfig, config: Config,
                 progress: Progress | None = None):
        self.client = client
        self.tenant = tenant
        self.config = config
        self.progress = progress or (lambda phase, done, total: None)
        self.problems: list[str] = []

    def _missing(self, dataset: str, what: str, err: GraphError) -> Dataset:
        if err.status in (401, 403):
            perm = PERMISSION.get(dataset, "the matching read permission")
            return Dataset.missing(
                f"the audit app may not read {what} (Graph {err.status} {err.code}); grant it the "
                f"application permission {perm} with admin consent")
        self.problems.append(f"{what}: {err}")
        return Dataset.missing(f"Graph failed while reading {what}: {err}")

    def _read(self, dataset: str, what: str, fn: Callable[[], object]) -> Dataset:
        try:
            return Dataset(fn())
        except GraphError as err:
            log.warning("%s: could not read %s: %s", self.tenant.name, what, err)
            return self._missing(dataset, what, err)

    def users(self, path: str, fields: str, phase: str) -> list[User]:
        users: list[User] = []
        for page in self.client.iter_pages(path, params={"$select": fields, "$top": "999"}):
            users.extend(user_from_graph(u) for u in page)
            self.progress(phase, len(users), None)
        return users

    def lookup_users(self, addresses: list[str]) -> list[User]:
        """Only the users owning these addresses (UPN, mail or proxy address), in batches of 20."""
        requests = []
        for i, address in enumerate(addresses):
            a = address.strip().removeprefix("smtp:").removeprefix("SMTP:").replace("'", "''")
            flt = f"userPrincipalName eq '{a}' or mail eq '{a}' or proxyAddresses/any(p:p eq 'smtp:{a}')"
            requests.append({"id": str(i), "method": "GET",
                             "url": f"/users?$filter={quote(flt, safe=FILTER_SAFE)}&$select={USER_FIELDS}"})
        found: dict[str, User] = {}
        for item in self.client.batch(requests, in_flight=2).values():
            if item.status != 200:
                raise GraphError(item.status, ((item.body or {}).get("error") or {}).get("code", ""),
                                 "user lookup failed", None)
            for u in (item.body or {}).get("value") or ():
                found[u["id"]] = user_from_graph(u)
        return list(found.values())

    def count_users(self) -> int | None:
        try:
            text = self.client.get_text("/users/$count", headers={"ConsistencyLevel": "eventual"})
            return int(text.strip().lstrip("\ufeff"))
        except (GraphError, ValueError) as err:
            log.info("%s: the directory did not say how many users it holds: %s", self.tenant.name, err)
            return None

    def first(self, path: str, params: dict) -> dict | None:
        items = self.client.get(path, params=params).get("value") or []
        return items[0] if items else None

    def all_items(self, path: str, params: dict | None = None) -> list[dict]:
        return [item for page in self.client.iter_pages(path, params=params) for item in page]

    def probes(self, users: Iterable[User]) -> dict[str, MailboxProbe]:
        targets = [u for u in users if should_probe(u)]
        requests = [{"id": str(i), "method": "GET", "url": f"/users/{u.id}/mailboxSettings"}
                    for i, u in enumerate(targets)]
        self.progress("probes", 0, len(targets))
        answers = self.client.batch(requests, in_flight=1)
        self.progress("probes", len(answers), len(targets))
        out: dict[str, MailboxProbe] = {}
        for i, user in enumerate(targets):
            item = answers.get(str(i))
            out[user.id] = (probe_from_item(item.status, item.body) if item
                            else MailboxProbe("failed", code="NoAnswer"))
        failed = sum(1 for p in out.values() if p.outcome == "failed")
        if failed:
            self.problems.append(f"{failed} mailbox probes failed after retries; those users were not assessed")
        return out

    def app_scope(self) -> Dataset:
        app = self.config.remediation_app
        if app.access_policy_file is None:
            return Dataset.missing(
                "Graph cannot read Exchange application access policies; export them with "
                "Get-ApplicationAccessPolicy | ConvertTo-Json and name the file in "
                "remediation_app.access_policy_file")
        try:
            rows = read_access_policies(app.access_policy_file)
        except (OSError, ValueError) as err:
            return Dataset.missing(f"could not read the access policy export {app.access_policy_file}: {err}")
        app_id = app.app_id.lower()
        rows = [r for r in rows
                if isinstance(r, dict) and str(r.get("AppId", "")).lower() == app_id and self._policy_here(r)]
        if not rows:
            return Dataset(None)  # the export lists no policy for this app here: no restriction
        restrict: dict[str, frozenset[str]] = {}
        deny: dict[str, frozenset[str]] = {}
        for row in rows:
            scope = str(row.get("ScopeIdentity") or row.get("ScopeName") or "")
            try:
                members = self._scope_members(scope)
            except GraphError as err:
                return self._missing("app_scope", f"members of access policy scope {scope}", err)
            right = str(row.get("AccessRight", "")).lower()
            (deny if right == "denyaccess" else restrict)[scope] = members
        return Dataset(AppScope(restrict=restrict, deny=deny))

    def _policy_here(self, row: dict) -> bool:
        identity = str(row.get("Identity") or "")
        if "\\" not in identity:
            return True  # no tenant named in the row: it applies wherever the export is used
        return identity.split("\\", 1)[0].lower() in {self.tenant.tenant_id.lower(), self.tenant.name.lower()}

    def _scope_members(self, scope: str) -> frozenset[str]:
        group = self.first("/groups", {"$filter": f"mail eq '{scope}'", "$select": "id"}) if "@" in scope \
            else {"id": scope}
        if group is None:  # a scope can also be a single mailbox
            user = self.first("/users", {"$filter": f"mail eq '{scope}'", "$select": "id"})
            return frozenset([user["id"]]) if user else frozenset()
        members = self.all_items(f"/groups/{group['id']}/transitiveMembers/microsoft.graph.user",
                                 {"$select": "id"})
        return frozenset(m["id"] for m in members)


def collect_tenant(client: GraphClient, tenant: TenantConfig, config: Config, *, probe: str = "auto",
                   recipients: list[str] | None = None, audit_roles: tuple[str, ...] = (),
                   progress: Progress | None = None, now: datetime | None = None,
                   addresses: list[str] | None = None) -> TenantSnapshot:
    """Collect one tenant. Raises GraphError only when the user list itself cannot be read for a fault.

    With `addresses`, only the users owning those addresses are read (triage of an error log):
    a 20-row log must not enumerate a 100,000-user tenant.
    """
    c = Collector(client, tenant, config, progress)
    app = config.remediation_app
    started = now or datetime.now(UTC)

    try:
        users = Dataset(c.lookup_users(addresses) if addresses is not None
                        else c.users("/users", USER_FIELDS, "users"))
    except GraphError as err:
        if err.status not in (401, 403):
            raise  # without the user list there is nothing to audit: the tenant failed
        users = c._missing("users", "users", err)
    count = c.count_users() if users.ok and addresses is None else None
    deleted = c._read("deleted_users", "soft-deleted users",
                      lambda: c.users("/directory/deletedItems/microsoft.graph.user", DELETED_USER_FIELDS,
                                      "deleted users"))
    organization = c._read("organization", "the organization",
                           lambda: c.first("/organization", {"$select": "id,displayName,verifiedDomains"}))
    skus = c._read("subscribed_skus", "subscribed SKUs", lambda: c.all_items("/subscribedSkus"))
    sp = c._read("remediation_sp", "the remediation app's service principal",
                 lambda: c.first("/servicePrincipals", {"$filter": f"appId eq '{app.app_id}'",
                                                        "$select": SP_FIELDS}))
    graph_sp = c._read("remediation_sp", "Microsoft Graph's service principal",
                       lambda: c.first("/servicePrincipals", {"$filter": f"appId eq '{GRAPH_APP_ID}'",
                                                              "$select": "id"}))
    graph_sp_id = Dataset((graph_sp.value or {}).get("id")) if graph_sp.ok else graph_sp
    if sp.ok and sp.value:
        sp_id = sp.value["id"]
        roles = c._read("remediation_sp", "the remediation app's application permissions",
                        lambda: c.all_items(f"/servicePrincipals/{sp_id}/appRoleAssignments"))
        delegated = c._read("remediation_sp", "the remediation app's delegated permissions",
                            lambda: c.all_items(f"/servicePrincipals/{sp_id}/oauth2PermissionGrants"))
    else:
        reason = sp.error or "the remediation app has no service principal in this tenant"
        roles = delegated = Dataset.missing(reason)
    application = _application(c, config)

    if probe == "none":
        probes = Dataset.missing("mailbox probes were switched off (--no-probe); user checks used "
                                 "directory data only")
    elif not users.ok:
        probes = Dataset.missing(users.error or "no users")
    else:
        probes = c._read("probes", "mailboxes", lambda: c.probes(users.value or []))

    return TenantSnapshot(
        tenant_name=tenant.name,
        tenant_id=tenant.tenant_id,
        collected_at=started,
        users=users,
        deleted_users=deleted,
        organization=organization,
        subscribed_skus=skus,
        remediation_sp=sp,
        remediation_roles=roles,
        remediation_delegated=delegated,
        graph_sp_id=graph_sp_id,
        application=application,
        probes=probes,
        app_scope=c.app_scope(),
        recipients=Dataset(list(recipients)) if recipients is not None
        else Dataset.missing("no recipients list was given (--recipients FILE)"),
        directory_user_count=count,
        audit_roles=tuple(audit_roles),
        problems=tuple(c.problems),
    )


def _application(c: Collector, config: Config) -> Dataset:
    """The app registration can only be read in its home tenant."""
    app = config.remediation_app
    tenant = c.tenant
    home = app.home_tenant_id
    if home is None:
        return Dataset.missing("remediation_app.home_tenant_id is not set; the app registration "
                               "(sign-in audience, credentials) can only be read in its home tenant")
    if home.lower() != tenant.tenant_id.lower():
        configured = any(t.tenant_id.lower() == home.lower() for t in config.tenants)
        where = READ_IN_HOME_AUDIT if configured else "is not among the configured tenants"
        return Dataset.missing(f"the app registration lives in its home tenant {home}, which {where}")
    return c._read("application", "the remediation app's registration",
                   lambda: c.first("/applications", {"$filter": f"appId eq '{app.app_id}'",
                                                     "$select": APP_FIELDS}))
