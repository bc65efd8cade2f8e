"""Exchange Online RBAC for Applications: which mailboxes the remediation app reaches through it.

An admin grants the app an application role ("Application Mail.ReadWrite") in Exchange with
`New-ManagementRoleAssignment -App <service principal> -Role ... [-CustomResourceScope <management scope> |
-RecipientAdministrativeUnitScope <administrative unit>]`. Such a grant is independent of the app's Entra
application permissions, and adds to them (Microsoft: "Role Based Access Control for Applications in
Exchange Online", learn.microsoft.com/exchange/permissions-exo/application-rbac).

The audit reads three exports (see psexport for the accepted forms):
- `Get-ManagementRoleAssignment -RoleAssigneeType ServicePrincipal`: Role, RoleAssignee (the Exchange
  service principal), Enabled, CustomResourceScope (the management scope's name), and for an
  administrative-unit scope RecipientWriteScope "AdministrativeUnit" with the unit's id in
  CustomRecipientWriteScope (the shape Microsoft365DSC's EXOManagementRoleAssignment resource reads back);
- `Get-ManagementScope`: Name and RecipientFilter (the OPATH filter given as -RecipientRestrictionFilter;
  Microsoft365DSC's EXOManagementScope reads it back from RecipientFilter);
- optionally `Get-ServicePrincipal`: DisplayName, AppId, ObjectId, Identity and Name of Exchange's pointer
  to the Entra service principal, to match RoleAssignee when it holds a name rather than an id.

This module is pure: collect.py reads the files and Graph, the checks evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from audit import opath
from audit.models import MailboxProbe, User
from audit.psexport import flag, text

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAIL_ROLE = "Application Mail.ReadWrite"  # the Exchange application role matching Graph's Mail.ReadWrite

# OPATH recipient properties -> the Graph user property carrying the same data (User.attributes keys).
GRAPH_PROPERTY = {
    "department": "department",
    "company": "companyName",
    "city": "city",
    "countryorregion": "country",
    "office": "officeLocation",
    "stateorprovince": "state",
    "title": "jobTitle",
    **{f"customattribute{n}": f"extensionAttribute{n}" for n in range(1, 16)},
}
# Read from the user record itself, the mailbox probe, or resolved group membership.
OTHER_PROPERTIES = frozenset(
    {
        "primarysmtpaddress",
        "windowsemailaddress",
        "userprincipalname",
        "emailaddresses",
        "displayname",
        "recipienttypedetails",
        "recipienttype",
        "memberofgroup",
    }
)
USER_ATTRIBUTES = tuple(GRAPH_PROPERTY.values())  # what collect.py keeps on User.attributes
RECIPIENT_TYPE_DETAILS = {
    "user": "UserMailbox",
    "shared": "SharedMailbox",
    "room": "RoomMailbox",
    "equipment": "EquipmentMailbox",
}


@dataclass(frozen=True)
class RbacGrant:
    """One enabled RBAC for Applications role assignment of the remediation app, with its scope resolved."""

    name: str
    role: str
    scope: str  # for the evidence: "the whole organisation", "management scope X", "administrative unit Y"
    filter_text: str = ""
    filter: opath.Node | None = None
    members: frozenset[str] | None = None  # user ids of an administrative unit scope
    groups: dict[str, frozenset[str]] = field(default_factory=dict)  # MemberOfGroup value (lower) -> user ids
    unreadable: str | None = None  # why the scope cannot be evaluated; the grant then decides nothing

    @property
    def organisation_wide(self) -> bool:
        return self.filter is None and self.members is None and self.unreadable is None

    def reaches(self, user: User, probe: MailboxProbe | None) -> bool | None:
        """Is the mailbox in this grant's scope? None: the audit cannot tell."""
        if self.unreadable is not None:
            return None
        if self.members is not None:
            return user.id in self.members
        if self.filter is None:
            return True
        return opath.evaluate(self.filter, lambda prop: recipient_value(prop, user, probe, self.groups))


def recipient_value(
    prop: str, user: User, probe: MailboxProbe | None, groups: dict[str, frozenset[str]]
) -> opath.Value:
    """The value an OPATH recipient property has for this mailbox, read from Graph data."""
    key = prop.lower()
    if key in GRAPH_PROPERTY:
        return dict(user.attributes).get(GRAPH_PROPERTY[key])
    if key in ("primarysmtpaddress", "windowsemailaddress"):
        return user.mail
    if key == "userprincipalname":
        return user.upn
    if key == "displayname":
        return user.display_name
    if key == "emailaddresses":
        return user.proxy_addresses
    if key in ("recipienttypedetails", "recipienttype"):
        purpose = (probe.purpose if probe and probe.outcome == "mailbox" else None) or ""
        if purpose.lower() not in RECIPIENT_TYPE_DETAILS:
            raise opath.Unknown(prop)
        # Every mailbox kind (user, shared, room, equipment) has RecipientType UserMailbox.
        return RECIPIENT_TYPE_DETAILS[purpose.lower()] if key == "recipienttypedetails" else "UserMailbox"
    if key == "memberofgroup":
        return tuple(value for value, members in groups.items() if user.id in members)
    raise opath.Unknown(prop)


def unreadable_properties(node: opath.Node) -> list[str]:
    """Properties the filter tests that Graph does not show the audit in the same form."""
    known = GRAPH_PROPERTY.keys() | OTHER_PROPERTIES
    out = {p for p in opath.properties(node) if p.lower() not in known}
    # Exchange takes CountryOrRegion as an ISO code or a name; Entra's country is free text (usually a name),
    # so a code cannot be compared with it.
    if any(len(v) == 2 for v in opath.values_for(node, "CountryOrRegion")):
        out.add("CountryOrRegion (as a two-letter code)")
    return sorted(out)


def assignee_keys(sp: dict | None, exchange_sps: Iterable[dict] = ()) -> set[str]:
    """Everything RoleAssignee may hold for the remediation app in this tenant (lower case).

    Sources differ on what RoleAssignee shows for a service principal: the Entra object id, or the name of
    Exchange's pointer object (a display name). Only what is unique to this tenant counts: the service
    principal's object id, and the names of the Get-ServicePrincipal export rows whose ObjectId is that id.
    The app id and display name are the same in every tenant the app is consented in, so one export
    covering several tenants would otherwise credit one tenant's grant to all of them.
    """
    sp_id = str((sp or {}).get("id") or "").lower()
    if not sp_id:
        return set()
    keys = {sp_id}
    for row in exchange_sps:
        if text(row.get("ObjectId")).lower() != sp_id:
            continue
        for column in ("Identity", "Name", "DisplayName", "ServiceId", "Id"):
            value = text(row.get(column)).lower()
            if value:
                keys.add(value)
    return keys


def app_assignments(rows: Iterable[dict], keys: set[str]) -> list[dict]:
    """The enabled application-role assignments whose assignee is the remediation app."""
    out = []
    for row in rows:
        kind = text(row.get("RoleAssigneeType"))
        if kind and kind.lower() != "serviceprincipal":
            continue
        assignee = {text(row.get(c)).lower() for c in ("RoleAssignee", "RoleAssigneeName", "App")} - {""}
        if not assignee & keys or not flag(row.get("Enabled"), default=True):
            continue
        if not text(row.get("Role")).lower().startswith("application "):
            continue
        out.append(row)
    return out


def scope_of(row: dict) -> tuple[str, str]:
    """("organisation"|"management"|"unit", name or id) for one assignment row."""
    custom = text(row.get("CustomResourceScope"))
    if custom:
        return "management", custom
    unit = text(row.get("RecipientAdministrativeUnitScope"))
    write = text(row.get("RecipientWriteScope")).lower()
    if unit or write == "administrativeunit":
        return "unit", unit or text(row.get("CustomRecipientWriteScope"))
    return "organisation", ""


def scope_filter(scopes: Iterable[dict], name: str) -> str | None:
    """The RecipientFilter of the management scope called `name` (or with that Identity); None if absent."""
    for row in scopes:
        if name.lower() in {text(row.get("Name")).lower(), text(row.get("Identity")).lower()}:
            return text(row.get("RecipientFilter")) or text(row.get("RecipientRestrictionFilter"))
    return None


def holds(grants: Iterable[RbacGrant], role: str = MAIL_ROLE) -> list[RbacGrant]:
    return [g for g in grants if g.role.lower() == role.lower()]


def describe(grants: Iterable[RbacGrant]) -> str:
    return "; ".join(f"{g.role} scoped to {g.scope}" for g in grants)
