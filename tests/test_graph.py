"""The Graph client: pure helpers, then paging, retries, throttling and batching against the simulator."""

from __future__ import annotations

import copy
import email.utils
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from audit.auth import TokenProvider, graph_base
from audit.config import Config
from audit.graph import (
    BatchItem,
    GraphClient,
    GraphError,
    backoff_delay,
    header_value,
    parse_error,
    parse_retry_after,
    request_class,
)
from audit.simulator import Limits, Simulator, generate_tenant

NOW = 1_700_000_000.0


# ---- Retry-After and backoff ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2", 2.0),
        ("2.128", 2.128),
        (" 0 ", 0.0),
        ("-3", 0.0),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    assert backoff_delay(1, lambda: 0.0) == 0.0
    assert backoff_delay(1, lambda: 0.999) == pytest.approx(0.999)
    assert backoff_delay(3, lambda: 0.5) == pytest.approx(2.0)  # half of 1 * 2**2
    assert backoff_delay(30, lambda: 1.0) == 60.0  # capped
    assert all(0 <= backoff_delay(n, lambda: 0.7) <= 60 for n in range(1, 40))


# ---- error envelopes ------------------------------------------------------------------------------


def test_error_envelope_with_inner_error() -> None:
    body = {
        "error": {
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
            "innerError": {
                "date": "2025-02-13T10:17:06",
                "request-id": "93b6f17e",
                "client-request-id": "e70c",
            },
        }
    }
    error = parse_error(403, body)
    assert (error.status, error.code, error.request_id) == (403, "Authorization_RequestDenied", "93b6f17e")
    assert str(error) == "403 Authorization_RequestDenied: Insufficient privileges to complete the operation. " + (
        "(request-id 93b6f17e)"
    )


def test_error_envelope_case_insensitive_and_from_bytes() -> None:
    raw = b'{"Error": {"Code": "TooManyRequests", "Message": "Please retry again later.", "innererror": ' + (
        b'{"code": "429", "Request-Id": "abc"}}}'
    )
    error = parse_error(429, raw)
    assert (error.code, error.message, error.request_id) == (
        "TooManyRequests",
        "Please retry again later.",
        "abc",
    )


def test_error_without_envelope_uses_status_and_header_request_id() -> None:
    error = parse_error(502, b"<html>Bad gateway</html>", {"Request-Id": "r-1"})
    assert (error.code, error.request_id) == ("HTTP502", "r-1")
    assert parse_error(403, {"error": {"code": "", "message": "denied"}}).code == "HTTP403"


def test_batch_item_headers_and_error() -> None:
    item = BatchItem("1", 429, {"retry-after": "3"}, {"error": {"code": "TooManyRequests", "message": "slow"}})
    assert item.header("Retry-After") == "3" and header_value({"Retry-After": "4"}, "retry-after") == "4"
    assert isinstance(item.error(), GraphError) and item.error().code == "TooManyRequests"  # type: ignore[union-attr]
    assert BatchItem("2", 200, {}, {"id": "x"}).error() is None


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/users", "directory"),
        ("/users?$select=id", "directory"),
        ("/users/abc/licenseDetails", "directory"),
        ("/users/abc/mailboxSettings", "outlook"),
        ("/users/abc@contoso.com/mailFolders/inbox", "outlook"),
        ("/users/abc/sendMail", "outlook"),
        ("users/abc/messages?$top=1", "outlook"),
        ("/reports/getMailboxUsageDetail(period='D7')", "reports"),
        ("/$batch", "batch"),
        ("$batch", "batch"),
        ("/$batch/", "batch"),
        ("/$batch?x=1?y=2", "batch"),  # the query, whatever it holds, is not part of the path
        ("/users?$filter=mail eq 'a/messages'", "directory"),
        ("reports/getMailboxUsageDetail(period='D7')", "reports"),
        ("/servicePrincipals/x/appRoleAssignments", "directory"),
    ],
)
def test_request_class(path: str, kind: str) -> None:
    assert request_class(path) == kind


# ---- against the simulator, over real HTTPS -------------------------------------------------------


@dataclass
class Wired:
    """A client wired to a simulator, with every wait and every answer recorded in order."""

    client: GraphClient
    provider: TokenProvider
    sleeps: list[float]
    events: list[tuple[str, float]]  # ("sleep", seconds) and ("answer", status), in the order they happened


@pytest.fixture(scope="module")
def big_tenant() -> dict:
    return generate_tenant("bigco", 2300, seed=5)


@pytest.fixture
def wire(make_config: Callable[..., Config], tmp_path: Path) -> Callable[..., Wired]:
    def connect(sim: Simulator, tenant: dict, **options: object) -> Wired:
        config = make_config(sim, [tenant], tmp_path)
        tenant_config = config.tenants[0]
        ca = str(sim.ca_path)
        provider = TokenProvider(tenant_config, verify=ca)
        events: list[tuple[str, float]] = []
        sleeps: list[float] = []

        def sleep(seconds: float) -> None:  # records, never waits
            sleeps.append(seconds)
            events.append(("sleep", seconds))

        client = GraphClient(graph_base(tenant_config), provider, verify=ca, sleep=sleep, rng=lambda: 0.5, **options)
        client.session.hooks["response"].append(lambda r, *a, **k: events.append(("answer", r.status_code)))
        return Wired(client, provider, sleeps, events)

    return connect


def user_ids(tenant: dict) -> list[str]:
    return [u["id"] for u in tenant["users"]]


def all_user_ids(client: GraphClient, top: int) -> list[str]:
    pages = client.iter_pages("/users", params={"$select": "id,userPrincipalName", "$top": top})
    return [u["id"] for page in pages for u in page]


def test_every_user_once_over_many_pages(sim_factory, wire, big_tenant: dict) -> None:
    sim = sim_factory([big_tenant])
    wired = wire(sim, big_tenant)
    got = all_user_ids(wired.client, 500)
    assert len(got) == len(big_tenant["users"]) == len(set(got))
    assert set(got) == set(user_ids(big_tenant))
    assert wired.client.stats.requests == {"directory": 5}
    assert sim.counters.snapshot()["by_route"]["users.list"] == 5


def test_every_user_once_with_faults_on_the_way(sim_factory, wire, big_tenant: dict) -> None:
    sim = sim_factory([big_tenant], faults="429=0.1,retry_after=0.5,5xx=0.1,drop=0.05,seed=11")
    wired = wire(sim, big_tenant)
    got = all_user_ids(wired.client, 100)
    assert sorted(got) == sorted(user_ids(big_tenant))  # no loss, no duplicate
    seen = sim.counters.snapshot()
    faults = seen["throttled"] + seen["server_errors"] + seen["drops"]
    assert seen["throttled"] and seen["server_errors"] and seen["drops"]
    assert wired.client.stats.retries == faults == len(wired.sleeps)
    assert wired.client.stats.throttled == seen["throttled"]
    assert wired.sleeps.count(0.5) >= seen["throttled"]  # each 429 waited its Retry-After
    assert set(wired.sleeps) <= {0.5 * 2**k for k in range(6)}  # others: backoff, jitter fixed at 1/2


def test_429_retried_only_after_its_retry_after(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], faults="429=0.4,retry_after=2.5,seed=4")
    wired = wire(sim, small_tenant)
    for _ in range(20):
        assert wired.client.get("/organization")["value"]
    throttled = sim.counters.snapshot()["throttled"]
    assert throttled > 0
    assert wired.sleeps == [2.5] * throttled
    answers = [e for e in wired.events]
    for i, event in enumerate(answers):
        if event == ("answer", 429):
            assert answers[i + 1] == ("sleep", 2.5)  # the wait comes before the next request goes out
    assert wired.client.stats.throttled == throttled


def test_fractional_retry_after(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], faults="429=0.5,retry_after=0.125,seed=1")
    wired = wire(sim, small_tenant)
    for _ in range(10):
        wired.client.get("/organization")
    assert wired.sleeps and set(wired.sleeps) == {0.125}


def test_wait_budget_and_attempts_are_bounded(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], faults="429=1,retry_after=10")
    wired = wire(sim, small_tenant, max_wait=25)
    with pytest.raises(GraphError) as caught:
        wired.client.get("/organization")
    assert (caught.value.status, caught.value.code) == (429, "TooManyRequests")
    assert wired.sleeps == [10.0, 10.0]  # a third wait would pass the 25 s budget
    wired = wire(sim, small_tenant, max_attempts=3)
    with pytest.raises(GraphError):
        wired.client.get("/organization")
    assert wired.sleeps == [10.0, 10.0] and wired.events.count(("answer", 429)) == 3


def test_503_and_dropped_connections_are_retried(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], faults="5xx=0.15,drop=0.1,seed=7")
    wired = wire(sim, small_tenant)
    for _ in range(30):
        assert wired.client.get("/organization")["value"]
    seen = sim.counters.snapshot()
    assert seen["server_errors"] > 0 and seen["drops"] > 0
    assert wired.client.stats.retries == seen["server_errors"] + seen["drops"] == len(wired.sleeps)
    assert all(s in {0.5 * 2**k for k in range(6)} for s in wired.sleeps)


def test_expired_token_is_refreshed_once_mid_run(sim_factory, wire, big_tenant: dict) -> None:
    sim = sim_factory([big_tenant], faults="token_ttl=2")
    wired = wire(sim, big_tenant)
    got: list[str] = []
    for number, page in enumerate(wired.client.iter_pages("/users", params={"$select": "id", "$top": 500})):
        got += [u["id"] for u in page]
        if number == 1:
            time.sleep(2.5)  # the server now refuses the first token (not a timing assertion)
    assert sorted(got) == sorted(user_ids(big_tenant))
    assert wired.client.stats.token_refreshes == 1
    assert wired.provider.token_requests == 2
    assert sim.counters.snapshot()["unauthorized"] == 1
    assert wired.sleeps == []  # a refresh is not a retry: nothing waited


def test_one_token_request_for_many_calls(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant)
    for _ in range(25):
        wired.client.get("/organization")
    assert wired.provider.token_requests == 1
    assert sim.counters.snapshot()["tokens_issued"] == 1


def test_batches_split_at_20(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant)
    ids = user_ids(small_tenant)[:45]
    requests_ = [{"id": str(i), "method": "GET", "url": f"/users/{uid}/mailboxSettings"} for i, uid in enumerate(ids)]
    answers = wired.client.batch(requests_, in_flight=3)
    assert set(answers) == {str(i) for i in range(45)}
    assert all(a.status in (200, 404) for a in answers.values())
    assert sorted(sim.counters.snapshot()["batch_sizes"]) == [5, 20, 20]
    assert wired.client.stats.requests == {"batch": 3, "outlook": 45}
    assert wired.client.stats.batch_items == {"outlook": 45}
    assert all(isinstance(a.body, dict) for a in answers.values())
    assert any(a.status == 200 and "timeZone" in (a.body or {}) for a in answers.values())


def test_throttled_batch_item_is_retried_alone(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], limits=Limits(outlook_concurrency=4, outlook_batch="refuse"))
    wired = wire(sim, small_tenant)
    ids = user_ids(small_tenant)[:6]
    answers = wired.client.batch(
        [{"id": f"u{i}", "method": "GET", "url": f"/users/{uid}/mailboxSettings"} for i, uid in enumerate(ids)]
    )
    assert sim.counters.snapshot()["batch_sizes"] == [6, 2]  # only the two refused items went again
    assert wired.sleeps == [1.0]  # their Retry-After
    assert all(a.status in (200, 404) for a in answers.values())
    assert (wired.client.stats.throttled, wired.client.stats.retries) == (2, 2)


def test_batch_survives_random_faults(sim_factory, wire, small_tenant: dict) -> None:
    # Items and whole batches are throttled, failed or (whole batches) dropped at random.
    sim = sim_factory([small_tenant], faults="429=0.15,retry_after=0.5,5xx=0.1,drop=0.05,seed=3")
    wired = wire(sim, small_tenant)
    ids = user_ids(small_tenant)[:50]
    answers = wired.client.batch(
        [{"id": uid, "method": "GET", "url": f"/users/{uid}/mailboxSettings"} for uid in ids], in_flight=2
    )
    assert set(answers) == set(ids)
    assert all(a.status in (200, 404) for a in answers.values())
    assert sim.counters.snapshot()["throttled"] > 0 and wired.sleeps


def test_batch_budget_leaves_items_throttled(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant], limits=Limits(outlook_concurrency=1, outlook_batch="refuse"))
    wired = wire(sim, small_tenant, max_attempts=2)
    ids = user_ids(small_tenant)[:5]
    answers = wired.client.batch([{"id": u, "method": "GET", "url": f"/users/{u}/mailboxSettings"} for u in ids])
    statuses = sorted(a.status for a in answers.values())
    assert statuses.count(429) == 3  # one item per round got through, two rounds allowed
    assert answers[ids[0]].error() is None or answers[ids[0]].status == 404


def test_not_a_collection_is_a_fault_retried_then_raised(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant, max_attempts=3)
    uid = user_ids(small_tenant)[0]
    with pytest.raises(GraphError) as caught:
        list(wired.client.iter_pages(f"/users/{uid}"))
    assert (caught.value.status, caught.value.code) == (200, "InvalidResponse")
    assert wired.sleeps == [0.5, 1.0]
    with pytest.raises(GraphError) as caught:
        wired.client.get("/users/$count", headers={"ConsistencyLevel": "eventual"})  # text, not JSON
    assert caught.value.code == "InvalidResponse"


def test_text_answers_count_and_report_csv(sim_factory, wire, small_tenant: dict) -> None:
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant)
    count = wired.client.get_text("/users/$count", headers={"ConsistencyLevel": "eventual"})
    assert int(count) == len(small_tenant["users"])
    csv_text = wired.client.get_text("/reports/getMailboxUsageDetail(period='D7')")  # answered with a redirect
    assert csv_text.startswith("Report Refresh Date,User Principal Name")
    assert wired.client.stats.requests == {"directory": 1, "reports": 1}


def test_permission_error_is_raised_at_once_with_its_code(sim_factory, wire, small_tenant: dict) -> None:
    tenant = copy.deepcopy(small_tenant)
    tenant["clients"][0]["roles"] = ["User.Read.All"]
    sim = sim_factory([tenant])
    wired = wire(sim, tenant)
    with pytest.raises(GraphError) as caught:
        wired.client.get("/servicePrincipals")
    error = caught.value
    assert (error.status, error.code) == (403, "Authorization_RequestDenied")
    assert error.request_id and str(error).endswith(f"(request-id {error.request_id})")
    assert wired.sleeps == []


def test_configured_ca_bundle_wins_over_environment(
    sim_factory, wire, small_tenant: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    system_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or certifi_bundle()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", system_bundle)  # does not know the simulator's CA
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant)
    assert wired.client.get("/organization")["value"]  # verify=<simulator CA> was used, not the variable
    untrusting = GraphClient(graph_base(wired.provider.tenant), wired.provider, verify=True, sleep=wired.sleeps.append)
    with pytest.raises(GraphError) as caught:
        untrusting.get("/organization")
    assert caught.value.code == "TLSError" and "does not trust" in caught.value.message
    assert wired.sleeps == []  # an untrusted certificate is not retried
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sim.ca_path))
    assert untrusting.get("/organization")["value"]  # with nothing configured, the variable is honoured


def certifi_bundle() -> str:
    import certifi

    return certifi.where()


def test_proxy_setting_is_used(sim_factory, wire, small_tenant: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as sock:  # a proxy address nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sim = sim_factory([small_tenant])
    wired = wire(sim, small_tenant)
    wired.client.get("/organization")  # the token is cached now; only Graph goes through the proxy below
    proxied = GraphClient(
        graph_base(wired.provider.tenant),
        wired.provider,
        verify=str(sim.ca_path),
        proxy=f"http://127.0.0.1:{port}",
        max_attempts=2,
        sleep=wired.sleeps.append,
        rng=lambda: 0.5,
    )
    with pytest.raises(GraphError) as caught:
        proxied.get("/organization")
    assert caught.value.code == "ConnectionError" and "ProxyError" in caught.value.message
    assert wired.sleeps == [0.5]  # a connection failure is retried
    answers = proxied.batch([{"id": "a", "method": "GET", "url": "/organization"}])
    assert answers["a"].status == 0 and answers["a"].error().code == "ConnectionError"  # type: ignore[union-attr]


def test_debug_log_names_request_never_token(
    sim_factory, wire, small_tenant: dict, caplog: pytest.LogCaptureFixture
) -> None:
    sim = sim_factory([small_tenant], faults="429=0.5,retry_after=0.25,seed=2")
    wired = wire(sim, small_tenant)
    with caplog.at_level(logging.DEBUG, logger="audit"):
        for _ in range(4):
            wired.client.get("/organization", params={"$select": "id"})
    token = wired.provider.token()
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "audit")
    assert re.search(r"GET /v1\.0/organization 200 request-id=[0-9a-f-]{36} attempt=1", text)
    assert "GET /v1.0/organization 429 request-id=" in text and "attempt=2" in text
    assert token not in text and token[:20] not in text and "Bearer" not in text
    assert "$select" not in text  # the path only, never the query
