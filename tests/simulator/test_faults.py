"""Faults on demand and Graph's limits: ratios, Retry-After, drops, token lifetime, concurrency, RU."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from audit.simulator import FaultSpec, Limits, generate_tenant

from ._support import Graph, kind, token


@pytest.fixture(scope="module")
def tenant() -> dict:
    return generate_tenant("contoso", 40, seed=9, scenario="healthy")


def test_fault_spec_parsing():
    spec = FaultSpec.parse("429=0.1, retry_after=1-3, 5xx=0.05, drop=0.02, token_ttl=60, latency=0.005, seed=4")
    assert spec == FaultSpec(
        throttle=0.1,
        retry_after=(1.0, 3.0),
        server_error=0.05,
        drop=0.02,
        token_ttl=60.0,
        latency=0.005,
        seed=4,
    )
    assert FaultSpec.parse("retry_after=2").retry_after == (2.0, 2.0)
    assert FaultSpec.parse("") == FaultSpec()


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("429=1.5", "bad value"),
        ("teapot=1", "unknown key"),
        ("429", "not key=value"),
        ("retry_after=3-1", "bad value"),
        ("latency=-1", "bad value"),
        ("seed=x", "bad value"),
    ],
)
def test_fault_spec_errors_are_clear(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        FaultSpec.parse(text)


def test_throttling_at_the_configured_ratio(sim_factory, tenant):
    sim = sim_factory([tenant], faults="429=0.25,retry_after=1-3,seed=4")
    graph = Graph(sim, tenant)
    statuses, waits = [], []
    for _ in range(400):
        response = graph.get("/organization")
        statuses.append(response.status_code)
        if response.status_code == 429:
            waits.append(float(response.headers["Retry-After"]))
            assert response.json()["error"]["code"] == "TooManyRequests"
    throttled = statuses.count(429)
    assert set(statuses) == {200, 429}
    assert 60 <= throttled <= 140  # 100 expected; far outside 5 sigma otherwise
    assert sim.counters.snapshot()["throttled"] == throttled
    assert all(1.0 <= w <= 3.0 for w in waits) and len(set(waits)) > 1


def test_server_errors(sim_factory, tenant):
    sim = sim_factory([tenant], faults="5xx=0.3,seed=2")
    graph = Graph(sim, tenant)
    statuses = [graph.get("/organization").status_code for _ in range(200)]
    assert {503, 504} <= set(statuses)
    errors = sum(1 for s in statuses if s >= 500)
    assert 30 <= errors <= 90
    assert sim.counters.snapshot()["server_errors"] == errors


def test_dropped_connections(sim_factory, tenant):
    sim = sim_factory([tenant], faults="drop=0.2,seed=3")
    graph = Graph(sim, tenant)
    dropped = 0
    for _ in range(150):
        try:
            assert graph.get("/organization").status_code == 200
        except requests.ConnectionError:
            dropped += 1
    assert 10 <= dropped <= 55
    assert sim.counters.snapshot()["drops"] == dropped


def test_token_ttl_forces_a_refresh(sim_factory, tenant):
    sim = sim_factory([tenant], faults="token_ttl=1")
    stale = token(sim, tenant)
    graph = Graph(sim, tenant, bearer=stale)
    assert graph.get("/organization").status_code == 200
    time.sleep(1.2)
    refused = graph.get("/organization")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert refused.json()["error"]["message"] == "Lifetime validation failed, the token is expired."
    assert Graph(sim, tenant).get("/organization").status_code == 200, "a fresh token works"
    assert sim.counters.snapshot()["tokens_issued"] == 2


def test_faults_reach_batch_items(sim_factory, tenant):
    sim = sim_factory([tenant], faults="429=0.4,retry_after=2,seed=6")
    graph = Graph(sim, tenant)
    requests_ = [
        {"id": str(i), "method": "GET", "url": f"/users/{u['id']}"} for i, u in enumerate(tenant["users"][:20])
    ]
    outer = graph.post("/$batch", json={"requests": requests_})
    while outer.status_code == 429:
        outer = graph.post("/$batch", json={"requests": requests_})
    items = outer.json()["responses"]
    throttled = [i for i in items if i["status"] == 429]
    assert throttled and len(throttled) < 20
    assert all(i["headers"]["Retry-After"] == "2" for i in throttled)


def test_outlook_concurrency_is_capped(sim_factory, tenant):
    sim = sim_factory([tenant], limits=Limits(outlook_concurrency=4, latency={"outlook": 0.1}))
    bearer = token(sim, tenant)
    user = kind(tenant, lambda u: u["mailbox"] == {"purpose": "user", "location": "cloud"})
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        graph = Graph(sim, tenant, bearer=bearer)
        for _ in range(4):
            response = graph.get(f"/users/{user['id']}/mailboxSettings")
            with lock:
                statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "ApplicationThrottled"
                assert float(response.headers["Retry-After"]) > 0

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshot = sim.counters.snapshot()
    assert snapshot["max_outlook_concurrency"] == 4
    assert statuses.count(429) > 0 and statuses.count(200) > 0
    assert snapshot["throttled"] == statuses.count(429)


def test_batch_outlook_items_beyond_the_free_slots_are_throttled(sim_factory, tenant):
    # The "refuse" reading (learn.microsoft.com/answers/questions/734143: the 5th item of a batch refused).
    sim = sim_factory([tenant], limits=Limits(outlook_concurrency=4, outlook_batch="refuse"))
    graph = Graph(sim, tenant)
    requests_ = [
        {"id": str(i), "method": "GET", "url": f"/users/{u['id']}/mailboxSettings"}
        for i, u in enumerate(tenant["users"][:20])
    ]
    items = graph.post("/$batch", json={"requests": requests_}).json()["responses"]
    throttled = [i for i in items if i["status"] == 429]
    assert len(throttled) == 16
    assert all(
        i["body"]["error"]["code"] == "ApplicationThrottled" and "Retry-After" in i["headers"] for i in throttled
    )
    assert sim.counters.snapshot()["max_outlook_concurrency"] == 4


def test_without_limits_batches_run_four_outlook_items_at_a_time(sim_factory, tenant):
    sim = sim_factory([tenant], faults="latency=0.02")
    graph = Graph(sim, tenant)
    requests_ = [
        {"id": str(i), "method": "GET", "url": f"/users/{u['id']}/mailboxSettings"}
        for i, u in enumerate(tenant["users"][:20])
    ]
    items = graph.post("/$batch", json={"requests": requests_}).json()["responses"]
    assert all(i["status"] != 429 for i in items)
    assert 1 <= sim.counters.snapshot()["max_outlook_concurrency"] <= 4


def test_directory_resource_units(sim_factory, tenant):
    sim = sim_factory([tenant], limits=Limits(ru_per_10s=10))
    graph = Graph(sim, tenant)
    responses = [graph.get("/subscribedSkus") for _ in range(8)]  # 3 units each
    assert responses[0].status_code == 200
    refused = [r for r in responses if r.status_code == 429]
    assert refused, "10 units cannot pay for 8 calls of 3"
    assert refused[0].headers["x-ms-throttle-information"] == "ResourceUnitLimitExceeded"
    assert float(refused[0].headers["Retry-After"]) >= 1


def test_global_rate(sim_factory, tenant):
    sim = sim_factory([tenant], limits=Limits(global_rps=5))
    graph = Graph(sim, tenant)
    statuses = [graph.get("/organization").status_code for _ in range(20)]
    assert statuses[:5] == [200] * 5 and 429 in statuses


def _mailbox_batch(tenant: dict, count: int = 20) -> list[dict]:
    return [
        {"id": str(i), "method": "GET", "url": f"/users/{u['id']}/mailboxSettings"}
        for i, u in enumerate(tenant["users"][:count])
    ]


def test_batch_queue_runs_every_outlook_item_four_at_a_time(sim_factory, tenant):
    # The current throttling page: Graph hands up to 4 items of a batch to Outlook at once; the rest wait.
    sim = sim_factory([tenant], limits=Limits(outlook_concurrency=4, outlook_batch="queue", latency={"outlook": 0.01}))
    items = Graph(sim, tenant).post("/$batch", json={"requests": _mailbox_batch(tenant)}).json()["responses"]
    assert len(items) == 20 and not [i for i in items if i["status"] == 429]
    assert sim.counters.snapshot()["max_outlook_concurrency"] == 4


def test_sequential_batch_holds_one_outlook_slot_even_when_refusing(sim_factory, tenant):
    # dependsOn makes a batch sequential (json-batching): one item runs at a time, so none is refused.
    sim = sim_factory([tenant], limits=Limits(outlook_concurrency=1, outlook_batch="refuse"))
    requests_ = _mailbox_batch(tenant, 6)
    for i, item in enumerate(requests_[1:], start=1):
        item["dependsOn"] = [str(i - 1)]
    items = Graph(sim, tenant).post("/$batch", json={"requests": requests_}).json()["responses"]
    statuses = {i["id"]: i["status"] for i in items}
    first_failure = min((int(k) for k, v in statuses.items() if v >= 400 and v != 424), default=None)
    assert 429 not in statuses.values()
    if first_failure is not None:  # a mailbox that is not there fails its successors with 424
        assert all(statuses[str(k)] == 424 for k in range(first_failure + 1, 6))
    assert sim.counters.snapshot()["max_outlook_concurrency"] == 1


@pytest.mark.parametrize(("scope", "refused"), [("app", 16 + 20), ("app-tenant", 16 + 16), ("app-mailbox", 0)])
def test_outlook_cap_scope(sim_factory, scope, refused):
    # Two tenants consented to the same audit app (one client id), each sending a refusing batch of 20.
    # "app": 4 slots for both tenants; "app-tenant": 4 each; "app-mailbox": 4 per mailbox.
    first = generate_tenant("contoso", 40, seed=9, scenario="healthy")
    second = generate_tenant("fabrikam", 40, seed=9, scenario="healthy")
    second["clients"][0]["client_id"] = first["clients"][0]["client_id"]
    limits = Limits(outlook_concurrency=4, outlook_scope=scope, outlook_batch="refuse", latency={"outlook": 0.3})
    sim = sim_factory([first, second], limits=limits)
    answers: list[dict] = []

    def send(spec: dict) -> None:
        answers.extend(Graph(sim, spec).post("/$batch", json={"requests": _mailbox_batch(spec)}).json()["responses"])

    threads = [threading.Thread(target=send, args=(spec,)) for spec in (first, second)]
    for thread in threads:
        thread.start()
        time.sleep(0.1)  # the second batch arrives while the first one's items run
    for thread in threads:
        thread.join()
    throttled = [a for a in answers if a["status"] == 429]
    assert len(throttled) == refused
    assert all(a["body"]["error"]["code"] == "ApplicationThrottled" for a in throttled)
    assert all("MailboxConcurrency" in a["body"]["error"]["message"] for a in throttled)
    snapshot = sim.counters.snapshot()
    assert snapshot["max_outlook_in_flight"] == {"app": 4, "app-tenant": 8, "app-mailbox": 40}[scope]


def test_round_trip_is_paid_per_http_request_outside_the_outlook_cap(sim_factory, tenant):
    # A round trip of 0.3 s, 0.02 s of Outlook time, a cap of 1, four GETs sent 0.08 s apart: their
    # round trips overlap, their Outlook times do not, so none is refused. Were the round trip counted
    # under the cap, the second would be refused.
    limits = Limits(outlook_concurrency=1, rtt=0.3, latency={"outlook": 0.02}, outlook_batch="refuse")
    sim = sim_factory([tenant], limits=limits)
    graph = Graph(sim, tenant)
    user = kind(tenant, lambda u: u["mailbox"] == {"purpose": "user", "location": "cloud"})
    statuses: list[int] = []

    def probe() -> None:
        statuses.append(graph.get(f"/users/{user['id']}/mailboxSettings").status_code)

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.08)
    for thread in threads:
        thread.join()
    assert statuses == [200] * 4
    assert sim.counters.snapshot()["max_outlook_concurrency"] == 1


def test_limits_refuse_unknown_readings():
    with pytest.raises(ValueError, match="outlook_scope"):
        Limits(outlook_scope="tenant")
    with pytest.raises(ValueError, match="outlook_batch"):
        Limits(outlook_batch="wait")
