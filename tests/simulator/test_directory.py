"""Directory endpoints over HTTPS: shapes, paging, $select, $top, $count, $filter, permissions."""

from __future__ import annotations

import pytest

from audit.simulator import DEMO_REMEDIATION_APP_ID, SCOPE_GROUP_NAME, Simulator, generate_tenant
from audit.simulator.catalog import GRAPH_APP_ID, GRAPH_APP_ROLES
from audit.simulator.state import USER_DEFAULT

from ._support import Graph, add_client, kind


@pytest.fixture(scope="module")
def tenant() -> dict:
    spec = generate_tenant("contoso", 75, seed=11, scenario="home")
    add_client(spec, ["Mail.Send"])  # no directory role at all
    add_client(spec, ["Domain.Read.All"], secret="domains-secret")
    return spec


@pytest.fixture(scope="module")
def sim(tenant):
    with Simulator([tenant]) as running:
        yield running


@pytest.fixture(scope="module")
def graph(sim, tenant) -> Graph:
    return Graph(sim, tenant)


def test_paging_returns_every_user_exactly_once(graph, tenant):
    items, pages = graph.all_pages("/users", {"$select": "id,userPrincipalName", "$top": "7"})
    ids = [u["id"] for u in items]
    assert len(ids) == len(set(ids)) == len(tenant["users"])
    assert set(ids) == {u["id"] for u in tenant["users"]}
    assert pages == -(-len(tenant["users"]) // 7)
    assert all(set(u) == {"id", "userPrincipalName"} for u in items), "$select survives the nextLink"


def test_next_link_is_opaque_and_absolute(graph):
    body = graph.get("/users", {"$top": "10"}).json()
    link = body["@odata.nextLink"]
    assert link.startswith(graph.sim.url + "/v1.0/users?") and "$skiptoken=" in link
    assert list(body)[:3] == ["@odata.context", "@odata.nextLink", "value"]
    assert graph.get(link.replace("$skiptoken=", "$skiptoken=x")).status_code == 400


def test_default_property_set_and_select(graph):
    default = graph.get("/users", {"$top": "5"}).json()
    assert default["@odata.context"] == f"{graph.sim.url}/v1.0/$metadata#users"
    assert all(set(u) == set(USER_DEFAULT) for u in default["value"])
    assert not any("mailbox" in u for u in default["value"]), "simulator-only keys never leak"
    selected = graph.get("/users", {"$select": "id,AccountEnabled,assignedPlans", "$top": "5"}).json()
    assert selected["@odata.context"].endswith("#users(id,accountEnabled,assignedPlans)")
    assert all(set(u) == {"id", "accountEnabled", "assignedPlans"} for u in selected["value"])


def test_select_errors(graph):
    unknown = graph.get("/users", {"$select": "id,shoeSize"})
    assert unknown.status_code == 400
    assert (
        unknown.json()["error"]["message"]
        == "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'."
    )
    assert graph.get("/users", {"$select": "id,mailboxSettings"}).status_code == 501


@pytest.mark.parametrize("top,status", [("1", 200), ("999", 200), ("0", 400), ("1000", 400), ("many", 400)])
def test_top_bounds(graph, top, status):
    response = graph.get("/users", {"$top": top})
    assert response.status_code == status
    if top == "1000":
        assert response.json()["error"]["message"] == (
            "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
        )


def test_default_page_size_is_100():
    big = generate_tenant("fabrikam", 150, seed=2)
    with Simulator([big]) as other:
        body = Graph(other, big).get("/users").json()
    assert len(body["value"]) == 100 and "@odata.nextLink" in body


def test_count(graph, tenant):
    eventual = {"ConsistencyLevel": "eventual"}
    first = graph.get("/users", {"$count": "true", "$top": "10"}, headers=eventual).json()
    assert first["@odata.count"] == len(tenant["users"])
    second = graph.get(first["@odata.nextLink"], headers=eventual).json()
    assert "@odata.count" not in second, "only the first page carries the count"
    assert "@odata.count" not in graph.get("/users", {"$count": "true"}).json(), "ignored without the header"
    text = graph.get("/users/$count", headers=eventual)
    assert text.status_code == 200 and text.headers["Content-Type"].startswith("text/plain")
    assert int(text.text) == len(tenant["users"])
    refused = graph.get("/users/$count")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "Request_BadRequest"


def test_filter_forms(graph, tenant):
    mailed = [u for u in tenant["users"] if u["mail"] and u["userType"] == "Member"]
    a, b, c = mailed[0], mailed[1], mailed[2]
    alias = next(p for u in mailed for p in u["proxyAddresses"] if p.startswith("smtp:"))
    owner = next(u for u in mailed if alias in u["proxyAddresses"])

    def ids(expr: str) -> set[str]:
        response = graph.get("/users", {"$filter": expr, "$select": "id"})
        assert response.status_code == 200, response.text
        return {u["id"] for u in response.json()["value"]}

    assert ids(f"id in ('{a['id']}','{b['id']}')") == {a["id"], b["id"]}
    assert ids(f"userPrincipalName eq '{a['userPrincipalName'].upper()}'") == {a["id"]}
    assert ids(f"mail eq '{b['mail'].lower()}'") == {b["id"]}
    assert ids(f"proxyAddresses/any(p:p eq '{alias.upper()}')") == {owner["id"]}
    joined = (
        f"mail eq '{a['mail']}' or proxyAddresses/any(x:x eq 'smtp:{c['mail']}') or mail eq 'nobody@nowhere.example'"
    )
    assert ids(joined) == {a["id"], c["id"]}
    assert ids("mail eq 'o''brien@nowhere.example'") == set()


@pytest.mark.parametrize(
    "expr",
    ["accountEnabled eq false", "startswith(mail,'a')", "displayName eq 'x'", "mail ne 'x'"],
)
def test_unsupported_filters(graph, expr):
    response = graph.get("/users", {"$filter": expr})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_filter_term_limit(graph):
    values = ",".join(f"'{i}@x.example'" for i in range(16))
    response = graph.get("/users", {"$filter": f"mail in ({values})"})
    assert response.status_code == 400
    assert "Max allowed: 15" in response.json()["error"]["message"]


def test_single_user(graph, tenant):
    user = tenant["users"][0]
    by_upn = graph.get(f"/users/{user['userPrincipalName']}", {"$select": "id,accountEnabled"}).json()
    assert by_upn == {
        "@odata.context": f"{graph.sim.url}/v1.0/$metadata#users(id,accountEnabled)/$entity",
        "id": user["id"],
        "accountEnabled": user["accountEnabled"],
    }
    missing = graph.get("/users/ghost@contoso.com")
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        **missing.json()["error"],
        "code": "Request_ResourceNotFound",
        "message": "Resource 'ghost@contoso.com' does not exist or one of its queried reference-property "
        "objects are not present.",
    }
    inner = missing.json()["error"]["innerError"]
    assert set(inner) >= {"date", "request-id", "client-request-id"}
    assert missing.headers["request-id"] == inner["request-id"]


def test_deleted_users(graph, tenant):
    items, _ = graph.all_pages(
        "/directory/deletedItems/microsoft.graph.user", {"$select": "id,deletedDateTime,userPrincipalName"}
    )
    assert {u["id"] for u in items} == {u["id"] for u in tenant["deleted_users"]}
    assert all(u["deletedDateTime"] for u in items)
    live = {u["id"] for u in graph.all_pages("/users", {"$select": "id"})[0]}
    assert not live & {u["id"] for u in items}, "deleted users are not in /users"
    assert graph.get("/directory/deletedItems").status_code == 400


def test_tenant_level_objects(graph, tenant):
    org = graph.get("/organization").json()["value"][0]
    assert org["id"] == tenant["tenant_id"]
    assert {d["name"] for d in org["verifiedDomains"]} == set(tenant["verified_domains"])
    assert any(p["service"] == "exchange" for p in org["assignedPlans"])
    assert graph.get("/domains").status_code == 403, "the audit app is not granted Domain.Read.All"
    with_domains = Graph(graph.sim, tenant, tenant["clients"][2])
    domains = {d["id"]: d for d in with_domains.get("/domains").json()["value"]}
    assert domains["legacy-contoso.com"]["isVerified"] is False
    assert domains["contoso.onmicrosoft.com"]["isInitial"] is True
    skus = graph.get("/subscribedSkus").json()["value"]
    assert {"SPE_E3", "ENTERPRISEPACK"} <= {s["skuPartNumber"] for s in skus}
    assert all(s["servicePlans"] and "prepaidUnits" in s for s in skus)


def test_service_principals_and_grants(graph, tenant):
    by_filter = graph.get("/servicePrincipals", {"$filter": f"appId eq '{DEMO_REMEDIATION_APP_ID}'"}).json()
    assert len(by_filter["value"]) == 1
    sp = graph.get(f"/servicePrincipals(appId='{DEMO_REMEDIATION_APP_ID}')").json()
    assert sp["id"] == by_filter["value"][0]["id"] and sp["accountEnabled"] is True
    assert "appRoleAssignments" not in sp
    graph_sp = graph.get(f"/servicePrincipals(appId='{GRAPH_APP_ID}')").json()
    roles = graph.get(f"/servicePrincipals/{sp['id']}/appRoleAssignments").json()["value"]
    assert [r["appRoleId"] for r in roles] == [GRAPH_APP_ROLES["Mail.ReadWrite"]]
    assert roles[0]["resourceId"] == graph_sp["id"]
    grants = graph.get(f"/servicePrincipals/{sp['id']}/oauth2PermissionGrants").json()["value"]
    assert grants[0]["scope"] == "Organization.Read.All" and grants[0]["clientId"] == sp["id"]
    absent = graph.get("/servicePrincipals(appId='00000000-1111-2222-3333-444444444444')")
    assert absent.status_code == 404 and absent.json()["error"]["code"] == "Request_ResourceNotFound"


def test_applications(graph):
    app = graph.get(
        f"/applications(appId='{DEMO_REMEDIATION_APP_ID}')",
        {"$select": "signInAudience,passwordCredentials,keyCredentials"},
    ).json()
    assert app["signInAudience"] == "AzureADMyOrg"
    assert app["passwordCredentials"][0]["endDateTime"] and app["keyCredentials"][0]["type"] == "AsymmetricX509Cert"
    listed = graph.get("/applications", {"$filter": f"appId eq '{DEMO_REMEDIATION_APP_ID}'"}).json()["value"]
    assert len(listed) == 1


def test_groups_and_nested_members(graph, tenant):
    scope = next(g for g in tenant["groups"] if g["displayName"] == SCOPE_GROUP_NAME)
    found = graph.get("/groups", {"$filter": f"mail eq '{scope['mail'].upper()}'"}).json()["value"]
    assert [g["id"] for g in found] == [scope["id"]] and "members" not in found[0]
    members, _ = graph.all_pages(
        f"/groups/{scope['id']}/transitiveMembers/microsoft.graph.user", {"$select": "id", "$top": "5"}
    )
    ids = [m["id"] for m in members]
    assert len(ids) == len(set(ids))
    sub = next(g for g in tenant["groups"] if g["id"] in scope["members"])
    assert set(sub["members"]) <= set(ids), "members of the nested group are included"
    assert set(scope["members"]) - {sub["id"]} <= set(ids)


def test_missing_roles_are_403(sim, tenant):
    limited = Graph(sim, tenant, tenant["clients"][1])
    for path in (
        "/users",
        "/directory/deletedItems/microsoft.graph.user",
        "/organization",
        "/subscribedSkus",
        "/domains",
        "/servicePrincipals",
        f"/applications(appId='{DEMO_REMEDIATION_APP_ID}')",
        "/groups",
    ):
        response = limited.get(path)
        assert response.status_code == 403, path
        assert response.json()["error"] == {
            **response.json()["error"],
            "code": "Authorization_RequestDenied",
            "message": "Insufficient privileges to complete the operation.",
        }
    assert limited.get("/users/x/mailboxSettings").json()["error"]["code"] == "ErrorAccessDenied"


def test_an_app_may_read_its_own_service_principal(sim, tenant):
    limited_client = tenant["clients"][1]
    own = Graph(sim, tenant, limited_client).get(f"/servicePrincipals(appId='{limited_client['client_id']}')")
    assert own.status_code == 404, "readable (not 403), though this test app has no service principal"


def test_unknown_segment_and_wrong_method(graph):
    unknown = graph.get("/mailboxes")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Resource not found for the segment 'mailboxes'."
    assert graph.post("/users", json={}).status_code == 405


def test_counters_count_by_class_and_route(sim, graph):
    before = sim.counters.snapshot()
    graph.get("/users", {"$top": "1"})
    graph.get("/organization")
    after = sim.counters.snapshot()
    assert after["by_class"]["directory"] - before["by_class"]["directory"] == 2
    assert after["by_route"]["users.list"] - before["by_route"]["users.list"] == 1


def test_guests_have_ext_user_principal_names(tenant):
    guest = kind(tenant, lambda u: u["userType"] == "Guest")
    assert "#EXT#" in guest["userPrincipalName"]


@pytest.mark.parametrize("option", ["$search", "$orderby", "$skip"])
def test_query_options_the_simulator_does_not_serve_are_refused(graph, option):
    response = graph.get("/users", {option: '"displayName:a"' if option == "$search" else "1"})
    assert response.status_code == 400


def test_real_properties_missing_from_the_spec_come_back_null(graph):
    sp = graph.get("/servicePrincipals", {"$select": "appId,notes,appOwnerOrganizationId"}).json()["value"][0]
    assert set(sp) == {"appId", "notes", "appOwnerOrganizationId"} and sp["notes"] is None
    assert graph.get("/servicePrincipals", {"$select": "appId,wingspan"}).status_code == 400
