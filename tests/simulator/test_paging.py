"""Paging as a strict server does it: the @odata.nextLink is requested as it is, query options at most once.

Graph's paging guide (Graph docs concepts/paging.md) says to request the whole next-link URL and not to
take it apart; OData's URL conventions allow each system query option once (oasis-tcs/odata-specs#2004,
#2007). A client that sends its first $select/$top again with the next link repeats options, and the
simulator refuses that with 400, as a strict server would.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from audit.auth import TokenProvider, graph_base
from audit.graph import GraphClient, GraphError
from audit.simulator import generate_tenant

from ._support import Graph


def test_the_next_link_carries_the_query_and_works_as_it_is(sim_factory):
    tenant = generate_tenant("pages", 12, seed=3)
    sim = sim_factory([tenant])
    graph = Graph(sim, tenant)
    first = graph.get("/users?$select=id&$top=5")
    assert first.status_code == 200, first.text
    link = first.json()["@odata.nextLink"]
    options = [name for name, _ in parse_qsl(urlsplit(link).query)]
    assert sorted(options) == ["$skiptoken", "$top"]
    second = graph.get(link)
    assert second.status_code == 200, second.text
    assert len(second.json()["value"]) == 5 and set(second.json()["value"][0]) == {"id"}


def test_a_next_link_sent_again_with_the_first_query_options_is_refused(sim_factory):
    tenant = generate_tenant("pages", 12, seed=3)
    sim = sim_factory([tenant])
    graph = Graph(sim, tenant)
    link = graph.get("/users?$select=id&$top=5").json()["@odata.nextLink"]
    again = graph.get(link + "&$top=5&$select=id")
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "BadRequest"
    assert "'$top' was specified more than once" in again.json()["error"]["message"]
    # Option names are case-insensitive in OData, so $TOP repeats $top; a plain parameter is not an option.
    assert graph.get(link + "&$TOP=5").status_code == 400
    assert graph.get("/users?$top=5&$select=id&$select=displayName").status_code == 400
    assert graph.get("/users?$top=5&other=1&other=2").status_code == 200


def test_the_client_follows_next_links_without_repeating_its_query(sim_factory, make_config, tmp_path):
    tenant = generate_tenant("pages", 23, seed=3)
    sim = sim_factory([tenant])
    tenant_config = make_config(sim, [tenant], tmp_path).tenants[0]
    ca = str(sim.ca_path)
    client = GraphClient(graph_base(tenant_config), TokenProvider(tenant_config, verify=ca), verify=ca)
    pages = list(client.iter_pages("/users", params={"$select": "id,displayName", "$top": 10}))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert {u["id"] for p in pages for u in p} == {u["id"] for u in tenant["users"]}
    assert all(set(u) == {"id", "displayName"} for p in pages for u in p)
    assert sim.counters.snapshot()["by_route"]["users.list"] == 3


def test_a_client_error_names_the_repeated_option(sim_factory, make_config, tmp_path):
    tenant = generate_tenant("pages", 3, seed=3)
    sim = sim_factory([tenant])
    tenant_config = make_config(sim, [tenant], tmp_path).tenants[0]
    ca = str(sim.ca_path)
    client = GraphClient(graph_base(tenant_config), TokenProvider(tenant_config, verify=ca), verify=ca)
    try:
        client.get("/users?$top=1", params={"$top": 2})
    except GraphError as err:
        assert err.status == 400 and "specified more than once" in str(err)
    else:
        raise AssertionError("a repeated $top was accepted")
