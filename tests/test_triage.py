"""Triage of remediation error logs, end to end through the Graph simulator over HTTPS.

Hand-written tenants, one exact case per user; hand-written logs in tests/data/triage, one case per row.
"""

from __future__ import annotations

import re
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

from audit import cli
from audit.clouds import GRAPH_APP_ID
from audit.config import AuditConfig, Config, RemediationAppConfig, TenantConfig
from audit.csvin import InputError
from audit.models import MAILBOX_INACTIVE, RESOURCE_NOT_FOUND, UNKNOWN_REASON, USER_INVALID
from audit.simulator import DEMO_REMEDIATION_APP_ID
from audit.triage import (
    ADDED,
    Outcome,
    added_headers,
    error_kind,
    mailbox_address,
    read_error_log,
    read_triage_json,
    triage,
)

DATA = Path(__file__).parent / "data" / "triage"
NOW = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)
MAIL_READWRITE = "e2a3a72e-5f79-4c64-b1b1-878b674786c9"
ORG_READ_ALL = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
E3 = ("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", "efb87545-963c-4e0d-99df-69c6916d9eb0")
AUDIT_ROLES = [
    "User.Read.All",
    "Organization.Read.All",
    "Application.Read.All",
    "MailboxSettings.Read",
    "GroupMember.Read.All",
]
FILLER = 300  # users no lookup may touch


def _id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _when(days: int) -> str:
    return (NOW + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tenant:
    """A hand-written tenant spec for the simulator: users added one exact case at a time."""

    def __init__(self, name: str, *, unverified: tuple[str, ...] = ()):
        self.name, self.domain = name, f"{name}.example"
        self.tenant_id = _id("tenant", name)
        self.graph_sp = _id(name, "graph-sp")
        self.spec: dict = {
            "tenant_id": self.tenant_id,
            "name": name,
            "display_name": name.title(),
            "verified_domains": [self.domain, f"{name}.onmicrosoft.com"],
            "unverified_domains": list(unverified),
            "subscribed_skus": [
                {
                    "skuId": E3[0],
                    "skuPartNumber": E3[1],
                    "capabilityStatus": "Enabled",
                    "consumedUnits": 1,
                    "prepaidUnits": {"enabled": 50, "suspended": 0, "warning": 0},
                    "servicePlans": [
                        {
                            "servicePlanId": E3[2],
                            "servicePlanName": "EXCHANGE_S_ENTERPRISE",
                            "appliesTo": "User",
                            "provisioningStatus": "Success",
                        }
                    ],
                }
            ],
            "clients": [
                {"client_id": _id(name, "audit-client"), "secret": f"secret-{name}-value", "roles": list(AUDIT_ROLES)}
            ],
            "service_principals": [
                {
                    "id": self.graph_sp,
                    "appId": GRAPH_APP_ID,
                    "displayName": "Microsoft Graph",
                    "accountEnabled": True,
                    "signInAudience": "AzureADMultipleOrgs",
                    "appOwnerOrganizationId": _id("microsoft"),
                    "appRoleAssignments": [],
                    "oauth2PermissionGrants": [],
                }
            ],
            "applications": [],
            "users": [],
            "deleted_users": [],
            "groups": [],
        }

    def remediation_sp(
        self, roles=(MAIL_READWRITE, ORG_READ_ALL), enabled: bool = True, owner: str | None = None
    ) -> Tenant:
        sp = _id(self.name, "remediation-sp")
        self.spec["service_principals"].append(
            {
                "id": sp,
                "appId": DEMO_REMEDIATION_APP_ID,
                "displayName": "Mail Threat Remediation",
                "accountEnabled": enabled,
                "signInAudience": "AzureADMyOrg",
                "appOwnerOrganizationId": owner or self.tenant_id,
                "appRoleAssignments": [
                    {
                        "id": _id(self.name, r),
                        "appRoleId": r,
                        "principalId": sp,
                        "principalType": "ServicePrincipal",
                        "resourceId": self.graph_sp,
                        "resourceDisplayName": "Microsoft Graph",
                    }
                    for r in roles
                ],
                "oauth2PermissionGrants": [],
            }
        )
        return self

    def registration(self, audience: str = "AzureADMyOrg", secret_days: int = 300) -> Tenant:
        self.spec["applications"].append(
            {
                "id": _id(self.name, "app"),
                "appId": DEMO_REMEDIATION_APP_ID,
                "displayName": "Mail Threat Remediation",
                "signInAudience": audience,
                "keyCredentials": [],
                "passwordCredentials": [
                    {
                        "keyId": _id(self.name, "secret"),
                        "displayName": "product",
                        "startDateTime": _when(-400),
                        "endDateTime": _when(secret_days),
                    }
                ],
            }
        )
        return self

    def user(
        self,
        nick: str,
        *,
        licensed: bool = True,
        status: str = "Enabled",
        mailbox: bool = True,
        location: str = "cloud",
        synced: bool = False,
        guest: bool = False,
        mail: str | None = None,
        aliases: tuple[str, ...] = (),
    ) -> str:
        uid = _id(self.name, nick)
        address = mail or f"{nick}@{self.domain}"
        upn = f"{nick}_partner.example#EXT#@{self.name}.onmicrosoft.com" if guest else address
        plans = [{"servicePlanId": E3[2], "service": "exchange", "capabilityStatus": status}]
        plans = plans if licensed else []
        self.spec["users"].append(
            {
                "id": uid,
                "userPrincipalName": upn,
                "displayName": nick.title(),
                "mail": address,
                "proxyAddresses": [f"SMTP:{address}", *(f"smtp:{a}" for a in aliases)],
                "userType": "Guest" if guest else "Member",
                "accountEnabled": True,
                "assignedLicenses": [{"skuId": E3[0], "disabledPlans": []}] if licensed else [],
                "assignedPlans": plans,
                "provisionedPlans": [
                    {"service": "exchange", "capabilityStatus": status, "provisioningStatus": "Success"}
                ]
                if licensed
                else [],
                "licenseAssignmentStates": [
                    {"skuId": E3[0], "state": "Active", "error": "None", "assignedByGroup": None}
                ]
                if licensed
                else [],
                "onPremisesSyncEnabled": True if synced else None,
                "onPremisesImmutableId": f"imm-{nick}" if synced else None,
                "createdDateTime": "2023-01-01T00:00:00Z",
                "mailbox": {"purpose": "user", "location": location} if mailbox else None,
            }
        )
        return uid

    def fillers(self, count: int) -> list[str]:
        return [self.user(f"filler{i:04d}") for i in range(count)]

    def deleted(self, nick: str, days_ago: int = 4) -> str:
        uid = _id(self.name, "deleted", nick)
        address = f"{nick}@{self.domain}"
        self.spec["deleted_users"].append(
            {
                "id": uid,
                "userPrincipalName": f"{uid.replace('-', '')}{address}",
                "displayName": nick.title(),
                "mail": address,
                "proxyAddresses": [f"SMTP:{address}"],
                "userType": "Member",
                "accountEnabled": True,
                "assignedLicenses": [],
                "assignedPlans": [],
                "provisionedPlans": [],
                "licenseAssignmentStates": [],
                "deletedDateTime": _when(-days_ago),
            }
        )
        return uid

    def group(self, name: str, members: list[str]) -> str:
        gid = _id(self.name, "group", name)
        self.spec["groups"].append(
            {"id": gid, "displayName": name, "mail": f"{name}@{self.domain}", "members": members}
        )
        return gid


@pytest.fixture
def three_tenants() -> tuple[Tenant, Tenant, Tenant]:
    """contoso: the app's home (single-tenant registration); fabrikam: app lacks Mail.ReadWrite;
    tailspin: app never consented."""
    contoso = Tenant("contoso", unverified=("legacy-contoso.example",)).remediation_sp().registration()
    scoped = [contoso.user(n) for n in ("alice", "hank", "ivy")]
    contoso.user("oscar")  # licensed and healthy, but outside the access policy scope
    contoso.user("ursula", licensed=False, mailbox=False)
    contoso.user("frank", licensed=False, mailbox=False)
    contoso.user("sam", status="Suspended", mailbox=False)
    contoso.user("olga", licensed=False, synced=True, location="onprem")
    contoso.user("gus", licensed=False, mailbox=False, guest=True, mail="gus@partner.example")
    contoso.deleted("dave")
    contoso.deleted("erin")
    scoped += contoso.fillers(FILLER)
    contoso.group("etd-scope", scoped)

    fabrikam = Tenant("fabrikam").remediation_sp(roles=(ORG_READ_ALL,), owner=contoso.tenant_id)
    fabrikam.user("bob", aliases=("bob.alias@acquired.example",))
    fabrikam.user("sue", mail="sue@fabrikam.onmicrosoft.com", aliases=("sue@fabrikam.example",))
    fabrikam.fillers(50)

    tailspin = Tenant("tailspin")
    tailspin.user("carol")
    tailspin.user("dan")
    return contoso, fabrikam, tailspin


def _config(make_config, sim, tenants: list[Tenant], tmp_path: Path) -> Config:
    home = tenants[0]
    policy = [
        {
            "Identity": f"{home.tenant_id}\\{DEMO_REMEDIATION_APP_ID}:S-1-5-21-1",
            "AppId": DEMO_REMEDIATION_APP_ID,
            "ScopeName": "etd-scope",
            "ScopeIdentity": f"etd-scope@{home.domain}",
            "AccessRight": "RestrictAccess",
            "IsValid": True,
        }
    ]
    return make_config(sim, [t.spec for t in tenants], tmp_path, policy=policy)


def _by_note(result) -> dict[str, object]:
    return {r.values["Note"]: r for r in result.rows}


# ---------------------------------------------------------------------------------------------------
# Pure functions


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Resource is Not Found", RESOURCE_NOT_FOUND),
        ("resource is not found.", RESOURCE_NOT_FOUND),
        ("Remediation Failed - Unknown Reason", UNKNOWN_REASON),
        ("Remediation Failed. Unknown Reason", UNKNOWN_REASON),
        ("REMEDIATION FAILED -- UNKNOWN REASON!", UNKNOWN_REASON),
        ("The Requested User is Invalid", USER_INVALID),
        ("Error: the requested user is invalid.", USER_INVALID),
        ("The mailbox is either inactive, soft-deleted, or is hosted on-premise.", MAILBOX_INACTIVE),
        ("The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise", MAILBOX_INACTIVE),
        ("Mailbox quota exceeded", None),
        ("", None),
        (None, None),
    ],
)
def test_error_text_is_matched_leniently(text, kind):
    assert error_kind(text) == kind


@pytest.mark.parametrize(
    ("cell", "address"),
    [
        ("Alice@Contoso.Example", "alice@contoso.example"),
        ("SMTP:alice@contoso.example", "alice@contoso.example"),
        ("Alice Smith <Alice@Contoso.Example>", "alice@contoso.example"),
        ("Alice Smith", ""),
        ("", ""),
    ],
)
def test_mailbox_address_is_taken_from_the_cell(cell, address):
    assert mailbox_address(cell) == address


def test_added_columns_never_clash_with_the_logs_own():
    assert added_headers(["Mailbox", "Error"]) == list(ADDED)
    assert added_headers(["mailbox", " TENANT ", "fix"])[0] == "Triage Tenant"
    assert added_headers(["mailbox", " TENANT ", "fix"])[-1] == "Triage Fix"


def test_semicolon_bom_quoted_mixed_case_headers_are_read():
    log = read_error_log(DATA / "semicolon-bom.csv")
    assert log.table.header == ["MAILBOX ADDRESS", "remediation ERROR", "Tenant", "Comment"]
    assert (log.address_column, log.error_column) == ("MAILBOX ADDRESS", "remediation ERROR")
    assert log.table.rows[0]["Comment"] == "semicolon; inside quotes"
    assert log.table.bad_rows == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("empty.csv", "empty"),
        ("binary.csv", "binary"),
        ("no-address-column.csv", "no address column among 'Subject', 'Remediation Error', 'Status'"),
    ],
)
def test_unusable_files_are_refused_before_any_lookup(name, says, tmp_path):
    unreachable = TenantConfig(
        "x",
        _id("x"),
        _id("x", "client"),
        client_secret_env="UNSET_FOR_TEST",
        authority_host="https://127.0.0.1:9",
        graph_endpoint="https://127.0.0.1:9",
    )
    config = Config(
        path=tmp_path / "c.toml",
        tenants=(unreachable,),
        remediation_app=RemediationAppConfig(app_id=DEMO_REMEDIATION_APP_ID),
        audit=AuditConfig(out_dir=tmp_path / "out"),
    )
    with pytest.raises(InputError, match=says):
        triage(config, DATA / name)
    assert not (tmp_path / "out").exists()


def test_error_column_found_by_content_when_unnamed(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text(
        "Recipient,Outcome text,When\n"
        "a@contoso.example,Remediation Failed - Unknown Reason,today\n"
        "b@contoso.example,The Requested User is Invalid,today\n",
        encoding="utf-8",
    )
    log = read_error_log(path)
    assert (log.address_column, log.error_column) == ("Recipient", "Outcome text")


# ---------------------------------------------------------------------------------------------------
# End to end


def test_every_branch_is_told_apart(sim_factory, make_config, three_tenants, tmp_path):
    contoso, fabrikam, tailspin = three_tenants
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)

    result = triage(config, DATA / "all-branches.csv", now=NOW)
    rows = _by_note(result)

    def check(note: str, tenant: str, check_id: str, outcome: Outcome, *evidence: str) -> None:
        d = rows[note].diagnosis
        assert (rows[note].tenant, d.check_id, d.outcome) == (tenant, check_id, outcome), (note, d)
        for words in evidence:
            assert words in d.evidence, (note, words, d.evidence)
        assert d.fix

    # Resource is Not Found
    check("healthy licensed mailbox", "contoso", "", Outcome.NOTHING, "mailbox probe: mailbox")
    assert rows["healthy licensed mailbox"].diagnosis.cause == "Message moved or deleted by its owner"
    check("enabled account without licence", "contoso", "no-exchange-license", Outcome.FIX, "no licences")
    # Remediation Failed - Unknown Reason
    check("outside the access policy scope", "contoso", "mailbox-outside-app-scope", Outcome.FIX, "RestrictAccess")
    check(
        "app lacks Mail.ReadWrite there",
        "fabrikam",
        "app-missing-permission",
        Outcome.FIX,
        "no Microsoft Graph application permission Mail.ReadWrite",
    )
    assert "permission Organization.Read.All" not in rows["app lacks Mail.ReadWrite there"].diagnosis.evidence
    check("app never consented there", "tailspin", "app-not-consented", Outcome.FIX, "no service principal")
    # The Requested User is Invalid
    check("matches nobody", "contoso", "recipient-not-in-directory", Outcome.FIX, "no user owns nobody@")
    check("only a soft-deleted user", "contoso", "soft-deleted-user", Outcome.FIX, "soft-deleted user")
    check(
        "single-tenant app and another tenant",
        "tailspin",
        "app-single-tenant",
        Outcome.FIX,
        "AzureADMyOrg",
        "not the app's home tenant",
    )
    check(
        "configured domain not verified",
        "contoso",
        "domain-not-verified",
        Outcome.FIX,
        "legacy-contoso.example is configured",
    )
    check("in no tenant at all", "", "recipient-not-in-directory", Outcome.FIX, "contoso, fabrikam, tailspin")
    # The Mailbox is either Inactive, Soft-Deleted, or is Hosted On-Premise
    check("no licence", "contoso", "no-exchange-license", Outcome.FIX)
    check("suspended plan", "contoso", "exchange-license-suspended", Outcome.FIX, "Suspended")
    check("on-premises mailbox", "contoso", "on-premises-mailbox", Outcome.FIX, "synchronised")
    check("soft-deleted user", "contoso", "soft-deleted-user", Outcome.FIX, "deleted")
    check("healthy today", "contoso", "", Outcome.UNEXPLAINED, "no cause found in the tenant now;")
    check("guest account", "contoso", "", Outcome.NOTHING, "guest")
    # Routing and the rest
    check("alias found in fabrikam only", "fabrikam", "", Outcome.NOTHING)
    check("routed by verified domain", "fabrikam", "", Outcome.NOTHING)
    check(
        '=HYPERLINK("http://attacker.example","click")',
        "contoso",
        "",
        Outcome.UNKNOWN_ERROR,
        "'Mailbox quota exceeded' is not one of the four",
    )
    check("no address", "", "", Outcome.NO_ADDRESS, "empty")
    assert result.exit_code == 1  # causes to fix, everything read

    # Only the listed mailboxes were looked up: no enumeration of the 350 filler users.
    looked_up = {t.name: t.looked_up for t in result.tenants}
    assert looked_up == {"contoso": 15, "fabrikam": 5, "tailspin": 5}  # 3 addresses in no tenant's domains
    counts = sim.counters.snapshot()["by_route"]
    assert counts["users.list"] == sum(looked_up.values())
    assert "users.count" not in counts
    # Probed: the 12 listed members found (8 contoso, bob and sue, carol and dan); guests are never probed.
    assert counts["mailboxSettings"] == 12
    assert counts["deletedUsers"] == 3


def test_outputs_keep_the_log_and_are_safe(sim_factory, make_config, three_tenants, tmp_path):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)
    out = tmp_path / "triage-out"

    result = triage(config, DATA / "all-branches.csv", out_dir=out, formats=("xlsx", "json", "csv"), now=NOW)

    stem = "etd-audit-triage-20250602T093000Z"
    assert sorted(p.name for p in result.files) == [f"{stem}.csv", f"{stem}.json", f"{stem}.xlsx"]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in result.files)
    assert not list(out.glob(".*.tmp"))

    wb = load_workbook(out / f"{stem}.xlsx")
    assert wb.sheetnames == ["Summary", "Rows"]
    sheet = list(wb["Rows"].iter_rows(values_only=True))
    original = (DATA / "all-branches.csv").read_text().splitlines()[0].split(",")
    assert list(sheet[0]) == [*original, "Tenant", "Cause", "Check id", "Outcome", "Evidence", "Fix"]
    assert len(sheet) == 1 + 20
    assert sheet[1][:5] == (
        "alice@contoso.example",
        "Active",
        "Resource is Not Found",
        "<m1@mail.example>",
        "healthy licensed mailbox",
    )
    injected = next(row for row in sheet if row[0] == "ivy@contoso.example")
    assert injected[4] == '\'=HYPERLINK("http://attacker.example","click")'  # text, not a formula
    assert wb["Rows"]["E15"].data_type == "s"

    summary = [row for row in wb["Summary"].iter_rows(values_only=True) if any(row)]
    assert summary[0][0] == "Remediation error log triage"
    causes = {row[0]: row[3] for row in summary if row[2] in {o.value for o in Outcome}}
    assert causes["User has no Exchange Online mailbox licence"] == 2
    assert causes["Message moved or deleted by its owner"] == 3
    assert any(row[0] == "None: every line of the file was read." for row in summary)

    data = read_triage_json(out / f"{stem}.json")
    assert data["header"] == original
    mailboxes = [r["values"]["Mailbox"] for r in data["rows"]]
    assert mailboxes[:2] == ["alice@contoso.example", "ursula@contoso.example"]
    assert data["exit_code"] == 1 and data["unreadable"] == []
    assert sum(c["rows"] for c in data["causes"]) == 20

    csv_text = (out / f"{stem}.csv").read_text(encoding="utf-8-sig")
    assert csv_text.splitlines()[0].endswith("Tenant,Cause,Check id,Outcome,Evidence,Fix")
    assert "'=HYPERLINK" in csv_text


def test_two_tenant_log_routes_by_domain_and_exits_0(sim_factory, make_config, three_tenants, tmp_path):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)

    result = triage(config, DATA / "two-tenants.csv", now=NOW)

    assert [(r.address, r.tenant, r.diagnosis.outcome) for r in result.rows] == [
        ("alice@contoso.example", "contoso", Outcome.NOTHING),
        ("sue@fabrikam.example", "fabrikam", Outcome.NOTHING),
        ("hank@contoso.example", "contoso", Outcome.UNEXPLAINED),
    ]
    # tailspin is never contacted: every address is in a configured domain
    assert {t.name: t.looked_up for t in result.tenants} == {"contoso": 2, "fabrikam": 1}
    assert sim.counters.snapshot()["by_route"]["users.list"] == 3
    assert result.exit_code == 0  # nothing to fix in the tenant; the unexplained row says so itself


def test_tenant_option_forces_one_tenant(sim_factory, make_config, three_tenants, tmp_path):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)

    result = triage(config, DATA / "two-tenants.csv", tenant="fabrikam", now=NOW)

    assert [t.name for t in result.tenants] == ["fabrikam"]
    assert [r.tenant for r in result.rows] == ["fabrikam"] * 3
    assert result.rows[0].diagnosis.check_id == "recipient-not-in-directory"  # alice lives in contoso
    assert result.rows[1].diagnosis.outcome == Outcome.NOTHING


def test_unreadable_lines_are_reported_with_their_number(sim_factory, make_config, three_tenants, tmp_path):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)

    result = triage(config, DATA / "too-many-fields.csv", now=NOW)

    assert result.unreadable == [(3, "4 fields where the header has 2")]
    assert [r.address for r in result.rows] == ["alice@contoso.example", "hank@contoso.example"]
    assert result.exit_code == 3
    data = read_triage_json(next(p for p in result.files if p.suffix == ".json"))
    assert data["unreadable"] == [{"line": 3, "reason": "4 fields where the header has 2"}]
    wb = load_workbook(next(p for p in result.files if p.suffix == ".xlsx"))
    summary = list(wb["Summary"].iter_rows(values_only=True))
    assert (3, "4 fields where the header has 2") in [row[:2] for row in summary]


def test_semicolon_log_keeps_its_own_tenant_column(sim_factory, make_config, three_tenants, tmp_path):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)

    result = triage(config, DATA / "semicolon-bom.csv", formats=("xlsx",), now=NOW)

    assert [(r.tenant, r.diagnosis.check_id) for r in result.rows] == [
        ("contoso", ""),
        ("contoso", "no-exchange-license"),
    ]
    header = next(load_workbook(result.files[0])["Rows"].iter_rows(values_only=True))
    assert header[:5] == ("MAILBOX ADDRESS", "remediation ERROR", "Tenant", "Comment", "Triage Tenant")


def test_disabled_app_and_lapsed_credential(sim_factory, make_config, tmp_path):
    woodgrove = Tenant("woodgrove").remediation_sp().registration(audience="AzureADMultipleOrgs", secret_days=-3)
    woodgrove.user("amy")
    northwind = Tenant("northwind").remediation_sp(enabled=False, owner=woodgrove.tenant_id)
    northwind.user("ben")
    sim = sim_factory([woodgrove.spec, northwind.spec])
    config = make_config(sim, [woodgrove.spec, northwind.spec], tmp_path)

    result = triage(config, DATA / "app-state.csv", now=NOW)

    amy, ben = result.rows
    assert (amy.tenant, amy.diagnosis.check_id) == ("woodgrove", "app-credential-expiring")
    assert "expired" in amy.diagnosis.evidence
    assert (ben.tenant, ben.diagnosis.check_id) == ("northwind", "app-disabled")
    assert result.exit_code == 1


def test_cli_triage_prints_files_and_exit_code(sim_factory, make_config, three_tenants, tmp_path, capsys):
    sim = sim_factory([t.spec for t in three_tenants])
    config = make_config(sim, [t.spec for t in three_tenants], tmp_path)  # also writes config.path

    code = cli.main(
        [
            "triage",
            "--config",
            str(config.path),
            str(DATA / "two-tenants.csv"),
            "--out",
            str(tmp_path / "cli-out"),
            "--format",
            "json",
        ]
    )

    printed = capsys.readouterr().out
    assert code == 0
    assert "wrote " in printed and "etd-audit-triage-" in printed
    # A short table of the rows and their likely causes, then a count per outcome.
    lines = printed.splitlines()
    assert re.fullmatch(r" row +mailbox +outcome +likely cause", lines[0])
    data_rows = len((DATA / "two-tenants.csv").read_text(encoding="utf-8").strip().splitlines()) - 1
    rows = lines[1 : 1 + data_rows]
    outcomes = "|".join(o.value for o in Outcome)
    assert all(re.match(rf"^ +\d+ +\S+@\S+ +({outcomes}) +\S", line) for line in rows), rows
    assert re.fullmatch(rf"{data_rows} rows: \d+ ({outcomes}).*", lines[1 + data_rows])
    assert len(list((tmp_path / "cli-out").glob("etd-audit-triage-*.json"))) == 1
    assert cli.main(["triage", "--config", str(config.path), str(DATA / "empty.csv")]) == 2


def test_a_tenant_that_cannot_sign_in_leaves_its_rows_not_assessed(
    sim_factory, make_config, three_tenants, tmp_path, monkeypatch
):
    sim = sim_factory([t.spec for t in three_tenants])
    config = _config(make_config, sim, list(three_tenants), tmp_path)
    fabrikam = next(t for t in config.tenants if t.name == "fabrikam")
    monkeypatch.setenv(fabrikam.client_secret_env, "not-the-secret")

    result = triage(config, DATA / "two-tenants.csv", now=NOW)

    sue = result.rows[1]
    assert (sue.tenant, sue.diagnosis.outcome) == ("fabrikam", Outcome.NOT_ASSESSED)
    assert "AADSTS7000215" in sue.diagnosis.evidence
    assert result.rows[0].diagnosis.outcome == Outcome.NOTHING  # contoso was still read
    assert {t.name: t.status for t in result.tenants} == {"contoso": "ok", "fabrikam": "failed"}
    assert result.exit_code == 3

    only_fabrikam = triage(config, DATA / "two-tenants.csv", tenant="fabrikam", now=NOW)
    assert only_fabrikam.exit_code == 2  # no tenant could be signed in to
