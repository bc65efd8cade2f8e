"""soft-deleted-user, recipient-not-in-directory, mailbox-outside-app-scope, domain-not-verified."""

from __future__ import annotations

from audit.checks import (
    domain_not_verified,
    mailbox_outside_app_scope,
    recipient_not_in_directory,
    run_checks,
    soft_deleted_user,
)
from audit.models import (
    MAILBOX_INACTIVE,
    UNKNOWN_REASON,
    USER_INVALID,
    AppScope,
    Dataset,
    MailboxProbe,
    Severity,
)
from tests.checks.builders import (
    MAILBOX,
    NO_MAILBOX,
    ORG_READ_ALL,
    by_user,
    context,
    e3_user,
    role,
    run,
    snapshot,
    unlicensed,
    user,
)

# --- soft-deleted-user -------------------------------------------------------------------------------


def test_soft_deleted_user_reports_date_and_days_left():
    gone = e3_user("gone", deleted="2025-11-21T12:00:00Z", display_name="Gone Person")
    [f] = run(soft_deleted_user, snapshot(deleted=[gone]))
    assert (f.check_id, f.severity, f.user_id, f.display_name) == (
        "soft-deleted-user",
        Severity.MEDIUM,
        "gone",
        "Gone Person",
    )
    assert f.predicted_error == f"{MAILBOX_INACTIVE} (then {USER_INVALID} once purged)"
    assert "deleted 2025-11-21" in f.evidence
    assert "purged permanently around 2025-12-21 (20 days left)" in f.evidence
    assert "held EXCHANGE_S_ENTERPRISE (Enabled)" in f.evidence


def test_days_left_never_goes_negative():
    old = e3_user("old", deleted="2025-10-01T00:00:00Z")
    [f] = run(soft_deleted_user, snapshot(deleted=[old]))
    assert "(0 days left)" in f.evidence


def test_deleted_guest_or_account_without_address_is_a_near_miss():
    guest = unlicensed("g", guest=True, deleted="2025-11-21T12:00:00Z")
    no_address = unlicensed("svc", mail=None, deleted="2025-11-21T12:00:00Z")
    assert run(soft_deleted_user, snapshot(deleted=[guest, no_address])) == []


def test_soft_deleted_users_not_readable_is_not_evaluated():
    reason = "the audit app may not read soft-deleted users; grant User.Read.All"
    _, not_evaluated = run_checks(snapshot(deleted=Dataset.missing(reason)), context())
    assert {n.check_id: n.reason for n in not_evaluated}["soft-deleted-user"] == reason


# --- recipient-not-in-directory ----------------------------------------------------------------------


def directory():
    alice = e3_user(
        "alice",
        upn="alice@contoso.onmicrosoft.com",
        mail="Alice@Contoso.com",
        proxy=["SMTP:Alice@Contoso.com", "smtp:a.smith@contoso.com", "SIP:alice.sip@contoso.com"],
    )
    carol = e3_user("carol", upn="carol@contoso.com", deleted="2025-11-25T08:00:00Z")
    return [alice], [carol]


def test_recipient_variants_match_case_insensitively_and_without_smtp_prefix():
    users, deleted = directory()
    recipients = [
        "ALICE@contoso.com",
        "smtp:A.Smith@Contoso.com",
        "SMTP:alice@CONTOSO.onmicrosoft.com",
        "SMTP: alice@contoso.com",
        "  a.smith@contoso.com  ",
    ]
    assert run(recipient_not_in_directory, snapshot(users, deleted=deleted, recipients=recipients)) == []


def test_unknown_recipient_is_flagged_once():
    users, deleted = directory()
    snap = snapshot(users, deleted=deleted, recipients=["bob@contoso.com", " Bob@Contoso.com", "smtp:BOB@contoso.com"])
    [f] = run(recipient_not_in_directory, snap)
    assert (f.check_id, f.severity, f.predicted_error) == (
        "recipient-not-in-directory",
        Severity.MEDIUM,
        USER_INVALID,
    )
    assert f.user_principal_name == "bob@contoso.com" and f.user_id is None
    assert f.evidence == "no user owns bob@contoso.com as mail, user principal name or proxy address"


def test_sip_proxy_address_does_not_own_a_mail_address():
    users, deleted = directory()
    [f] = run(recipient_not_in_directory, snapshot(users, deleted=deleted, recipients=["alice.sip@contoso.com"]))
    assert f.user_principal_name == "alice.sip@contoso.com"


def test_recipient_owned_only_by_a_soft_deleted_user_says_so():
    users, deleted = directory()
    [f] = run(recipient_not_in_directory, snapshot(users, deleted=deleted, recipients=["Carol@contoso.com"]))
    assert "belongs only to the soft-deleted user carol@contoso.com (deleted 2025-11-25)" in f.evidence
    assert f.user_id is None  # carol's own soft-deleted-user finding carries her id


def test_recipient_evidence_mentions_unreadable_deleted_users():
    users, _ = directory()
    snap = snapshot(users, deleted=Dataset.missing("grant User.Read.All"), recipients=["x@contoso.com"])
    [f] = run(recipient_not_in_directory, snap)
    assert "soft-deleted users could not be checked: grant User.Read.All" in f.evidence


def test_no_recipients_list_is_not_evaluated():
    _, not_evaluated = run_checks(snapshot([e3_user()]), context())
    assert {n.check_id: n.reason for n in not_evaluated}["recipient-not-in-directory"] == "no recipients list"


# --- mailbox-outside-app-scope -----------------------------------------------------------------------

SCOPE = AppScope(
    restrict={"etd-scope@contoso.com": frozenset({"in", "denied"})},
    deny={"vip-block@contoso.com": frozenset({"denied"})},
)


def test_mailboxes_outside_the_policy_scope_are_flagged():
    users = [
        e3_user("in"),
        e3_user("out"),
        e3_user("denied"),
        unlicensed("nobox"),
        unlicensed("shared", enabled=False),
        e3_user("refused"),
    ]
    probes = {
        "in": MAILBOX,
        "out": MAILBOX,
        "denied": MAILBOX,
        "nobox": NO_MAILBOX,
        "shared": MailboxProbe("mailbox", purpose="shared"),
        "refused": MailboxProbe("access_denied", code="ErrorAccessDenied"),
    }
    findings = by_user(run(mailbox_outside_app_scope, snapshot(users, probes=probes, app_scope=SCOPE)))
    assert set(findings) == {"out", "denied", "shared"}
    out = findings["out"]
    assert (out.severity, out.predicted_error) == (Severity.HIGH, UNKNOWN_REASON)
    assert "in none of the RestrictAccess scopes (etd-scope@contoso.com)" in out.evidence
    assert "in DenyAccess scope vip-block@contoso.com" in findings["denied"].evidence
    assert "purpose shared" in findings["shared"].evidence


def test_disabled_account_with_a_licensed_mailbox_outside_the_scope_is_not_flagged():
    leaver = e3_user("leaver", enabled=False)
    assert run(mailbox_outside_app_scope, snapshot([leaver], probes={"leaver": MAILBOX}, app_scope=SCOPE)) == []
    assert run(mailbox_outside_app_scope, snapshot([leaver], app_scope=SCOPE)) == []


def test_guests_and_leavers_are_skipped_and_the_mailboxes_after_them_still_checked():
    users = [e3_user("guest", guest=True), e3_user("leaver", enabled=False), e3_user("out")]
    probes = {"guest": MAILBOX, "leaver": MAILBOX, "out": MAILBOX}
    assert list(by_user(run(mailbox_outside_app_scope, snapshot(users, probes=probes, app_scope=SCOPE)))) == ["out"]


def test_rbac_only_flags_each_mailbox_outside_the_administrative_unit_whatever_its_place():
    # The app holds Mail.ReadWrite only through an RBAC for Applications grant scoped to an administrative
    # unit (learn.microsoft.com/exchange/permissions-exo/application-rbac): members in, everyone else out.
    from dataclasses import replace

    from audit import rbac

    grant = rbac.RbacGrant("etd-au", rbac.MAIL_ROLE, "administrative unit Sales", members=frozenset({"a", "c"}))
    users = [e3_user("a"), e3_user("b"), e3_user("c"), e3_user("d")]
    snap = snapshot(users, probes={u.id: MAILBOX for u in users}, roles=[role(ORG_READ_ALL)])
    found = by_user(run(mailbox_outside_app_scope, replace(snap, rbac=Dataset((grant,)))))
    assert list(found) == ["b", "d"]
    assert "outside every scope of the app's Exchange RBAC for Applications grant" in found["d"].evidence


def test_scope_falls_back_to_licences_without_probes():
    users = [e3_user("out"), unlicensed("nobox")]
    [f] = run(mailbox_outside_app_scope, snapshot(users, app_scope=SCOPE))
    assert f.user_id == "out" and "directory data only" in f.evidence


def test_no_policy_for_the_app_is_a_near_miss():
    assert run(mailbox_outside_app_scope, snapshot([e3_user("out")], app_scope=Dataset(None))) == []


def test_without_a_policy_export_the_check_is_not_evaluated_with_the_reason():
    _, not_evaluated = run_checks(snapshot([e3_user("out")]), context())
    reason = {n.check_id: n.reason for n in not_evaluated}["mailbox-outside-app-scope"]
    assert "Graph cannot read Exchange application access policies" in reason


# --- domain-not-verified -----------------------------------------------------------------------------


def test_configured_domain_not_verified_is_flagged_per_domain():
    findings = run(domain_not_verified, snapshot(), context(domains=("CONTOSO.com", "fabrikam.com")))
    [f] = findings
    assert (f.check_id, f.severity, f.predicted_error) == ("domain-not-verified", Severity.HIGH, USER_INVALID)
    assert (f.user_id, f.user_principal_name, f.display_name) == (None, None, None)
    assert "fabrikam.com is configured for this tenant" in f.evidence
    assert f.subject == "fabrikam.com"
    assert "contoso.com, contoso.onmicrosoft.com" in f.evidence


def test_verified_domains_are_a_near_miss():
    assert run(domain_not_verified, snapshot(), context(domains=("contoso.com", "Contoso.onmicrosoft.com"))) == []


def test_unreadable_organization_is_not_evaluated():
    snap = snapshot(organization=Dataset.missing("grant Organization.Read.All"))
    _, not_evaluated = run_checks(snap, context(domains=("fabrikam.com",)))
    assert {n.check_id: n.reason for n in not_evaluated}["domain-not-verified"] == "grant Organization.Read.All"


def test_users_with_mailboxes_are_what_the_scope_check_reads():
    # A user given only a mailbox probe and no licence still counts as a mailbox user.
    u = user("probe-only")
    [f] = run(mailbox_outside_app_scope, snapshot([u], probes={"probe-only": MAILBOX}, app_scope=SCOPE))
    assert f.user_id == "probe-only"


# An access policy and RBAC for Applications grants together: RBAC grants are independent of the Entra grant
# the access policy limits (learn.microsoft.com/graph/auth-limit-mailbox-access), so they add to it. A mailbox
# the policy keeps the app away from is still reached when a grant's scope holds it, and is not flagged when
# the audit cannot tell.
SALES = "administrative unit Sales"
SHARED_ONLY = "management scope Shared only"


def _grants():
    from audit import opath, rbac

    return (
        rbac.RbacGrant("etd-au", rbac.MAIL_ROLE, SALES, members=frozenset({"reached"})),
        rbac.RbacGrant(
            "etd-shared",
            rbac.MAIL_ROLE,
            SHARED_ONLY,
            filter_text="RecipientTypeDetails -eq 'SharedMailbox'",
            filter=opath.parse("RecipientTypeDetails -eq 'SharedMailbox'"),
        ),
    )


def _with_rbac(snap, grants):
    from dataclasses import replace

    return replace(snap, rbac=grants if isinstance(grants, Dataset) else Dataset(grants))


def test_a_mailbox_outside_the_policy_is_flagged_only_when_no_grant_reaches_it_or_may():
    users = [e3_user("reached"), e3_user("unsure"), e3_user("out"), e3_user("shared"), e3_user("after")]
    # "unsure" was not probed: whether it is a shared mailbox is unknown, so the second grant may reach it.
    probes = {
        "reached": MAILBOX,
        "out": MAILBOX,
        "shared": MailboxProbe("mailbox", purpose="shared"),
        "after": MAILBOX,
    }
    snap = _with_rbac(snapshot(users, probes=probes, app_scope=SCOPE), _grants())
    found = by_user(run(mailbox_outside_app_scope, snap))
    assert list(found) == ["out", "after"]
    assert found["out"].evidence == (
        "mailbox in none of the RestrictAccess scopes (etd-scope@contoso.com), and outside the RBAC for "
        f"Applications scopes (Application Mail.ReadWrite scoped to {SALES}; Application Mail.ReadWrite scoped to "
        f"{SHARED_ONLY}); mailbox probe: mailbox, purpose user"
    )


def test_without_mail_readwrite_or_a_grant_the_policy_alone_decides():
    users = [e3_user("in"), e3_user("out")]
    for roles in ([role(ORG_READ_ALL)], Dataset.missing("the app's roles could not be read")):
        snap = _with_rbac(snapshot(users, probes={"in": MAILBOX, "out": MAILBOX}, app_scope=SCOPE, roles=roles), ())
        assert list(by_user(run(mailbox_outside_app_scope, snap))) == ["out"]


def test_unreadable_app_roles_never_make_an_rbac_grant_the_only_way_in():
    # Without the app's Graph roles the audit cannot tell that RBAC is its only way to Mail.ReadWrite: the
    # policy decides, and the grants add to it.
    snap = snapshot(
        [e3_user("in"), e3_user("out")],
        probes={"in": MAILBOX, "out": MAILBOX},
        app_scope=SCOPE,
        roles=Dataset.missing("the app's roles could not be read"),
    )
    assert list(by_user(run(mailbox_outside_app_scope, _with_rbac(snap, _grants())))) == ["out"]


def test_a_deny_only_policy_and_several_scopes_are_each_named():
    deny_only = AppScope(restrict={}, deny={"vip-block@contoso.com": frozenset({"denied"})})
    snap = snapshot(
        [e3_user("denied"), e3_user("free")], probes={"denied": MAILBOX, "free": MAILBOX}, app_scope=deny_only
    )
    assert list(by_user(run(mailbox_outside_app_scope, snap))) == ["denied"]
    several = AppScope(
        restrict={"b-scope@contoso.com": frozenset({"in"}), "a-scope@contoso.com": frozenset({"in"})},
        deny={"vip-2@contoso.com": frozenset({"denied"}), "vip-1@contoso.com": frozenset({"denied"})},
    )
    users = [e3_user("in"), e3_user("out"), e3_user("denied")]
    probes = {"in": MAILBOX, "out": MAILBOX, "denied": MAILBOX}
    found = by_user(run(mailbox_outside_app_scope, snapshot(users, probes=probes, app_scope=several)))
    assert "in none of the RestrictAccess scopes (a-scope@contoso.com, b-scope@contoso.com);" in found["out"].evidence
    assert "in DenyAccess scope vip-1@contoso.com, vip-2@contoso.com;" in found["denied"].evidence


def test_unreadable_rbac_exports_or_grant_scopes_leave_the_check_not_evaluated_with_their_reason():
    from audit import rbac

    snap = snapshot([e3_user("out")], probes={"out": MAILBOX}, app_scope=SCOPE)
    broken = Dataset.missing("remediation_app.role_assignments_file: no such file")
    _, not_evaluated = run_checks(_with_rbac(snap, broken), context())
    assert {n.check_id: n.reason for n in not_evaluated}["mailbox-outside-app-scope"] == broken.error
    unreadable = (rbac.RbacGrant("etd-x", rbac.MAIL_ROLE, "management scope X", unreadable="filters on Office"),)
    _, not_evaluated = run_checks(_with_rbac(snap, unreadable), context())
    assert {n.check_id: n.reason for n in not_evaluated}["mailbox-outside-app-scope"] == (
        "the scope of the remediation app's RBAC for Applications grant is not evaluated: Application "
        "Mail.ReadWrite scoped to management scope X: filters on Office"
    )
