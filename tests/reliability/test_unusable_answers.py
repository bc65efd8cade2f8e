"""Graph answers 200 with a body the client cannot use: a fault to retry, then a GraphError; never a crash."""

from __future__ import annotations

import pytest

from audit.graph import GraphError
from audit.simulator import FaultSpec, generate_tenant
from tests.reliability._support import client_for


@pytest.fixture(scope="module")
def tenant() -> dict:
    return generate_tenant("contoso", 30, seed=1)


def test_fault_spec_reads_the_unusable_answer_kinds():
    spec = FaultSpec.parse("bad_json=0.25,no_value=0.5")
    assert (spec.bad_json, spec.no_value) == (0.25, 0.5)
    with pytest.raises(ValueError, match="bad value"):
        FaultSpec.parse("bad_json=2")


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("bad_json", "the answer is not a JSON object"),
        ("no_value", "the collection page has no 'value' list"),
    ],
)
def test_unusable_page_is_retried_then_a_graph_error(sim_factory, monkeypatch, tenant, kind, problem):
    sim = sim_factory([tenant], faults=f"{kind}=1,retry_after=2")
    client, waits = client_for(sim, tenant, monkeypatch, max_attempts=4)
    with pytest.raises(GraphError) as caught:
        list(client.iter_pages("/users", params={"$select": "id"}))
    assert (caught.value.status, caught.value.code, caught.value.message) == (200, "InvalidResponse", problem)
    assert waits == [2.0, 2.0, 2.0]  # the answer's Retry-After, between four attempts
    assert sim.counters.snapshot()["bad_bodies"] == 4


def test_text_routes_are_never_garbled(sim_factory, monkeypatch, tenant):
    sim = sim_factory([tenant], faults="bad_json=1,no_value=1")
    client, _ = client_for(sim, tenant, monkeypatch)
    assert client.get_text("/users/$count", headers={"ConsistencyLevel": "eventual"}).strip() == str(
        len(tenant["users"])
    )


def test_unreadable_batch_answers_leave_items_to_retry_not_a_lost_dataset(sim_factory, monkeypatch, tenant):
    sim = sim_factory([tenant], faults="bad_json=1,retry_after=0")
    client, _ = client_for(sim, tenant, monkeypatch, max_attempts=2)
    ids = [u["id"] for u in tenant["users"][:6]]
    answers = client.batch([{"id": u, "method": "GET", "url": f"/users/{u}/mailboxSettings"} for u in ids], per_batch=4)
    assert sorted(answers) == sorted(ids)
    assert {a.status for a in answers.values()} == {503}  # transient: the caller reports them unassessed
    assert {a.error().code for a in answers.values()} == {"InvalidResponse"}
    # two rounds of two batches, each POST tried twice
    assert sim.counters.snapshot()["by_route"]["batch"] == 8


def test_a_token_refused_at_once_is_refreshed_a_bounded_number_of_times(sim_factory, monkeypatch, tenant):
    sim = sim_factory([tenant], faults="token_ttl=0")  # every token is refused as expired
    client, waits = client_for(sim, tenant, monkeypatch)
    with pytest.raises(GraphError) as caught:
        client.get("/organization")
    assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
    counters = sim.counters.snapshot()
    assert (counters["unauthorized"], counters["tokens_issued"]) == (4, 4)  # the first token and 3 fresh ones
    assert waits == []


def test_a_lookup_answered_without_value_is_a_fault_not_none_found(sim_factory, monkeypatch, tenant):
    from audit.collect import Collector

    sim = sim_factory([tenant], faults="no_value=1,retry_after=0")
    client, _ = client_for(sim, tenant, monkeypatch, max_attempts=2)
    collector = Collector(client, None, None, None)  # first() needs only the client
    with pytest.raises(GraphError) as caught:
        collector.first("/applications", {"$filter": "appId eq '00000000-0000-0000-0000-000000000001'"})
    assert caught.value.code == "InvalidResponse"


def test_a_single_object_answer_is_cut_off_never_an_empty_object(sim_factory, monkeypatch, tenant):
    # An empty mailboxSettings object would read as "the mailbox exists": a probe result invented.
    sim = sim_factory([tenant], faults="no_value=1,retry_after=0")
    client, _ = client_for(sim, tenant, monkeypatch, max_attempts=2)
    with pytest.raises(GraphError) as caught:
        client.get(f"/users/{tenant['users'][0]['id']}/mailboxSettings")
    assert (caught.value.code, caught.value.message) == ("InvalidResponse", "the answer is not a JSON object")
