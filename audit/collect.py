"""Read everything the checks need from one tenant, once, into a TenantSnapshot.

Each Graph call is made once per tenant. A dataset that cannot be read carries the reason (and the
permission to grant) instead of an empty value, so no check can pass silently on missing data.
"""

from __future__ import annotations

import contextvars
import csv
import heapq
import io
import logging
import queue
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from audit import logs, opath, rbac
from audit.clouds import CLOUDS, GRAPH_APP_ID
from audit.config import Config, TenantConfig
from audit.graph import (
    BATCH_LIMIT,
    RETRY_STATUSES,
    BatchItem,
    GraphClient,
    GraphError,
    OutlookLimiter,
    backoff_delay,
    is_concurrency_refusal,
    odata_string,
    parse_retry_after,
    read_ahead,
)
from audit.licensing import SkuIndex, mailbox_plans
from audit.models import (
    PERMISSION,
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
    is_mail_enabled,
)
from audit.psexport import read_export, text

log = logging.getLogger("audit")

USER_FIELDS = (
    "id,userPrincipalName,displayName,mail,proxyAddresses,userType,accountEnabled,assignedLicenses,"
    "assignedPlans,provisionedPlans,licenseAssignmentStates,onPremisesSyncEnabled,onPremisesImmutableId,"
    "createdDateTime,department,companyName,city,country,officeLocation,state,jobTitle,onPremisesExtensionAttributes"
)
DELETED_USER_FIELDS = USER_FIELDS + ",deletedDateTime"
# disabledByMicrosoftStatus and isDisabled are v1.0 properties of both types (Graph v1.0 metadata, CSDL).
SP_FIELDS = (
    "id,appId,displayName,accountEnabled,signInAudience,appOwnerOrganizationId,disabledByMicrosoftStatus,isDisabled"
)
APP_FIELDS = (
    "id,appId,displayName,signInAudience,passwordCredentials,keyCredentials,disabledByMicrosoftStatus,isDisabled"
)

# Outlook's answer (401) for a tenant that has no Exchange Online organisation at all: "The tenant for tenant
# guid '...' does not exist." (issues MicrosoftDocs/azure-docs#32957, O365/python-o365#757). No permission
# fixes it, so it is reported as its own finding, never as a permission to grant.
NO_EXCHANGE_ORGANIZATION = "OrganizationFromTenantGuidNotFound"
NO_MAILBOX_CODES = {
    "MailboxNotEnabledForRESTAPI",
    "MailboxNotSupportedForRESTAPI",
    "ResourceNotFound",
    "ErrorInvalidUser",
}

USAGE_REPORT = "/reports/getMailboxUsageDetail(period='D7')"
CONCEALED_NAME = re.compile(r"^[0-9A-F]{32}$")  # what a user name looks like when reports conceal it

FILTER_SAFE = " '()=:/@,"  # everything else (#, &, %, +) is percent-encoded inside a batch url
Progress = Callable[[str, int, int | None], None]


def user_from_graph(d: dict, shared: dict | None = None) -> User:
    """Turn one Graph user object into the compact record the checks read.

    `shared` (one dict for all users of a tenant) keeps one copy of each value users repeat: licences,
    plans, statuses, attribute values. Graph's JSON gives every user copies of its own, which took more
    than half the audit's memory at 100,000 users.
    """
    shared = {} if shared is None else shared

    def one(kind: str, items: Iterable) -> tuple:
        """The tenant's copy of this tuple, and of each item in it. One pool per kind: named tuples of
        different kinds compare equal when their fields do (an empty AssignedPlan and ProvisionedPlan)."""
        pool = shared.setdefault(kind, {})
        values = tuple(pool.setdefault(item, item) for item in items)
        return pool.setdefault(values, values)

    user_type = d.get("userType") or "Member"
    user_type = shared.setdefault("userType", {}).setdefault(user_type, user_type)
    return User(
        id=d["id"],
        upn=d.get("userPrincipalName") or "",
        display_name=d.get("displayName"),
        mail=d.get("mail"),
        proxy_addresses=tuple(d.get("proxyAddresses") or ()),
        user_type=user_type,
        enabled=bool(d.get("accountEnabled", True)),
        created=d.get("createdDateTime"),
        sync_enabled=d.get("onPremisesSyncEnabled") is True,
        immutable_id=d.get("onPremisesImmutableId"),
        licenses=one(
            "licenses",
            (
                License(lic["skuId"].lower(), one("disabledPlans", (p.lower() for p in lic.get("disabledPlans") or ())))
                for lic in d.get("assignedLicenses") or ()
            ),
        ),
        plans=one(
            "assignedPlans",
            (
                AssignedPlan(
                    (p.get("servicePlanId") or "").lower(), p.get("service") or "", p.get("capabilityStatus") or ""
                )
                for p in d.get("assignedPlans") or ()
            ),
        ),
        provisioned=one(
            "provisionedPlans",
            (
                ProvisionedPlan(
                    p.get("service") or "", p.get("capabilityStatus") or "", p.get("provisioningStatus") or ""
                )
                for p in d.get("provisionedPlans") or ()
            ),
        ),
        license_states=one(
            "licenseAssignmentStates",
            (
                LicenseState(
                    (s.get("skuId") or "").lower(),
                    s.get("state") or "",
                    s.get("error") or None,
                    s.get("assignedByGroup"),
                )
                for s in d.get("licenseAssignmentStates") or ()
            ),
        ),
        deleted=d.get("deletedDateTime"),
        attributes=one("attributes", _attributes(d)),
    )


def _attributes(d: dict) -> tuple[tuple[str, str], ...]:
    """The recipient-filter properties the user has a value for (most have few, so few are kept)."""
    extension = d.get("onPremisesExtensionAttributes") or {}
    found = []
    for name in rbac.USER_ATTRIBUTES:
        value = extension.get(name) if name.startswith("extensionAttribute") else d.get(name)
        if isinstance(value, str) and value:
            found.append((name, value))
    return tuple(found)


def probe_from_item(status: int, body: dict | None) -> MailboxProbe:
    """Classify one mailboxSettings answer the way the remediation would experience the mailbox."""
    if status == 200:
        purpose = (body or {}).get("userPurpose")
        # v1.0 metadata: an enum member name ("shared"); the older example of api/user-get-mailboxsettings.md
        # wraps it ({"value": "shared"}). Both are read.
        if isinstance(purpose, dict):
            purpose = purpose.get("value")
        return MailboxProbe("mailbox", purpose=purpose or "user")
    code = ((body or {}).get("error") or {}).get("code") or str(status)
    if status == 404 and code in NO_MAILBOX_CODES:
        return MailboxProbe("no_mailbox", code=code)
    if status == 403:
        return MailboxProbe("access_denied", code=code)
    return MailboxProbe("failed", code=code)


def likely_mailbox(user: User) -> bool:
    """An enabled Exchange plan: the probe will most likely find a mailbox (only an ordering hint)."""
    return any(p.service.lower() == "exchange" and p.status == "Enabled" for p in user.plans)


def should_probe(user: User) -> bool:
    """Members that have, or should have, a mailbox: what the remediation could be asked to touch."""
    if user.is_guest:
        return False
    return user.enabled or bool(user.mail) or bool(user.proxy_addresses) or bool(user.plans)


@dataclass(frozen=True)
class MailboxInventory:
    """The mailbox usage report read as an inventory: the tenant's Exchange Online user and shared
    mailboxes as of `refresh_date`, by lower-case user principal name -> (recipient type, deleted).
    The recipient type is "" when the report has no such column (the v1.0 CSV)."""

    refresh_date: str  # YYYY-MM-DD
    mailboxes: dict[str, tuple[str, bool]]
    concealed: bool  # the tenant hides user names in reports: rows cannot be matched to users


def parse_usage_report(text: str) -> MailboxInventory:
    """Rows of getMailboxUsageDetail's CSV.

    The v1.0 CSV has no "Recipient Type" column (its documented columns end with "Has Archive", "Report
    Period": Graph docs, api-reference/v1.0/api/reportroot-getmailboxusagedetail.md). Only beta carries
    it, as "User" or "Shared" (microsoftgraph/msgraph-sdk-powershell#1581,
    microsoftgraph/microsoft-graph-docs#17968). Both shapes are read; the type is used where present.
    """
    refresh, concealed = "", False
    mailboxes: dict[str, tuple[str, bool]] = {}
    for row in csv.DictReader(io.StringIO(text.lstrip("\ufeff"))):
        upn = (row.get("User Principal Name") or "").strip()
        refresh = refresh or (row.get("Report Refresh Date") or "").strip()
        concealed = concealed or bool(CONCEALED_NAME.match(upn))
        kind = (row.get("Recipient Type") or "").strip().lower()
        mailboxes[upn.lower()] = (kind, (row.get("Is Deleted") or "").strip().lower() == "true")
    return MailboxInventory(refresh, mailboxes, concealed)


def settle(user: User, inventory: MailboxInventory, skus: SkuIndex) -> MailboxProbe | None:
    """What the usage report says about the user's mailbox where it can be trusted; None: probe it.

    The report lists Exchange Online user and shared mailboxes, as of its refresh date, so a row that is
    not deleted proves a cloud mailbox exists. It is trusted where it and the licence agree: listed and
    licensed (a user mailbox, or whatever type the row names), or listed as Shared. Probed: accounts newer
    than the report, listed ones whose licence gives no mailbox (shared, or the licence was removed),
    unlisted ones whose licence gives one, and every unlisted mail-enabled account: room and equipment
    mailboxes are never in the report, and Teams Rooms accounts are enabled and need no Exchange licence.
    """
    created = (user.created or "")[:10]
    if not created or created >= inventory.refresh_date:
        return None  # newer than the report (or of unknown age)
    licensed = bool(mailbox_plans(user, skus).usable)
    row = inventory.mailboxes.get(user.upn.lower())
    if row is not None:
        kind, deleted = row
        if deleted:
            return None
        if kind == "shared":
            return MailboxProbe("mailbox", purpose="shared", source="usage_report")
        if licensed and kind in ("user", ""):
            # Without a Recipient Type column the purpose is not known; a licensed one needs no more.
            return MailboxProbe("mailbox", purpose=kind or None, source="usage_report")
        return None  # listed, yet the licence gives no mailbox (shared, or removed since?): ask Exchange
    if licensed:
        return None  # a mailbox licence the report does not show: pending, failed or on-premises
    if is_mail_enabled(user):
        return None  # may be a room or equipment mailbox, which the report does not list
    return MailboxProbe("no_mailbox", code=f"not listed on {inventory.refresh_date}", source="usage_report")


def read_access_policies(path: Path) -> list[dict]:
    """Rows of a Get-ApplicationAccessPolicy export: JSON (object or list), CSV or Format-List text, in UTF-8,
    UTF-16 or ANSI (see audit.psexport)."""
    return read_export(path)


def scope_object_id(row: dict) -> str | None:
    """The Entra object id of an access policy's scope: ScopeIdentityRaw is `<SID>;<object id>`."""
    raw = text(row.get("ScopeIdentityRaw"))
    tail = raw.rsplit(";", 1)[-1].strip()
    if rbac.GUID.match(tail):
        return tail.lower()
    identity = text(row.get("ScopeIdentity"))
    return identity.lower() if rbac.GUID.match(identity) else None


class Collector:
    """One tenant's collection run. Keeps the reasons for anything it could not read."""

    def __init__(self, client: GraphClient, tenant: TenantConfig, config: Config, progress: Progress | None = None):
        self.client = client
        self.tenant = tenant
        self.config = config
        self.progress = progress or (lambda phase, done, total: None)
        self.problems: list[str] = []
        self.user_total: int | None = None  # the directory's user count, once read: the total for progress
        self.shared: dict = {}  # values the tenant's users repeat, one copy each (see user_from_graph)

    def _missing(self, dataset: str, what: str, err: GraphError) -> Dataset:
        if err.status in (401, 403):
            perm = PERMISSION.get(dataset, "the matching read permission")
            return Dataset.missing(
                f"the audit app may not read {what} (Graph {err.status} {err.code}); grant it the "
                f"application permission {perm} with admin consent"
            )
        self.problems.append(f"{what}: {err}")
        return Dataset.missing(f"Graph failed while reading {what}: {err}")

    def _read(self, dataset: str, what: str, fn: Callable[[], object]) -> Dataset:
        try:
            return Dataset(fn())
        except GraphError as err:
            log.warning("%s: could not read %s: %s", self.tenant.name, what, err)
            return self._missing(dataset, what, err)

    def users(
        self, path: str, fields: str, phase: str, on_page: Callable[[list[User]], None] | None = None
    ) -> list[User]:
        users: list[User] = []
        for page in read_ahead(self.client.iter_pages(path, params={"$select": fields, "$top": "999"})):
            records = [user_from_graph(u, self.shared) for u in page]
            users.extend(records)
            if on_page:
                on_page(records)
            self.progress(phase, len(users), self.user_total if phase == "users" else None)
        return users

    def lookup_users(self, addresses: list[str]) -> list[User]:
        """Only the users owning these addresses (UPN, mail or proxy address), in batches of 20."""
        requests = []
        for i, address in enumerate(addresses):
            a = address.strip().removeprefix("smtp:").removeprefix("SMTP:")
            flt = (
                f"userPrincipalName eq {odata_string(a)} or mail eq {odata_string(a)} or "
                f"proxyAddresses/any(p:p eq {odata_string('smtp:' + a)})"
            )
            requests.append(
                {
                    "id": str(i),
                    "method": "GET",
                    "url": f"/users?$filter={quote(flt, safe=FILTER_SAFE)}&$select={USER_FIELDS}",
                }
            )
        found: dict[str, User] = {}
        for item in self.client.batch(requests, in_flight=2).values():
            if item.status != 200:
                raise GraphError(
                    item.status, ((item.body or {}).get("error") or {}).get("code", ""), "user lookup failed", None
                )
            if not isinstance((item.body or {}).get("value"), list):  # never read a broken answer as "nobody"
                raise GraphError(200, "InvalidResponse", "a user lookup came back without a 'value' list", None)
            for u in item.body["value"]:
                found[u["id"]] = user_from_graph(u, self.shared)
        return list(found.values())

    def count_users(self) -> int | None:
        try:
            text = self.client.get_text("/users/$count", headers={"ConsistencyLevel": "eventual"})
            self.user_total = int(text.strip().lstrip("\ufeff"))
            return self.user_total
        except (GraphError, ValueError) as err:
            log.info("%s: the directory did not say how many users it holds: %s", self.tenant.name, err)
            return None

    def first(self, path: str, params: dict) -> dict | None:
        # Read as a collection page: an answer without `value` is a fault to retry, never "none found".
        items = next(self.client.iter_pages(path, params=params), [])
        return items[0] if items else None

    def all_items(self, path: str, params: dict | None = None) -> list[dict]:
        return [item for page in self.client.iter_pages(path, params=params) for item in page]

    def inventory(self) -> MailboxInventory | None:
        """The mailbox usage report where it can stand in for probes; None: probe every mailbox."""
        name = self.tenant.name
        cloud = CLOUDS.get(self.tenant.cloud)
        if cloud is None or not cloud.usage_reports:
            log.info(
                "%s: the mailbox usage report is not offered in the %s cloud; probing every mailbox",
                name,
                self.tenant.cloud,
            )
            return None
        try:
            inventory = parse_usage_report(self.client.get_report(USAGE_REPORT))
        except GraphError as err:
            if err.status in (401, 403):
                reason = (
                    f"the audit app may not read the mailbox usage report (Graph {err.status} {err.code}); "
                    f"grant it {PERMISSION['usage_report']} to make audits faster"
                )
            else:
                reason = f"the mailbox usage report could not be read: {err}"
            # Not a gap: every mailbox is probed instead, so the audit is as complete, only slower.
            log.warning("%s: %s; every mailbox is probed instead", name, reason)
            return None
        if inventory.concealed:
            log.info(
                "%s: the mailbox usage report conceals user names, so every mailbox is probed; to show "
                "them: Microsoft 365 admin center > Settings > Org settings > Reports",
                name,
            )
            return None
        if not inventory.refresh_date:
            log.info("%s: the mailbox usage report is empty; probing every mailbox", name)
            return None
        return inventory

    def app_scope(self) -> Dataset:
        app = self.config.remediation_app
        if app.access_policy_file is None:
            return Dataset.missing(
                "Graph cannot read Exchange application access policies; export them with "
                "Get-ApplicationAccessPolicy | ConvertTo-Json and name the file in "
                "remediation_app.access_policy_file"
            )
        try:
            rows = read_access_policies(app.access_policy_file)
        except (OSError, ValueError) as err:
            return Dataset.missing(f"could not read the access policy export {app.access_policy_file}: {err}")
        app_id = app.app_id.lower()
        rows = [
            r for r in rows if isinstance(r, dict) and text(r.get("AppId")).lower() == app_id and self._policy_here(r)
        ]
        if not rows:
            return Dataset(None)  # the export lists no policy for this app here: no restriction
        restrict: dict[str, frozenset[str]] = {}
        deny: dict[str, frozenset[str]] = {}
        for row in rows:
            label = text(row.get("ScopeName")) or text(row.get("ScopeIdentity")) or text(row.get("ScopeIdentityRaw"))
            right = text(row.get("AccessRight")).lower()
            if right not in ("restrictaccess", "denyaccess"):
                return Dataset.missing(
                    f"the access policy for scope {label} has AccessRight {text(row.get('AccessRight'))!r}, neither "
                    "RestrictAccess nor DenyAccess; export the policies again as text, e.g. "
                    "Get-ApplicationAccessPolicy | Export-Csv -NoTypeInformation access-policies.csv"
                )
            try:
                members = self._scope_members(row)
            except GraphError as err:
                return self._missing("app_scope", f"members of access policy scope {label}", err)
            if members is None:
                return Dataset.missing(
                    f"the access policy scope {label} (object id {scope_object_id(row) or 'not given'}) was found in "
                    "the directory neither by object id, nor by name, nor by address; export the policies again "
                    "with their ScopeIdentityRaw column"
                )
            (deny if right == "denyaccess" else restrict)[label] = members
        return Dataset(AppScope(restrict=restrict, deny=deny))

    def _policy_here(self, row: dict) -> bool:
        identity = text(row.get("Identity"))
        if "\\" not in identity:
            return True  # no tenant named in the row: it applies wherever the export is used
        return identity.split("\\", 1)[0].lower() in {self.tenant.tenant_id.lower(), self.tenant.name.lower()}

    def _scope_members(self, row: dict) -> frozenset[str] | None:
        """User ids an access policy scope covers: a group's (transitive) members, or one mailbox.

        Get-ApplicationAccessPolicy gives ScopeIdentity as Exchange's object name (the group's name with a
        creation timestamp appended, e.g. MyRestrictedSecGroup20210509121159), which Graph does not know;
        the object id in ScopeIdentityRaw is used first, then the display name, then an address.
        None: the scope was not found.
        """
        object_id = scope_object_id(row)
        if object_id:
            found = self._object_members(object_id)
            if found is not None:
                return found
        name = text(row.get("ScopeName"))
        if name and "@" not in name:
            groups = self.all_items("/groups", {"$filter": f"displayName eq {odata_string(name)}", "$select": "id"})
            if len(groups) == 1:
                return self._group_users(groups[0]["id"])
        for address in (text(row.get("ScopeIdentity")), name):
            if "@" not in address:
                continue
            group = self.first("/groups", {"$filter": f"mail eq {odata_string(address)}", "$select": "id"})
            if group is not None:
                return self._group_users(group["id"])
            user = self.first("/users", {"$filter": f"mail eq {odata_string(address)}", "$select": "id"})
            if user is not None:  # a scope can also be a single mailbox
                return frozenset([user["id"]])
        return None

    def _group_users(self, group_id: str) -> frozenset[str]:
        members = self.all_items(f"/groups/{group_id}/transitiveMembers/microsoft.graph.user", {"$select": "id"})
        return frozenset(m["id"] for m in members)

    def _object_members(self, object_id: str) -> frozenset[str] | None:
        """A group's members, or the user itself, by Entra object id; None when neither exists."""
        try:
            return self._group_users(object_id)
        except GraphError as err:
            if err.status != 404:
                raise
        try:
            user = self.client.get(f"/users/{object_id}", params={"$select": "id"})
        except GraphError as err:
            if err.status == 404:
                return None
            raise
        return frozenset([user["id"]])

    # ---- Exchange RBAC for Applications ------------------------------------------------------------

    def rbac_grants(self, sp: Dataset) -> Dataset:
        """The remediation app's RBAC for Applications grants here; Dataset(None) when no export is named."""
        app = self.config.remediation_app
        if app.role_assignments_file is None:
            return Dataset(None)
        exports: dict[str, list[dict] | None] = {}
        for key, path in (
            ("role_assignments_file", app.role_assignments_file),
            ("management_scopes_file", app.management_scopes_file),
            ("exchange_service_principals_file", app.exchange_service_principals_file),
        ):
            try:
                exports[key] = read_export(path) if path is not None else None
            except (OSError, ValueError) as err:
                return Dataset.missing(f"could not read remediation_app.{key} {path}: {err}")
        if not sp.ok:
            return Dataset.missing(sp.error or "the remediation app's service principal could not be read")
        keys = rbac.assignee_keys(sp.value, exports["exchange_service_principals_file"] or ())
        rows = rbac.app_assignments(exports["role_assignments_file"] or (), keys)
        return Dataset(tuple(self._grant(row, exports["management_scopes_file"]) for row in rows))

    def _grant(self, row: dict, scopes: list[dict] | None) -> rbac.RbacGrant:
        name, role = text(row.get("Name")), text(row.get("Role"))
        kind, ref = rbac.scope_of(row)
        if kind == "organisation":
            return rbac.RbacGrant(name, role, "the whole organisation")
        if kind == "unit":
            label = f"administrative unit {ref}"
            try:
                members = self._unit_members(ref)
            except GraphError as err:
                return rbac.RbacGrant(
                    name, role, label, unreadable=self._graph_reason(label, "administrative_units", err)
                )
            if members is None:
                return rbac.RbacGrant(name, role, label, unreadable=f"{label} was not found in the directory")
            return rbac.RbacGrant(name, role, label, members=members)
        label = f"management scope {ref}"
        if scopes is None:
            return rbac.RbacGrant(
                name,
                role,
                label,
                unreadable=f"{label} is not known: name the Get-ManagementScope export in "
                "remediation_app.management_scopes_file",
            )
        filter_text = rbac.scope_filter(scopes, ref)
        if not filter_text:
            return rbac.RbacGrant(
                name, role, label, unreadable=f"{label} has no RecipientFilter in the Get-ManagementScope export"
            )
        described = f"{label} ({filter_text})"
        try:
            node = opath.parse(filter_text)
        except opath.OpathError as err:
            return rbac.RbacGrant(name, role, described, filter_text, unreadable=f"its filter cannot be read: {err}")
        missing = rbac.unreadable_properties(node)
        if missing:
            return rbac.RbacGrant(
                name,
                role,
                described,
                filter_text,
                unreadable=f"its filter tests {', '.join(missing)}, which Graph does not show the audit",
            )
        groups: dict[str, frozenset[str]] = {}
        for value in sorted(opath.values_for(node, "MemberOfGroup")):
            try:
                members = self._named_group_members(value)
            except GraphError as err:
                reason = self._graph_reason(f"group {value}", "app_scope", err)
                return rbac.RbacGrant(name, role, described, filter_text, unreadable=reason)
            if members is None:
                return rbac.RbacGrant(
                    name,
                    role,
                    described,
                    filter_text,
                    unreadable=f"MemberOfGroup {value} names no single group in the directory",
                )
            groups[value.lower()] = members
        return rbac.RbacGrant(name, role, described, filter_text, node, groups=groups)

    def _graph_reason(self, what: str, dataset: str, err: GraphError) -> str:
        if err.status in (401, 403):
            return (
                f"the audit app may not read the members of {what} (Graph {err.status} {err.code}); grant it the "
                f"application permission {PERMISSION[dataset]} with admin consent"
            )
        self.problems.append(f"members of {what}: {err}")
        return f"Graph failed while reading the members of {what}: {err}"

    def _unit_members(self, ref: str) -> frozenset[str] | None:
        """User members of an administrative unit, by id or display name; None when it does not exist."""
        unit_id = ref
        if not rbac.GUID.match(ref):
            unit = self.first(
                "/directory/administrativeUnits", {"$filter": f"displayName eq {odata_string(ref)}", "$select": "id"}
            )
            if unit is None:
                return None
            unit_id = unit["id"]
        try:
            members = self.all_items(f"/directory/administrativeUnits/{unit_id}/members", {"$select": "id"})
        except GraphError as err:
            if err.status == 404:
                return None
            raise
        user = "#microsoft.graph.user"
        return frozenset(m["id"] for m in members if str(m.get("@odata.type") or user).lower() == user)

    def _named_group_members(self, value: str) -> frozenset[str] | None:
        """Direct user members of the group a MemberOfGroup value names (its DN, name or address).

        MemberOfGroup tests the memberOf back-link, which lists direct memberships only."""
        match = re.match(r"^CN=((?:[^,\\]|\\.)+)", value, re.IGNORECASE)
        name = re.sub(r"\\(.)", r"\1", match.group(1)) if match else value
        prop = "mail" if "@" in name else "displayName"
        groups = self.all_items("/groups", {"$filter": f"{prop} eq {odata_string(name)}", "$select": "id"})
        if len(groups) != 1:
            return None
        members = self.all_items(f"/groups/{groups[0]['id']}/members/microsoft.graph.user", {"$select": "id"})
        return frozenset(m["id"] for m in members)


class MailboxProber:
    """Probes mailboxes in a thread of its own while the user list is still being read.

    Directory and Outlook calls are throttled separately, so the probes need not wait for the last
    page. With an inventory (the usage report), users it settles are not probed. Probes go in $batches
    of up to 20: one round trip for 20 mailboxes, where single GETs would leave Outlook idle for the
    round trip of each. How many batches are in flight follows the app's OutlookLimiter (shared by the
    tenants audited with that app). A parallel batch, whose items Graph runs 4 at a time, takes 4 slots:
    used while the cap is learnt, and for doubtful mailboxes where Graph queues batch items. Otherwise a
    batch is sequential (each item dependsOn the one before, per json-batching) and takes one slot. An
    item refused with 429 goes again after its own Retry-After; items that failed only because an
    earlier one did (424) go again at once.
    """

    def __init__(
        self,
        collector: Collector,
        inventory: Callable[[], MailboxInventory | None] | None,
        skus: Callable[[], Dataset] | None = None,
        limiter: OutlookLimiter | None = None,
    ):
        self.collector = collector
        self.client = collector.client
        self._inventory = inventory
        self._skus = skus
        self.limiter = limiter or OutlookLimiter(collector.config.audit.max_outlook_concurrency)
        self._events: queue.Queue[tuple] = queue.Queue()
        self._out: dict[str, MailboxProbe] = {}
        self._probed = 0
        self.answered = False  # Exchange Online answered at least one probe about a mailbox (200 or 404)
        self._candidates = 0  # users should_probe() selects, settled by the report or probed
        self._settled = 0
        self._listed = False  # every page is in: _candidates is the total
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._run,),
            name=f"probes-{collector.tenant.name}",
            daemon=True,
        )
        self._thread.start()

    def add(self, users: list[User]) -> None:
        self._candidates += sum(1 for u in users if should_probe(u))
        self._events.put(("page", users))

    def listed(self) -> None:
        """Every page is in: from now on the progress of the probes has a total."""
        self._listed = True

    def close(self) -> dict[str, MailboxProbe]:
        """Wait for the last probe; re-raise what stopped the thread (a GraphError for a whole batch)."""
        self._listed = True
        self._events.put(("end",))
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._report_progress()
        if self._probed:
            log.info("%s: %s", self.collector.tenant.name, self.limiter.describe())
        failed = sum(1 for p in self._out.values() if p.outcome == "failed")
        if failed:
            self.collector.problems.append(
                f"{failed} mailbox probes failed after retries; those users were not assessed"
            )
        return self._out

    def abandon(self) -> None:
        self._events.put(("end",))
        self._thread.join()

    def _run(self) -> None:
        try:
            inventory = self._inventory() if self._inventory else None
            skus = SkuIndex.from_skus(self._skus() if self._skus else Dataset(None)) if inventory else None
            self._dispatch(inventory, skus)
        except BaseException as err:  # noqa: BLE001 - handed to close(), in the collecting thread
            self._error = err

    def _dispatch(self, inventory: MailboxInventory | None, skus: SkuIndex | None) -> None:
        """One loop: take pages as they come, keep as many batches in flight as the limiter allows."""
        client = self.client
        # Users likely to have a mailbox go first in sequential batches: a probe that fails there fails
        # every later item of its batch (424), so the likely failures go last, one to a batch, or in
        # parallel batches of their own.
        # With the usage report, what is left to probe is doubtful by construction: a licensed user the
        # report does not list is the typical mailbox that is not there.
        likely = likely_mailbox if inventory is None else (lambda user: False)
        ready: deque[_Target] = deque()
        doubtful: deque[_Target] = deque()
        later: list[tuple[float, int, _Target]] = []  # (not before, tie-break, target): waiting out a 429
        settled: dict[MailboxProbe, MailboxProbe] = {}  # one copy of each answer the usage report gives
        in_flight = 0
        ended = False
        order = 0
        workers = ThreadPoolExecutor(
            max_workers=self.limiter.ceiling,
            thread_name_prefix="probe",
            initializer=logs.adopt,
            initargs=(logs.current(),),
        )
        try:
            while True:
                now = client.clock()
                while later and later[0][0] <= now:
                    target = heapq.heappop(later)[2]
                    (ready if likely(target.user) else doubtful).appendleft(target)
                while (ready or doubtful) and self._error is None:
                    count = min(BATCH_LIMIT, len(ready) + len(doubtful))
                    slots = self.limiter.try_acquire(count, lambda: self._events.put(("wake",)), bool(ready))
                    if slots is None:
                        break
                    if slots[3]:  # parallel: the order does not matter
                        batch = [(doubtful or ready).popleft() for _ in range(count)]
                    elif ready:  # likely mailboxes first, one doubtful user last (if any is waiting)
                        batch = [ready.popleft() for _ in range(min(BATCH_LIMIT - bool(doubtful), len(ready)))]
                        batch += [doubtful.popleft()] if doubtful else []
                    else:
                        batch = [doubtful.popleft() for _ in range(count)]
                    workers.submit(self._send, batch, slots)
                    in_flight += 1
                if self._error is not None and not in_flight:
                    raise self._error
                if ended and not ready and not doubtful and not later and not in_flight:
                    return
                timeout = max(0.0, later[0][0] - client.clock()) if later else None
                try:
                    event = self._events.get(timeout=timeout)
                except queue.Empty:
                    continue
                if event[0] == "page":
                    for user in event[1]:
                        if not should_probe(user):
                            continue
                        known = settle(user, inventory, skus) if inventory and skus else None
                        if known is None:
                            (ready if likely(user) else doubtful).append(_Target(user))
                        else:
                            self._out[user.id] = settled.setdefault(known, known)
                            self._settled += 1
                elif event[0] == "end":
                    ended = True
                elif event[0] == "done":
                    in_flight -= 1
                    for target, wait in event[1]:
                        order += 1
                        heapq.heappush(later, (client.clock() + wait, order, target))
                    self._report_progress()
                elif event[0] == "failed":
                    in_flight -= 1
                    self._error = self._error or event[1]
        finally:
            workers.shutdown(wait=True)

    def _report_progress(self) -> None:
        assessed = self._probed + self._settled
        self.collector.progress("probes", assessed, self._candidates if self._listed else None)

    def _send(self, batch: list[_Target], slots: tuple[int, bool, int, bool]) -> None:
        """One $batch of probes, in a worker; reports back what must go again and when."""
        parallel = slots[3]
        refused = 0
        again: list[tuple[_Target, float]] = []
        try:
            requests_ = []
            for i, target in enumerate(batch):
                item = {"id": str(i), "method": "GET", "url": f"/users/{target.user.id}/mailboxSettings"}
                if not parallel and i:
                    item["dependsOn"] = [str(i - 1)]
                requests_.append(item)
            answers = self.client.send_batch(requests_)
            for i, target in enumerate(batch):
                answer = answers[str(i)]
                if is_concurrency_refusal(answer.status, answer.body):
                    refused += 1
                wait = self._settle_item(target, answer)
                if wait is not None:
                    again.append((target, wait))
        except BaseException as err:  # noqa: BLE001 - handed to the dispatcher
            self.limiter.release(slots, refused=0, items=len(batch))
            self._events.put(("failed", err))
            return
        self.limiter.release(slots, refused=refused, items=len(batch))
        self._events.put(("done", again))

    def _settle_item(self, target: _Target, answer: BatchItem) -> float | None:
        """Record the probe's result; or the seconds to wait before it goes again (None: done)."""
        client = self.client
        status, body = answer.status, answer.body
        if status == 424:
            return 0.0  # never ran: an earlier item of its sequential batch failed
        target.attempts += 1
        settings = status == 200 and any(not key.startswith("@") for key in body or {})
        retryable = status in RETRY_STATUSES or status == 0 or (status == 200 and not settings)
        # Twice the client's attempts: with 17% of calls faulted, one probe in ~40,000 fails six times
        # running, so a 5,000-user tenant would otherwise come out partial in about one run in nine.
        if retryable and target.attempts < 2 * client.max_attempts:
            client.stats.add("retries")
            wait = parse_retry_after(answer.header("Retry-After"), client.wall())
            return backoff_delay(target.attempts, client.rng) if wait is None else wait
        if status == 401:
            raise answer.error()  # the token was refused, not this mailbox (a 401 is always an error)
        self.answered = self.answered or status == 404 or settings  # Exchange answered about this mailbox
        if status == 200:
            self._out[target.user.id] = (
                probe_from_item(200, body) if settings else MailboxProbe("failed", code="InvalidResponse")
            )
        else:
            code = ((body or {}).get("error") or {}).get("code") or str(status)
            self._out[target.user.id] = probe_from_item(status, {"error": {"code": code}})
        self._probed += 1
        return None


@dataclass
class _Target:
    """A user whose mailbox is to be probed, with the attempts spent on it."""

    user: User
    attempts: int = 0


def collect_tenant(
    client: GraphClient,
    tenant: TenantConfig,
    config: Config,
    *,
    probe: str = "auto",
    recipients: list[str] | None = None,
    audit_roles: tuple[str, ...] = (),
    progress: Progress | None = None,
    now: datetime | None = None,
    addresses: list[str] | None = None,
    limiter: OutlookLimiter | None = None,
) -> TenantSnapshot:
    """Collect one tenant. Raises GraphError only when the user list itself cannot be read for a fault.

    With `addresses`, only the users owning those addresses are read (triage of an error log):
    a 20-row log must not enumerate a 100,000-user tenant. `limiter`: the Outlook limiter of the app,
    shared with the other tenants it audits in this run (a new one when None).
    """
    c = Collector(client, tenant, config, progress)
    app = config.remediation_app
    started = now or datetime.now(UTC)

    # The small datasets are read while the user list pages in: a request or two each, one after the
    # other they would add seconds to every run; the directory's resource units have room for them.
    with ThreadPoolExecutor(
        max_workers=3, thread_name_prefix=f"read-{tenant.name}", initializer=logs.adopt, initargs=(logs.current(),)
    ) as pool:
        # SKUs first: the probes that run while the user list is read need them to trust the usage report.
        skus_f = pool.submit(c._read, "subscribed_skus", "subscribed SKUs", lambda: c.all_items("/subscribedSkus"))
        # The user count next: it is the total the progress display shows while the user list pages in.
        count_f = pool.submit(c.count_users) if addresses is None else None
        prober = None
        if probe != "none":
            # A handful of addresses (triage) is probed directly: the report would list the whole tenant.
            inventory = c.inventory if probe == "auto" and addresses is None else None
            prober = MailboxProber(c, inventory, skus_f.result, limiter)
        deleted_f = pool.submit(
            c._read,
            "deleted_users",
            "soft-deleted users",
            lambda: c.users("/directory/deletedItems/microsoft.graph.user", DELETED_USER_FIELDS, "deleted users"),
        )
        organization_f = pool.submit(
            c._read,
            "organization",
            "the organization",
            lambda: c.first("/organization", {"$select": "id,displayName,verifiedDomains"}),
        )
        sp_f = pool.submit(
            c._read,
            "remediation_sp",
            "the remediation app's service principal",
            lambda: c.first(
                "/servicePrincipals", {"$filter": f"appId eq {odata_string(app.app_id)}", "$select": SP_FIELDS}
            ),
        )
        graph_sp_f = pool.submit(
            c._read,
            "remediation_sp",
            "Microsoft Graph's service principal",
            lambda: c.first(
                "/servicePrincipals", {"$filter": f"appId eq {odata_string(GRAPH_APP_ID)}", "$select": "id"}
            ),
        )
        application_f = pool.submit(_application, c, config)
        app_scope_f = pool.submit(c.app_scope)
        try:
            if addresses is not None:
                users = Dataset(c.lookup_users(addresses))
                if prober:
                    prober.add(users.value or [])
            else:
                users = Dataset(c.users("/users", USER_FIELDS, "users", on_page=prober.add if prober else None))
            if prober:
                prober.listed()
        except GraphError as err:
            if prober:
                prober.abandon()
            if err.status not in (401, 403):
                raise  # without the user list there is nothing to audit: the tenant failed
            users = c._missing("users", "users", err)
        sp = sp_f.result()
        rbac_f = pool.submit(c.rbac_grants, sp)
        if sp.ok and sp.value:
            sp_id = sp.value["id"]
            roles_f = pool.submit(
                c._read,
                "remediation_sp",
                "the remediation app's application permissions",
                lambda: c.all_items(f"/servicePrincipals/{sp_id}/appRoleAssignments"),
            )
            delegated_f = pool.submit(
                c._read,
                "remediation_sp",
                "the remediation app's delegated permissions",
                lambda: c.all_items(f"/servicePrincipals/{sp_id}/oauth2PermissionGrants"),
            )
            roles, delegated = roles_f.result(), delegated_f.result()
        else:
            reason = sp.error or "the remediation app has no service principal in this tenant"
            roles = delegated = Dataset.missing(reason)
        count = count_f.result() if count_f is not None and users.ok else None
        deleted, organization = deleted_f.result(), organization_f.result()
        graph_sp, application, app_scope = graph_sp_f.result(), application_f.result(), app_scope_f.result()
        skus = skus_f.result()
        rbac_grants = rbac_f.result()
    graph_sp_id = Dataset((graph_sp.value or {}).get("id")) if graph_sp.ok else graph_sp

    if prober is None:
        probes = Dataset.missing("mailbox probes were switched off (--no-probe); user checks used directory data only")
        exchange = Dataset.missing("mailbox probes were switched off (--no-probe), so Exchange Online was not asked")
    elif not users.ok:
        prober.abandon()
        probes = exchange = Dataset.missing(users.error or "no users")
    else:
        probes, exchange = _close_probes(c, prober)

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
        app_scope=app_scope,
        recipients=Dataset(list(recipients))
        if recipients is not None
        else Dataset.missing("no recipients list was given (--recipients FILE)"),
        directory_user_count=count,
        audit_roles=tuple(audit_roles),
        problems=tuple(c.problems),
        exchange_online=exchange,
        rbac=rbac_grants,
    )


def _close_probes(c: Collector, prober: MailboxProber) -> tuple[Dataset, Dataset]:
    """The probe results, and what they say about Exchange Online serving the tenant at all."""
    try:
        probes = prober.close()
    except GraphError as err:
        if err.code == NO_EXCHANGE_ORGANIZATION:
            log.warning("%s: Exchange Online has no organisation for this tenant (%s)", c.tenant.name, err)
            reason = (
                f"Exchange Online has no organisation for this tenant (Graph {err.status} {err.code}), so no "
                "mailbox can be probed or remediated (see tenant-no-exchange-online)"
            )
            return Dataset.missing(reason), Dataset(False)
        log.warning("%s: could not read mailboxes: %s", c.tenant.name, err)
        missing = c._missing("probes", "mailboxes", err)
        return missing, missing
    listed = any(p.source == "usage_report" and p.outcome == "mailbox" for p in probes.values())
    if prober.answered or listed:
        return Dataset(probes), Dataset(True)
    return Dataset(probes), Dataset.missing(
        "no mailbox probe was answered (none was needed, or every one was refused or failed), so whether "
        "Exchange Online serves this tenant is not known"
    )


def _application(c: Collector, config: Config) -> Dataset:
    """The app registration can only be read in its home tenant."""
    app = config.remediation_app
    tenant = c.tenant
    home = app.home_tenant_id
    if home is None:
        return Dataset.missing(
            "remediation_app.home_tenant_id is not set; the app registration "
            "(sign-in audience, credentials) can only be read in its home tenant"
        )
    if home.lower() != tenant.tenant_id.lower():
        configured = any(t.tenant_id.lower() == home.lower() for t in config.tenants)
        where = READ_IN_HOME_AUDIT if configured else "is not among the configured tenants"
        return Dataset.missing(
            f"the app registration lives in its home tenant {home}, which {where}", read_in=home if configured else None
        )
    return c._read(
        "application",
        "the remediation app's registration",
        lambda: c.first("/applications", {"$filter": f"appId eq {odata_string(app.app_id)}", "$select": APP_FIELDS}),
    )
