"""The shipped licensing tables and their derivation from Microsoft's licensing CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import audit.licensing as licensing

MAILBOX_PLANS = {
    "9aaf7827-d63c-4b61-89c3-182f06f82e5c": "EXCHANGE_S_STANDARD",
    "efb87545-963c-4e0d-99df-69c6916d9eb0": "EXCHANGE_S_ENTERPRISE",
    "4a82b400-a79f-41a4-b4e2-e94f5787b113": "EXCHANGE_S_DESKLESS",
    "1126bef5-da20-4f07-b45e-ad25d2581aa8": "EXCHANGE_S_ESSENTIALS",
    "d42bdbd6-c335-4231-ab3d-c8f348d5aff5": "EXCHANGE_L_STANDARD",
    "fc52cc4b-ed7d-472d-bbe7-b081c23ecc56": "EXCHANGE_S_STANDARD_MIDMARKET",
    "90927877-dcff-4af6-b346-2332c0b15bb7": "EXCHANGE_B_STANDARD",
    "e9b4930a-925f-45e2-ac2a-3f7788ca6fdd": "EXCHANGE_S_STANDARD_GOV",
    "8c3069c0-ccdb-44be-ab77-986203a67df2": "EXCHANGE_S_ENTERPRISE_GOV",
    "88f4d7ef-a73b-4246-8047-516022144c9f": "EXCHANGE_S_DESKLESS_GOV",
}
NO_MAILBOX_PLANS = {
    "113feb6c-3fe4-4440-bddc-54d774bf0318": "EXCHANGE_S_FOUNDATION",
    "922ba911-5694-4e99-a794-73aed9bfeec8": "EXCHANGE_S_FOUNDATION_GOV",
    "176a09a6-7ec5-4039-ac02-b2791c6ba793": "EXCHANGE_S_ARCHIVE_ADDON",
    "da040e0a-b393-4bea-bb76-928b3fa1cf5a": "EXCHANGE_S_ARCHIVE",
    "326e2b78-9d27-42c9-8509-46c827743a17": "EOP_ENTERPRISE",
    "34c0d7a0-a70f-4668-9238-47f9fc208882": "EXCHANGE_ANALYTICS",
    "cd31b152-6326-4d1b-ae1b-997b625182e6": "MIP_S_Exchange",
    "897d51f1-2cfa-4848-9b30-469149f5e68e": "EXCHANGEONLINE_MULTIGEO",
}


def test_mailbox_plan_ids_are_exactly_the_exchange_online_mailbox_plans():
    assert licensing.MAILBOX_PLAN_IDS == frozenset(MAILBOX_PLANS)
    assert not licensing.MAILBOX_PLAN_IDS & set(NO_MAILBOX_PLANS)


@pytest.mark.parametrize("plan_id,name", [*MAILBOX_PLANS.items(), *NO_MAILBOX_PLANS.items()])
def test_plan_names_of_known_guids(plan_id, name):
    assert licensing.plan_name(plan_id) == name


@pytest.mark.parametrize(
    "sku_id,part,product",
    [
        ("6fd2c87f-b296-42f0-b197-1e91e994b900", "ENTERPRISEPACK", "Office 365 E3"),
        ("c7df2760-2c81-4ef7-b578-5b5392b571df", "ENTERPRISEPREMIUM", "Office 365 E5"),
        ("4b9405b0-7788-4568-add1-99614e613b69", "EXCHANGESTANDARD", "Exchange Online (Plan 1)"),
        ("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3", "Microsoft 365 E3"),
        ("66b55226-6b4f-492c-910c-a3b7a3c9d993", "SPE_F1", "Microsoft 365 F3"),
    ],
)
def test_sku_names_of_known_guids(sku_id, part, product):
    assert licensing.sku_part_number(sku_id) == part
    assert licensing.product_name(sku_id) == product


def test_lookups_ignore_case_and_whitespace_and_return_none_when_unknown():
    assert licensing.plan_name(" 9AAF7827-D63C-4B61-89C3-182F06F82E5C ") == "EXCHANGE_S_STANDARD"
    assert licensing.plan_friendly_name("9aaf7827-d63c-4b61-89c3-182f06f82e5c") == "Exchange Online (Plan 1)"
    assert licensing.sku_part_number("6FD2C87F-B296-42F0-B197-1E91E994B900") == "ENTERPRISEPACK"
    assert licensing.plan_name("00000000-0000-0000-0000-000000000000") is None
    assert licensing.sku_part_number(None) is None
    assert licensing.product_name("not-a-guid") is None


def test_sku_mailbox_plans():
    e3 = "6fd2c87f-b296-42f0-b197-1e91e994b900"
    power_bi_free = "a403ebcc-fae0-4ca2-8c8c-7a907fd6c235"
    assert licensing.sku_mailbox_plan_ids(e3) == {"efb87545-963c-4e0d-99df-69c6916d9eb0"}
    assert licensing.sku_mailbox_plan_ids(power_bi_free) == frozenset()
    gcc_high_e3 = next(r for r in _shipped("skus.csv") if r["sku_part_number"] == "ENTERPRISEPACK_USGOV_GCCHIGH")
    assert gcc_high_e3["mailbox_plans"] == "efb87545-963c-4e0d-99df-69c6916d9eb0"


def _shipped(name: str) -> list[dict[str, str]]:
    path = Path(licensing.__file__).parent / "data" / name
    return list(csv.DictReader(path.open(encoding="utf-8")))


def test_shipped_tables_follow_the_one_mailbox_rule():
    plans = _shipped("service_plans.csv")
    assert len(plans) > 700 and len(_shipped("skus.csv")) > 500
    flagged = {r["plan_name"] for r in plans if r["gives_mailbox"] == "true"}
    assert flagged == licensing.MAILBOX_PLAN_NAMES
    assert all(r["plan_id"] == r["plan_id"].strip().lower() for r in plans)


def test_data_date_is_documented():
    assert licensing.DATA_DATE == "2025-12"
    notes = (Path(licensing.__file__).parent / "data" / "LICENSING.md").read_text(encoding="utf-8")
    assert licensing.DATA_DATE in notes and "python -m audit.licensing" in notes


HEADER = "Product_Display_Name,String_Id,GUID,Service_Plan_Name,Service_Plan_Id,Service_Plans_Included_Friendly_Names"


def _source(rows: list[str], header: str = HEADER, bom: bool = True) -> io.StringIO:
    # Every mailbox plan must exist in a source, or the derivation stops.
    filler = [
        f"Filler,FILLER,00000000-0000-0000-0000-00000000{i:04d},{name},{plan_id},{name}"
        for i, (plan_id, name) in enumerate(MAILBOX_PLANS.items())
    ]
    return io.StringIO(("\ufeff" if bom else "") + "\n".join([header, *rows, *filler]) + "\n")


def test_derive_tables_from_a_small_source():
    rows = [
        "Office 365 E3,ENTERPRISEPACK ,6FD2C87F-B296-42F0-B197-1E91E994B900,EXCHANGE_S_ENTERPRISE,"
        "EFB87545-963C-4E0D-99DF-69C6916D9EB0,EXCHANGE ONLINE (PLAN 2)",
        "Office 365 E3,ENTERPRISEPACK,6fd2c87f-b296-42f0-b197-1e91e994b900,EXCHANGE_S_FOUNDATION,"
        "113feb6c-3fe4-4440-bddc-54d774bf0318,Exchange Foundation",
        "Power BI,POWER_BI_STANDARD,a403ebcc-fae0-4ca2-8c8c-7a907fd6c235,EXCHANGE_S_FOUNDATION,"
        "113feb6c-3fe4-4440-bddc-54d774bf0318,EXCHANGE FOUNDATION",
        "Office 365 E5,ENTERPRISEPREMIUM,c7df2760-2c81-4ef7-b578-5b5392b571df,EXCHANGE_S_ENTERPRISE,"
        "efb87545-963c-4e0d-99df-69c6916d9eb0,Exchange Online (Plan 2)",
    ]
    skus, plans = licensing.derive_tables(_source(rows))
    by_sku = {s.sku_id: s for s in skus}
    e3 = by_sku["6fd2c87f-b296-42f0-b197-1e91e994b900"]
    assert (e3.sku_part_number, e3.product_name) == ("ENTERPRISEPACK", "Office 365 E3")
    assert e3.mailbox_plans == ("efb87545-963c-4e0d-99df-69c6916d9eb0",)
    assert by_sku["a403ebcc-fae0-4ca2-8c8c-7a907fd6c235"].mailbox_plans == ()
    by_plan = {p.plan_id: p for p in plans}
    assert by_plan["efb87545-963c-4e0d-99df-69c6916d9eb0"].gives_mailbox
    assert not by_plan["113feb6c-3fe4-4440-bddc-54d774bf0318"].gives_mailbox
    # A tie between spellings goes to the one that is not all capitals.
    assert by_plan["113feb6c-3fe4-4440-bddc-54d774bf0318"].friendly_name == "Exchange Foundation"
    assert [s.sku_id for s in skus] == sorted(s.sku_id for s in skus)


def test_derive_reads_old_semicolon_copies_without_bom():
    header = HEADER.replace("String_Id", "String_ Id").replace(",", ";")
    rows = [
        "Office 365 E1;STANDARDPACK;18181a46-0d4e-45cd-891e-60aabd171b4e;EXCHANGE_S_STANDARD;"
        "9aaf7827-d63c-4b61-89c3-182f06f82e5c;Exchange Online (Plan 1)"
    ]
    source = _source(rows, header=header, bom=False)
    source = io.StringIO(source.getvalue().replace(",", ";"))
    skus, _ = licensing.derive_tables(source)
    assert {s.sku_part_number for s in skus} >= {"STANDARDPACK"}


def test_derive_stops_when_a_mailbox_plan_is_missing_from_the_source():
    source = io.StringIO(HEADER + "\nX,X,1,EXCHANGE_S_STANDARD,9aaf7827-d63c-4b61-89c3-182f06f82e5c,P1\n")
    with pytest.raises(ValueError, match="EXCHANGE_S_ENTERPRISE"):
        licensing.derive_tables(source)


def test_derive_warns_about_unreviewed_exchange_plans(caplog):
    rows = [
        "New,NEWSKU,11111111-2222-3333-4444-555555555555,EXCHANGE_S_NEWTHING,"
        "22222222-3333-4444-5555-666666666666,Something new"
    ]
    with caplog.at_level("WARNING", logger="audit"):
        licensing.derive_tables(_source(rows))
    assert "unreviewed Exchange plan EXCHANGE_S_NEWTHING" in caplog.text


def test_regenerate_command_writes_both_tables(tmp_path, capsys):
    source = tmp_path / "source.csv"
    source.write_text(_source([]).getvalue(), encoding="utf-8")
    out = tmp_path / "out"
    assert licensing.main([str(source), "--out", str(out)]) == 0
    plans = list(csv.DictReader((out / "service_plans.csv").open(encoding="utf-8")))
    assert {r["plan_name"] for r in plans if r["gives_mailbox"] == "true"} == licensing.MAILBOX_PLAN_NAMES
    assert (
        (out / "skus.csv").read_text(encoding="utf-8").startswith("sku_id,sku_part_number,product_name,mailbox_plans\n")
    )
    assert "mailbox plans (10)" in capsys.readouterr().out


def test_an_unknown_plan_has_no_friendly_name():
    assert licensing.plan_friendly_name("00000000-0000-0000-0000-000000000000") is None


def test_derive_lists_the_missing_columns_and_mailbox_plans_by_name():
    with pytest.raises(ValueError) as err:
        licensing.derive_tables(io.StringIO("Product_Display_Name,Service_Plan_Name,Service_Plan_Id\n"))
    assert str(err.value) == "licensing CSV lacks the column(s) GUID, String_Id"
    source = io.StringIO(HEADER + "\nX,X,1,EXCHANGE_S_STANDARD,9aaf7827-d63c-4b61-89c3-182f06f82e5c,P1\n")
    with pytest.raises(ValueError) as err:
        licensing.derive_tables(source)
    assert str(err.value).startswith(
        "mailbox plan(s) not in the licensing CSV: EXCHANGE_B_STANDARD, EXCHANGE_L_STANDARD, "
    )


def test_derive_reads_the_delimiter_from_the_header_alone():
    # Names may hold semicolons; in a comma-separated copy they must not decide the delimiter, however many.
    name = "Suite" + "; part" * 40
    rows = [
        f"{name},SUITE,11111111-0000-0000-0000-000000000001,EXCHANGE_S_STANDARD,9aaf7827-d63c-4b61-89c3-182f06f82e5c,P1"
    ]
    skus, _ = licensing.derive_tables(_source(rows * 3))
    suite = next(s for s in skus if s.sku_part_number == "SUITE")
    assert suite.product_name == name


def test_derive_skips_blank_ids_and_ignores_blank_spellings():
    rows = [
        # No SKU id and no plan id: the row describes nothing.
        "Nothing,NOTHING,,EXCHANGE_S_STANDARD,,Exchange Online (Plan 1)",
        # Blank spellings beside a filled one: the filled one is kept, however often the blank occurs.
        *[",,22222222-0000-0000-0000-000000000002,,33333333-0000-0000-0000-000000000003,"] * 3,
        "Kiosk suite,KIOSK,22222222-0000-0000-0000-000000000002,SOME_PLAN,33333333-0000-0000-0000-000000000003,Plan",
        # A plan that no row names in friendly words.
        "Kiosk suite,KIOSK,22222222-0000-0000-0000-000000000002,QUIET_PLAN,44444444-0000-0000-0000-000000000004,",
    ]
    skus, plans = licensing.derive_tables(_source(rows))
    assert "" not in {s.sku_id for s in skus}
    assert {p.plan_id for p in plans} == {
        *MAILBOX_PLANS,
        "33333333-0000-0000-0000-000000000003",
        "44444444-0000-0000-0000-000000000004",
    }
    assert "nothing" not in {s.sku_part_number.lower() for s in skus}
    kiosk = next(s for s in skus if s.sku_id == "22222222-0000-0000-0000-000000000002")
    assert (kiosk.sku_part_number, kiosk.product_name) == ("KIOSK", "Kiosk suite")
    by_plan = {p.plan_id: p for p in plans}
    assert (
        by_plan["33333333-0000-0000-0000-000000000003"].plan_name,
        by_plan["33333333-0000-0000-0000-000000000003"].friendly_name,
    ) == ("SOME_PLAN", "Plan")
    assert by_plan["44444444-0000-0000-0000-000000000004"].friendly_name == ""


def test_derive_takes_the_most_frequent_spelling_and_not_the_plan_name_as_friendly_name():
    plan = "55555555-0000-0000-0000-000000000005"
    rows = [
        f"Suite {n},SUITE{n},66666666-0000-0000-0000-00000000000{n},Exo_Plan,{plan},{friendly}"
        for n, friendly in enumerate(["Exo_Plan", "EXO PLAN", "Exo plan", "Exo plan"])
    ]
    _, plans = licensing.derive_tables(_source(rows))
    assert next(p for p in plans if p.plan_id == plan).friendly_name == "Exo plan"  # 2 against 1 and 1
    _, plans = licensing.derive_tables(_source(rows[:2]))
    # A tie between the plan's own name and a capitalised spelling: the plan name is not a friendly name.
    assert next(p for p in plans if p.plan_id == plan).friendly_name == "EXO PLAN"


def test_derive_warns_only_about_exchange_plans_in_neither_list(caplog):
    rows = [
        "New,NEWSKU,11111111-2222-3333-4444-555555555555,EXCHANGE_S_NEWTHING,"
        "22222222-3333-4444-5555-666666666666,Something new",
        # Not Exchange, a reviewed non-mailbox Exchange plan, and a privacy add-on: no warning.
        "New,NEWSKU,11111111-2222-3333-4444-555555555555,SHAREPOINTSTANDARD,"
        "33333333-3333-4444-5555-666666666666,SharePoint",
        "New,NEWSKU,11111111-2222-3333-4444-555555555555,EXCHANGE_S_FOUNDATION,"
        "113feb6c-3fe4-4440-bddc-54d774bf0318,Exchange Foundation",
        "New,NEWSKU,11111111-2222-3333-4444-555555555555,PRIVACY_MANAGEMENT_RISK_EXCHANGE,"
        "44444444-3333-4444-5555-666666666666,Privacy risk",
    ]
    with caplog.at_level("WARNING", logger="audit"):
        licensing.derive_tables(_source(rows))
    assert [r.getMessage() for r in caplog.records] == [
        "unreviewed Exchange plan EXCHANGE_S_NEWTHING (22222222-3333-4444-5555-666666666666): "
        "decide whether it gives a mailbox"
    ]


def test_regenerate_writes_plain_utf8_tables_into_a_new_or_existing_folder(tmp_path, capsys):
    rows = [
        "Microsoft 365 E3 – Unattended,SPE_E3_RPA1,c2ac2ee4-9bb1-47e4-8541-d689c7e83371,EXCHANGE_S_ENTERPRISE,"
        "efb87545-963c-4e0d-99df-69c6916d9eb0,Exchange Online (Plan 2)",
        "Microsoft 365 E3 – Unattended,SPE_E3_RPA1,c2ac2ee4-9bb1-47e4-8541-d689c7e83371,EXCHANGE_S_STANDARD,"
        "9aaf7827-d63c-4b61-89c3-182f06f82e5c,Exchange Online (Plan 1)",
    ]
    source = tmp_path / "source.csv"
    source.write_text(_source(rows).getvalue(), encoding="utf-8")
    out = tmp_path / "new" / "data"
    for _ in range(2):  # the second run writes over the first
        assert licensing.main([str(source), "--out", str(out)]) == 0
    skus = (out / "skus.csv").read_bytes().decode("utf-8")
    assert "\r" not in skus
    assert (
        "c2ac2ee4-9bb1-47e4-8541-d689c7e83371,SPE_E3_RPA1,Microsoft 365 E3 – Unattended,"
        "9aaf7827-d63c-4b61-89c3-182f06f82e5c efb87545-963c-4e0d-99df-69c6916d9eb0\n"
    ) in skus
    plans = (out / "service_plans.csv").read_bytes().decode("utf-8")
    assert "\r" not in plans
    assert "113feb6c-3fe4-4440-bddc-54d774bf0318" not in plans
    assert plans.startswith("plan_id,plan_name,friendly_name,gives_mailbox\n")
    assert set(line.rsplit(",", 1)[1] for line in plans.splitlines()[1:]) == {"true"}
    printed = capsys.readouterr().out.splitlines()
    assert printed[-3:] == [
        f"wrote 11 SKUs and 10 service plans to {out}",
        "mailbox plans (10): " + ", ".join(sorted(licensing.MAILBOX_PLAN_NAMES)),
        "remember to update DATA_DATE and LICENSING.md with the source table's date",
    ]


def test_regenerate_tables_mark_plans_without_a_mailbox_false(tmp_path):
    rows = [
        "Power BI,POWER_BI_STANDARD,a403ebcc-fae0-4ca2-8c8c-7a907fd6c235,EXCHANGE_S_FOUNDATION,"
        "113feb6c-3fe4-4440-bddc-54d774bf0318,Exchange Foundation"
    ]
    source = tmp_path / "source.csv"
    source.write_text(_source(rows).getvalue(), encoding="utf-8")
    assert licensing.main([str(source), "--out", str(tmp_path)]) == 0
    plans = (tmp_path / "service_plans.csv").read_text(encoding="utf-8").splitlines()
    assert "113feb6c-3fe4-4440-bddc-54d774bf0318,EXCHANGE_S_FOUNDATION,Exchange Foundation,false" in plans


def test_regenerate_command_help_names_the_program_and_its_inputs(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # argparse wraps at the terminal width
    with pytest.raises(SystemExit) as done:
        licensing.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "Regenerate the licensing tables from Microsoft's licensing service-plan CSV." in out.splitlines()
    text = " ".join(out.split())
    assert text.startswith("usage: python -m audit.licensing [-h] [--out OUT] source")
    assert "Regenerate the licensing tables from Microsoft's licensing service-plan CSV." in text
    assert "source the downloaded licensing CSV" in text
    assert "--out OUT folder to write skus.csv and service_plans.csv to (default: the package data)" in text


# --- a tenant's SKUs and a user's mailbox plans ------------------------------------------------------

EXO_P1, EXO_P2 = "9aaf7827-d63c-4b61-89c3-182f06f82e5c", "efb87545-963c-4e0d-99df-69c6916d9eb0"
E3, EXO_PLAN_1 = "6fd2c87f-b296-42f0-b197-1e91e994b900", "4b9405b0-7788-4568-add1-99614e613b69"
E5 = "c7df2760-2c81-4ef7-b578-5b5392b571df"  # ENTERPRISEPREMIUM, carries EXCHANGE_S_ENTERPRISE as E3 does
UNKNOWN_SKU = "0badc0de-0000-4000-8000-00000000abcd"  # in neither the shipped table nor the tenant's list


def _plans(user):
    from audit.models import Dataset

    return licensing.mailbox_plans(user, licensing.SkuIndex.from_skus(Dataset.missing("not read")))


def test_an_unknown_module_attribute_is_refused_by_name():
    with pytest.raises(AttributeError, match="module 'audit.licensing' has no attribute 'MAILBOX_PLANS'"):
        licensing.MAILBOX_PLANS  # noqa: B018


@pytest.mark.parametrize(
    "licences",
    [
        [(E5,), (E3, EXO_P2)],  # E3 and E5 both carry the plan; it is disabled in one of them
        [(E3, EXO_P2), (E5,)],
        [(E3,), (UNKNOWN_SKU, EXO_P2)],  # a SKU we do not know never switches off what a known one gives
    ],
)
def test_a_mailbox_plan_disabled_in_one_licence_but_given_by_another_stays_on(licences):
    from tests.checks.builders import user

    plans = _plans(user(plans=[(EXO_P2, "Enabled")], licenses=licences))
    assert plans.disabled == ()
    assert [p.plan_id for p in plans.enabled] == [EXO_P2]


def test_a_mailbox_plan_disabled_in_every_licence_that_gives_it_is_off_and_named_by_the_licence():
    from tests.checks.builders import user

    plans = _plans(user(plans=[(EXO_P2, "Enabled"), (EXO_P1, "Enabled")], licenses=[(E3, EXO_P2), (EXO_PLAN_1,)]))
    assert plans.disabled == ((EXO_P2, "ENTERPRISEPACK"),)
    assert [p.plan_id for p in plans.enabled] == [EXO_P1]  # the plan after the switched-off one is still read


def test_repeated_assigned_plans_count_once_and_the_plans_after_them_are_still_read():
    from tests.checks.builders import user

    repeated = [(EXO_P2, "Enabled"), (EXO_P2, "Enabled"), (EXO_P2, "Suspended"), (EXO_P1, "Warning")]
    plans = _plans(user(plans=repeated, licenses=[(E3,), (EXO_PLAN_1,)]))
    assert [(p.plan_id, p.status) for p in plans.enabled + plans.lapsed + plans.grace] == [
        (EXO_P2, "Enabled"),
        (EXO_P2, "Suspended"),
        (EXO_P1, "Warning"),
    ]
    assert licensing.describe_plans(plans.usable) == "EXCHANGE_S_ENTERPRISE (Enabled), EXCHANGE_S_STANDARD (Warning)"


def test_licences_and_their_errors_are_described_with_the_tenants_own_sku_names():
    from audit.models import Dataset
    from tests.checks.builders import user

    # subscribedSkus names each SKU (skuPartNumber); a SKU newer than the shipped table is named from it.
    tenant = Dataset([{"skuId": UNKNOWN_SKU, "skuPartNumber": "CONTOSO_NEW_SKU", "servicePlans": []}])
    skus = licensing.SkuIndex.from_skus(tenant)
    someone = user(
        licenses=[(E3,), (UNKNOWN_SKU.upper(),)],
        states=[
            (E3, "Active", None, "group-1"),
            (UNKNOWN_SKU, "Error", "CountViolation", None),
            (E3, "Error", None, None),
        ],
    )
    assert skus.name(UNKNOWN_SKU.upper()) == "CONTOSO_NEW_SKU"
    assert licensing.describe_licences(someone, skus) == "licences: ENTERPRISEPACK (via group), CONTOSO_NEW_SKU"
    assert licensing.licence_errors(someone, skus) == [
        "licence CONTOSO_NEW_SKU in state Error (CountViolation)",
        "licence ENTERPRISEPACK in state Error",
    ]


def test_a_sku_newer_than_the_shipped_table_carries_the_mailbox_plans_the_tenant_lists():
    from audit.models import Dataset

    # subscribedSkus lists each SKU's servicePlans (subscribedSku resource, servicePlanInfo); GUIDs in any case.
    listed = [{"servicePlanId": EXO_P2.upper(), "servicePlanName": "EXCHANGE_S_ENTERPRISE"}]
    listed.append({"servicePlanId": "113feb6c-3fe4-4440-bddc-54d774bf0318", "servicePlanName": "EXCHANGE_S_FOUNDATION"})
    tenant = Dataset([{"skuId": UNKNOWN_SKU.upper(), "skuPartNumber": "CONTOSO_NEW_SKU", "servicePlans": listed}])
    skus = licensing.SkuIndex.from_skus(tenant)
    assert skus.mailbox_plans(UNKNOWN_SKU) == frozenset({EXO_P2})
    assert skus.mailbox_plans("0badc0de-0000-4000-8000-00000000ffff") is None  # known to neither
