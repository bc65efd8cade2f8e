"""The shared predicates the checks rely on."""

from __future__ import annotations

from audit.checks._facts import has_mailbox, is_hybrid_mail_enabled, user_addresses
from audit.licensing import SkuIndex, mailbox_plans
from audit.models import MailboxProbe, normalize_address
from tests.checks.builders import EXO_P1, EXO_P2, FOUNDATION, SKU_E3, snapshot, user


def test_normalize_address():
    assert normalize_address("SMTP:Alice@Contoso.COM") == "alice@contoso.com"
    assert normalize_address(" smtp: bob@contoso.com ") == "bob@contoso.com"
    assert normalize_address("SIP:alice@contoso.com") == "sip:alice@contoso.com"
    assert normalize_address(None) == ""


def test_user_addresses_include_mail_upn_and_smtp_proxies_only():
    u = user(
        "a",
        upn="A@contoso.onmicrosoft.com",
        mail="Alice@contoso.com",
        proxy=["SMTP:Alice@contoso.com", "smtp:al@contoso.com", "x500:/o=Org/cn=a", "SIP:a@contoso.com"],
    )
    assert user_addresses(u) == {"a@contoso.onmicrosoft.com", "alice@contoso.com", "al@contoso.com"}


def test_hybrid_mail_enabled_needs_sync_immutable_id_and_an_address():
    assert is_hybrid_mail_enabled(user("h", synced=True))
    assert is_hybrid_mail_enabled(user("p", synced=True, mail=None, proxy=["smtp:p@contoso.com"]))
    assert not is_hybrid_mail_enabled(user("n", synced=True, mail=None, proxy=["SIP:n@contoso.com"]))
    assert not is_hybrid_mail_enabled(user("c", synced=False))


def test_mailbox_plans_sort_by_status_and_ignore_foundation():
    u = user("u", licenses=[(SKU_E3,)], plans=[(EXO_P2, "Warning"), (FOUNDATION, "Enabled"), (EXO_P1, "LockedOut")])
    plans = mailbox_plans(u, SkuIndex.from_skus(snapshot().subscribed_skus))
    assert [p.plan_id for p in plans.grace] == [EXO_P2]
    assert [p.plan_id for p in plans.lapsed] == [EXO_P1]
    assert [p.plan_id for p in plans.other_exchange] == [FOUNDATION]
    assert not plans.enabled and plans.present


def test_unknown_sku_may_carry_a_plan_until_the_tenant_says_otherwise():
    custom_sku = "0badc0de-0000-4000-8000-000000000001"
    u = user("u", licenses=[(SKU_E3, EXO_P2), (custom_sku,)], plans=[(EXO_P2, "Enabled")])
    # E3 switches Plan 2 off; the unknown SKU might carry it, so assignedPlans is trusted.
    assert mailbox_plans(u, SkuIndex.from_skus(snapshot().subscribed_skus)).enabled
    # The tenant's SKU list says the custom SKU carries Plan 1 only: Plan 2 is switched off everywhere.
    skus = [
        {"skuId": custom_sku, "skuPartNumber": "CUSTOM_SUITE", "servicePlans": [{"servicePlanId": EXO_P1}]},
        {"skuId": SKU_E3, "skuPartNumber": "ENTERPRISEPACK", "servicePlans": [{"servicePlanId": EXO_P2}]},
    ]
    plans = mailbox_plans(u, SkuIndex.from_skus(snapshot(skus=skus).subscribed_skus))
    assert not plans.enabled and plans.disabled == ((EXO_P2, "ENTERPRISEPACK"),)


def test_has_mailbox_prefers_the_probe():
    no_plans = mailbox_plans(user("u"), SkuIndex.from_skus(snapshot().subscribed_skus))
    assert has_mailbox(MailboxProbe("mailbox"), no_plans) is True
    assert has_mailbox(MailboxProbe("no_mailbox"), no_plans) is False
    assert has_mailbox(MailboxProbe("failed"), no_plans) is None
    assert has_mailbox(None, no_plans) is False
