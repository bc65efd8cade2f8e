"""Users of one tenant share the values they repeat (licences, plans, statuses, attribute values).

At 100,000 users the copies Graph's JSON gives every user of these took more than half the audit's
memory; the records must stay equal to what each user's own JSON says.
"""

from __future__ import annotations

from audit.collect import Collector, user_from_graph
from audit.simulator import generate_tenant
from tests.e2e.tenant_builder import E3
from tests.reliability._support import client_for


def graph_user(n: int) -> dict:
    """A licensed member as Graph lists it: every string a copy of its own, as a JSON parser gives them."""

    def fresh(text: str) -> str:
        return "".join(list(text))  # an equal string that is not the same object

    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "userPrincipalName": f"user{n}@contoso.example",
        "userType": fresh("Member"),
        "accountEnabled": True,
        "assignedLicenses": [{"skuId": fresh(E3[0].upper()), "disabledPlans": [fresh(E3[2])]}],
        "assignedPlans": [
            {"servicePlanId": fresh(E3[2]), "service": fresh("exchange"), "capabilityStatus": fresh("Enabled")}
        ],
        "provisionedPlans": [
            {"service": fresh("exchange"), "capabilityStatus": fresh("Enabled"), "provisioningStatus": fresh("Success")}
        ],
        "licenseAssignmentStates": [{"skuId": fresh(E3[0]), "state": fresh("Active"), "error": None}],
        "department": fresh("Finance"),
        "city": fresh("Seattle"),
        "onPremisesExtensionAttributes": {"extensionAttribute3": fresh("badge-7")},
    }


def test_users_parsed_with_one_shared_dict_share_their_repeated_values():
    shared: dict = {}
    first, second = user_from_graph(graph_user(1), shared), user_from_graph(graph_user(2), shared)
    for name in ("licenses", "plans", "provisioned", "license_states", "attributes", "user_type"):
        assert getattr(first, name) is getattr(second, name), name
    assert first.attributes[0] is second.attributes[0]


def test_a_shared_record_equals_the_one_its_own_json_gives():
    alone = user_from_graph(graph_user(2))
    shared = {}
    user_from_graph(graph_user(1), shared)
    assert user_from_graph(graph_user(2), shared) == alone
    assert alone.licenses[0].sku_id == E3[0].lower()
    assert alone.attributes == (("department", "Finance"), ("city", "Seattle"), ("extensionAttribute3", "badge-7"))


def test_values_of_different_kinds_are_never_swapped_for_each_other():
    # Named tuples compare as plain tuples: an assigned and a provisioned plan with equal fields are equal.
    # Each kind keeps its own copies, so a user never gets the other kind's record back.
    shared: dict = {}
    blank = {"id": "00000000-0000-0000-0000-000000000009", "assignedPlans": [{}], "provisionedPlans": [{}]}
    for user in (user_from_graph(blank, shared), user_from_graph(dict(blank), shared)):
        assert type(user.plans[0]).__name__ == "AssignedPlan"
        assert type(user.provisioned[0]).__name__ == "ProvisionedPlan"
        assert user.provisioned[0].provisioning_status == ""


def test_the_users_a_collector_lists_share_their_plans(sim_factory, monkeypatch):
    spec = generate_tenant("contoso", 300, seed=3, scenario="healthy")
    sim = sim_factory([spec])
    client, _ = client_for(sim, spec, monkeypatch)
    users = Collector(client, None, None, None).users("/users", "id,assignedPlans,assignedLicenses", "users")
    assert len(users) == len(spec["users"])
    distinct = {u.plans for u in users}
    assert len(distinct) < len(users) / 10  # the generated tenant has few licence combinations
    assert len({id(u.plans) for u in users}) == len(distinct)  # one tuple object for each combination
    assert len({id(u.licenses) for u in users}) == len({u.licenses for u in users})
