"""The mailbox prober against the simulator: how far along it says it is, over a user list of several
pages (Graph pages users 999 at a time at most: $top, learn.microsoft.com/graph/paging)."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from audit import logs
from audit.collect import collect_tenant, should_probe
from audit.logs import JsonFormatter
from audit.session import connect
from audit.simulator import Limits, generate_tenant


def collect(sim_factory, make_config, tmp_path, spec: dict, probe: str = "all"):
    # Each page of users takes a while, as on a real tenant: answers to probes come in before the last page.
    sim = sim_factory([spec], limits=Limits(latency={"directory": 0.3, "outlook": 0.005}))
    config = make_config(sim, [spec], tmp_path)
    tenant = config.tenants[0]
    provider, client = connect(tenant, config.audit)
    said: list[tuple] = []
    snapshot = collect_tenant(
        client,
        tenant,
        config,
        probe=probe,
        audit_roles=provider.roles(),
        progress=lambda *call: said.append((*call, threading.current_thread().name)),
    )
    return snapshot, said


@pytest.fixture(scope="module")
def big() -> dict:
    return generate_tenant("contoso", 2300, seed=5)  # three pages of users


@pytest.mark.parametrize("probe", ["all", "auto"])  # auto: most are settled by the usage report, not probed
def test_probe_progress_counts_every_candidate_of_every_page_once(sim_factory, make_config, tmp_path, big, probe):
    snapshot, said = collect(sim_factory, make_config, tmp_path, big, probe)
    candidates = sum(1 for user in snapshot.users.value if should_probe(user))
    assert candidates > 2000 and len(snapshot.probes.value) == candidates
    probes = [c for c in said if c[0] == "probes"]
    final = probes[-1]
    assert final[1:3] == (candidates, candidates)  # done out of the total, the total once every page is in
    assert all(c[2] in (None, candidates) for c in probes) and all(c[1] <= candidates for c in probes)
    assert [c[1] for c in probes] == sorted(c[1] for c in probes)  # never counts back
    if probe == "all":  # 2,000 probes at 5 ms of Outlook time each, 4 at a time, outlast the listing
        assert any(c[2] == candidates and c[1] < candidates for c in probes)  # a total while probes still run
    # The prober's own thread, named after the tenant, reports as the answers come in, before the last page.
    assert any(c[3] == "probes-contoso" and c[2] is None and c[1] for c in probes)
    if probe == "auto":  # the usage report settles licensed users it lists, not only shared mailboxes
        settled = [p for p in snapshot.probes.value.values() if p.source == "usage_report"]
        assert any(p.outcome == "mailbox" and p.purpose != "shared" for p in settled)


def test_what_the_probe_workers_log_names_the_tenant(sim_factory, make_config, tmp_path) -> None:
    # Each $batch of probes is sent from a worker thread of its own; its records (the client's request
    # lines at debug level) must say which tenant they are about, as the JSON log format shows it.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(lambda record: record.threadName.startswith("probe_"))
    logger = logging.getLogger("audit")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with logs.context(tenant="contoso", phase="collect"):
            collect(sim_factory, make_config, tmp_path, generate_tenant("contoso", 120, seed=3))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert records and all(r.get("tenant") == "contoso" and r.get("phase") == "collect" for r in records)


def test_a_tenant_without_exchange_online_stops_the_probes_and_says_so(
    sim_factory, make_config, tmp_path, caplog
) -> None:
    # Graph answers mailbox calls of a tenant with no Exchange Online organisation 401
    # OrganizationFromTenantGuidNotFound, "The tenant for tenant guid '...' does not exist." (public reports:
    # python-o365 issue 757 on /users/{id}/mailFolders, msgraph-sdk-dotnet issue 1920, azure-docs issue
    # 32957): nothing about any mailbox, so the probes end and the tenant-wide answer is "no Exchange Online".
    spec = {**generate_tenant("contoso", 60, seed=2), "exchange_online": False}
    snapshot, _ = collect(sim_factory, make_config, tmp_path, spec)
    assert not snapshot.probes.ok and snapshot.probes.error == (
        "Exchange Online has no organisation for this tenant (Graph 401 OrganizationFromTenantGuidNotFound), so "
        "no mailbox can be probed or remediated (see tenant-no-exchange-online)"
    )
    assert snapshot.exchange_online.ok and snapshot.exchange_online.value is False
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "Exchange Online" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("contoso: Exchange Online has no organisation for this tenant (")
    assert "OrganizationFromTenantGuidNotFound" in said[0]


EXCHANGE_STANDARD_PLAN = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"  # EXCHANGE_S_STANDARD
EXCHANGE_STANDARD_SKU = "4b9405b0-7788-4568-add1-99614e613b69"  # EXCHANGESTANDARD, which carries it
POWER_BI_PRO_SKU = "f8a1db68-be16-40ed-86d5-cb42ce701560"  # no Exchange plan in the shipped table


def test_the_tenants_own_sku_list_decides_whether_the_usage_report_is_trusted(sim_factory, make_config, tmp_path):
    # The shipped table is Microsoft's product list at one date; a tenant's subscribedSkus says what each
    # SKU carries today. Here the tenant's POWER_BI_PRO carries EXCHANGE_S_STANDARD (the table's does not),
    # and the user's other licence switches that plan off. Read with the tenant's list, the mailbox plan is
    # on, so the user's row in the usage report is trusted; read with the table alone it would look switched
    # off in every licence, and the user would be probed.
    spec = generate_tenant("contoso", 40, seed=4)
    user = next(u for u in spec["users"] if (u.get("mailbox") or {}).get("purpose") == "user" and u["accountEnabled"])
    user["assignedLicenses"] = [
        {"skuId": POWER_BI_PRO_SKU, "disabledPlans": []},
        {"skuId": EXCHANGE_STANDARD_SKU, "disabledPlans": [EXCHANGE_STANDARD_PLAN]},
    ]
    user["assignedPlans"] = [
        {
            "assignedDateTime": user["createdDateTime"],
            "capabilityStatus": "Enabled",
            "service": "exchange",
            "servicePlanId": EXCHANGE_STANDARD_PLAN,
        }
    ]
    user["licenseAssignmentStates"] = []
    plan = {"appliesTo": "User", "provisioningStatus": "Success", "servicePlanId": EXCHANGE_STANDARD_PLAN}
    for sku_id, part, plans in (
        (POWER_BI_PRO_SKU, "POWER_BI_PRO", [plan]),
        (EXCHANGE_STANDARD_SKU, "EXCHANGESTANDARD", [plan]),
    ):
        spec["subscribed_skus"] = [s for s in spec["subscribed_skus"] if s["skuId"] != sku_id]
        spec["subscribed_skus"].append({"skuId": sku_id, "skuPartNumber": part, "servicePlans": plans})
    snapshot, _ = collect(sim_factory, make_config, tmp_path, spec, probe="auto")
    probe = snapshot.probes.value[user["id"]]
    assert (probe.outcome, probe.source) == ("mailbox", "usage_report")


def test_probes_cut_off_by_a_failed_sign_in_leave_the_mailboxes_unread_with_the_reason(
    sim_factory, make_config, tmp_path, caplog
) -> None:
    # The sign-in service refuses a new token while the probes run (a secret revoked mid-run): the $batch
    # fails as a whole, so the mailboxes were not read, which the report and the log say; the directory
    # data read before still counts.
    from audit.auth import AuthError

    spec = generate_tenant("contoso", 30, seed=6)
    sim = sim_factory([spec])
    config = make_config(sim, [spec], tmp_path)
    tenant = config.tenants[0]
    provider, client = connect(tenant, config.audit)
    signed_in = client.token

    class GoneForProbes:
        def token(self) -> str:
            if threading.current_thread().name.startswith("probe_"):
                raise AuthError("AADSTS7000222: the client secret has expired")
            return signed_in.token()

        def invalidate(self) -> None:
            signed_in.invalidate()

    client.token = GoneForProbes()
    snapshot = collect_tenant(client, tenant, config, probe="all", audit_roles=provider.roles())
    reason = "0 SignInFailed: a new access token could not be obtained: AADSTS7000222: the client secret has expired"
    assert snapshot.users.ok and len(snapshot.users.value) == 30
    assert snapshot.probes.error == f"Graph failed while reading mailboxes: {reason} (request-id None)"
    assert snapshot.exchange_online.error == snapshot.probes.error
    assert f"mailboxes: {reason} (request-id None)" in snapshot.problems
    said = [r.getMessage() for r in caplog.records if "could not read mailboxes" in r.getMessage()]
    assert said == [f"contoso: could not read mailboxes: {reason} (request-id None)"]


def test_a_tenant_whose_probes_are_all_refused_does_not_say_whether_exchange_online_serves_it(
    sim_factory, make_config, tmp_path
) -> None:
    # Without MailboxSettings.Read every probe is answered 403 ErrorAccessDenied (as Exchange answers an app
    # without the permission): nothing shows whether Exchange Online serves the tenant. With the usage report
    # (auto) the mailboxes it lists show that it does.
    spec = generate_tenant("contoso", 30, seed=6)
    spec["clients"][0]["roles"] = [r for r in spec["clients"][0]["roles"] if r != "MailboxSettings.Read"]
    snapshot, _ = collect(sim_factory, make_config, tmp_path, spec, probe="all")
    assert snapshot.probes.ok and {p.outcome for p in snapshot.probes.value.values()} == {"access_denied"}
    assert not snapshot.exchange_online.ok and snapshot.exchange_online.error == (
        "no mailbox probe was answered (none was needed, or every one was refused or failed), so whether "
        "Exchange Online serves this tenant is not known"
    )
    snapshot, _ = collect(sim_factory, make_config, tmp_path, spec, probe="auto")
    assert snapshot.exchange_online.ok and snapshot.exchange_online.value is True
    assert any(p.source == "usage_report" and p.outcome == "mailbox" for p in snapshot.probes.value.values())


@pytest.mark.parametrize("mailboxes", [True, False])
def test_exchange_online_answering_about_any_mailbox_shows_it_serves_the_tenant(
    sim_factory, make_config, tmp_path, mailboxes
) -> None:
    # A probe answered 200 (settings) or 404 (no such mailbox) is Exchange Online speaking for the tenant;
    # without the usage report (probe all) that is the only evidence, and a 404 is as good as a mailbox.
    spec = generate_tenant("contoso", 30, seed=6)
    if not mailboxes:
        for user in spec["users"]:
            user["mailbox"] = None
    snapshot, _ = collect(sim_factory, make_config, tmp_path, spec, probe="all")
    outcomes = {p.outcome for p in snapshot.probes.value.values()}
    assert outcomes == ({"mailbox", "no_mailbox"} if mailboxes else {"no_mailbox"})
    assert snapshot.exchange_online.ok and snapshot.exchange_online.value is True
