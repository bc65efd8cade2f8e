"""RBAC for Applications rows and recipient properties (audit.rbac), pure functions.

Row shapes follow Microsoft365DSC's EXOManagementRoleAssignment resource, which reads an administrative-unit
assignment back as RecipientWriteScope "AdministrativeUnit" with the unit's id in CustomRecipientWriteScope,
and a management-scope one from CustomResourceScope; roles are named "Application <Graph permission>"
(learn.microsoft.com/exchange/permissions-exo/application-rbac).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from audit import opath, rbac
from audit.models import MailboxProbe
from tests.checks.builders import user as plain_user


def user(attributes: tuple) -> object:
    return replace(plain_user("u1"), attributes=attributes)


SP = {"id": "6233fba6-0198-4277-892f-9275bf728bcc", "appId": "a", "displayName": "Remediation"}


def test_scope_of_each_assignment_shape():
    assert rbac.scope_of({"CustomResourceScope": "Sales"}) == ("management", "Sales")
    unit = {"RecipientWriteScope": "AdministrativeUnit", "CustomRecipientWriteScope": "u-1"}
    assert rbac.scope_of(unit) == ("unit", "u-1")
    assert rbac.scope_of({"RecipientAdministrativeUnitScope": "u-2"}) == ("unit", "u-2")
    assert rbac.scope_of({"RecipientWriteScope": "Organization"}) == ("organisation", "")


def test_assignments_of_this_tenants_service_principal_only():
    rows = [
        {"Role": "Application Mail.ReadWrite", "RoleAssignee": SP["id"], "RoleAssigneeType": "ServicePrincipal"},
        {"Role": "Application Mail.ReadWrite", "RoleAssignee": "Remediation", "RoleAssigneeType": "ServicePrincipal"},
        {"Role": "Application Mail.Read", "RoleAssignee": SP["id"], "Enabled": "False"},
        {"Role": "Mail Recipients", "RoleAssignee": SP["id"]},
        {"Role": "Application Mail.ReadWrite", "RoleAssignee": SP["id"], "RoleAssigneeType": "User"},
    ]
    keys = rbac.assignee_keys(SP)
    assert [r["RoleAssignee"] for r in rbac.app_assignments(rows, keys)] == [SP["id"]]  # a name alone: not ours
    other_tenant = {"ObjectId": "11111111-0000-0000-0000-000000000000", "DisplayName": "Remediation"}
    assert "remediation" not in rbac.assignee_keys(SP, [other_tenant])
    ours = {"ObjectId": SP["id"].upper(), "DisplayName": "Remediation"}
    assert len(rbac.app_assignments(rows, rbac.assignee_keys(SP, [ours]))) == 2
    assert rbac.assignee_keys(None, [ours]) == set()


def test_recipient_values_come_from_graph_properties():
    u = user(attributes=(("department", "Sales"), ("extensionAttribute3", "x"), ("country", "Germany")))
    probe = MailboxProbe("mailbox", purpose="room")
    groups = {"cn=sales": frozenset({u.id})}
    assert rbac.recipient_value("Department", u, probe, {}) == "Sales"
    assert rbac.recipient_value("customattribute3", u, probe, {}) == "x"
    assert rbac.recipient_value("CustomAttribute4", u, probe, {}) is None
    assert rbac.recipient_value("RecipientTypeDetails", u, probe, {}) == "RoomMailbox"
    assert rbac.recipient_value("RecipientType", u, probe, {}) == "UserMailbox"
    assert rbac.recipient_value("MemberOfGroup", u, probe, groups) == ("cn=sales",)
    with pytest.raises(opath.Unknown):
        rbac.recipient_value("RecipientTypeDetails", u, MailboxProbe("failed"), {})


def test_filters_graph_cannot_answer_are_named():
    assert rbac.unreadable_properties(opath.parse("Database -eq 'db1' -or Department -eq 'x'")) == ["Database"]
    assert rbac.unreadable_properties(opath.parse("CountryOrRegion -eq 'Germany'")) == []
    assert rbac.unreadable_properties(opath.parse("CountryOrRegion -eq 'DE'")) == [
        "CountryOrRegion (as a two-letter code)"
    ]


def test_grant_reaches():
    u = user(attributes=(("department", "Legal"),))
    probe = MailboxProbe("mailbox", purpose="user")
    scoped = rbac.RbacGrant("a", rbac.MAIL_ROLE, "s", filter=opath.parse("Department -ne 'Legal'"))
    assert scoped.reaches(u, probe) is False
    assert rbac.RbacGrant("b", rbac.MAIL_ROLE, "u", members=frozenset({u.id})).reaches(u, probe) is True
    assert rbac.RbacGrant("c", rbac.MAIL_ROLE, "x", unreadable="why").reaches(u, probe) is None
    assert rbac.RbacGrant("d", rbac.MAIL_ROLE, "org").organisation_wide
