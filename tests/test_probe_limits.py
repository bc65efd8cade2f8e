"""Mailbox probes under every reading of Graph's Outlook concurrency cap.

Sources for the readings the simulator serves (see audit/simulator/limits.py):
- learn.microsoft.com/graph/throttling-limits#outlook-service-limits: 4 concurrent Outlook requests per
  app, whatever mailbox they reach (current page); an older revision counted 4 per app and mailbox.
- The refusal: 429 ApplicationThrottled "Application is over its MailboxConcurrency limit."
  (github.com/alcionai/corso/issues/3695, github.com/magodo/terraform-provider-outlook/issues/21).
- $batch: Graph runs up to 4 Outlook items of a batch at once, the rest wait (throttling-limits; Microsoft's
  answer on learn.microsoft.com/answers/questions/1660054), or items beyond 4 are answered 429
  (learn.microsoft.com/answers/questions/734143). json-batching: items are evaluated individually
  against throttling limits; dependsOn makes a batch sequential.
Whatever the reading, no probe may be lost and the findings must be the same.
"""

from __future__ import annotations

import logging

import pytest

from audit.graph import OutlookLimiter
from audit.runner import RunOptions, audit_tenant, audit_tenants
from audit.simulator import Limits, generate_tenant

SETTINGS = [(scope, batch) for scope in ("app", "app-tenant", "app-mailbox") for batch in ("queue", "refuse")]


def limits(scope: str, batch: str) -> Limits:
    # A round trip on every request and Outlook service time: small, so the tests stay fast.
    return Limits(
        outlook_concurrency=4,
        outlook_scope=scope,
        outlook_batch=batch,
        rtt=0.002,
        latency={"outlook": 0.01},
        outlook_retry_after=0.05,
    )


def outcome(result) -> tuple[dict, set]:
    probes = {uid: (p.outcome, p.purpose, p.code) for uid, p in result.snapshot.probes.value.items()}
    return probes, {(f.check_id, f.user_id, f.severity) for f in result.findings}


@pytest.fixture(scope="module")
def spec() -> dict:
    return generate_tenant("litware", 150, seed=9, scenario="home")


@pytest.mark.parametrize(("scope", "batch"), SETTINGS)
def test_no_probe_is_lost_under_any_reading(scope, batch, spec, sim_factory, make_config, tmp_path, caplog):
    for name in ("free", "limited"):
        (tmp_path / name).mkdir()
    free = sim_factory([spec])
    config = make_config(free, [spec], tmp_path / "free")
    expected = outcome(audit_tenant(config.tenants[0], config, RunOptions(probe="all"), recipients=None))

    sim = sim_factory([spec], limits=limits(scope, batch))
    config = make_config(sim, [spec], tmp_path / "limited", max_outlook_concurrency=8)
    caplog.clear()  # only what the limited run logs
    with caplog.at_level(logging.INFO, logger="audit"):
        result = audit_tenant(config.tenants[0], config, RunOptions(probe="all"), recipients=None)

    assert result.status == "ok", result.error
    assert outcome(result) == expected
    assert not [p for p in result.snapshot.probes.value.values() if p.outcome == "failed"]
    counters = sim.counters.snapshot()
    assert counters["by_route"]["mailboxSettings"] >= len(expected[0])
    assert sum(counters["batch_sizes"]) >= len(expected[0])  # the probes went in batches
    # What was learnt is logged once for the tenant.
    learnt = [r.getMessage() for r in caplog.records if "Outlook probes in flight" in r.getMessage()]
    assert len(learnt) == 1, learnt
    if scope == "app-mailbox":
        # One mailbox per probe: the cap never binds, so the audit goes beyond 4, up to its ceiling.
        assert counters["max_outlook_in_flight"] > 4
        assert "up to 8 Outlook probes in flight (the configured ceiling" in learnt[0]
    else:
        assert counters["max_outlook_concurrency"] <= 4
        # No saw-tooth: the cap refuses the first attempt beyond 4, and the audit does not try again.
        assert "up to 4 Outlook probes in flight (Graph refused more than 4 at once)" in learnt[0]
    if batch == "refuse" and scope != "app-mailbox":
        assert "probes go in sequential batches" in learnt[0]


def test_tenants_of_one_app_share_its_outlook_cap(sim_factory, make_config, tmp_path, caplog):
    # Two tenants that consented to the same audit app: under the "app" reading they share 4 slots.
    first = generate_tenant("contoso", 120, seed=3, scenario="home")
    second = generate_tenant("fabrikam", 120, seed=4, scenario="healthy", home_tenant_id=first["tenant_id"])
    second["clients"][0]["client_id"] = first["clients"][0]["client_id"]
    sim = sim_factory([first, second], limits=limits("app", "queue"))
    config = make_config(sim, [first, second], tmp_path)
    with caplog.at_level(logging.INFO, logger="audit"):
        result = audit_tenants(config, RunOptions(probe="all"))
    assert [t.status for t in result.tenants] == ["ok", "ok"]
    counters = sim.counters.snapshot()
    assert counters["max_outlook_in_flight"] <= 4
    # One limiter learnt the cap once for both tenants: one refused attempt at 8 (at most the two
    # batches of 20 then in flight), not one per tenant, and no later attempts.
    assert 0 < counters["throttled"] <= 40
    learnt = sorted(r.getMessage() for r in caplog.records if "Outlook probes in flight" in r.getMessage())
    assert [m.split(":")[0] for m in learnt] == ["contoso", "fabrikam"]
    assert all("up to 4 Outlook probes in flight (Graph refused more than 4 at once)" in m for m in learnt)


def test_a_ceiling_of_four_is_never_exceeded_under_any_reading(sim_factory, make_config, tmp_path, spec):
    # "app-mailbox" with "refuse": Graph would run all 20 items of a batch at once; an admin's ceiling
    # of 4 still holds, because the probes then go in sequential batches of one slot each.
    sim = sim_factory([spec], limits=limits("app-mailbox", "refuse"))
    config = make_config(sim, [spec], tmp_path, max_outlook_concurrency=4)
    result = audit_tenant(config.tenants[0], config, RunOptions(probe="all"), recipients=None)
    assert result.status == "ok"
    assert sim.counters.snapshot()["max_outlook_in_flight"] <= 4


class _Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_limiter_learns_the_cap_once_and_never_saw_tooths():
    limiter = OutlookLimiter(ceiling=16)
    wake = _Wakes()
    # The first batch takes every slot and shows that Graph queues batch items.
    first = limiter.try_acquire(20, wake, True)
    assert first == (4, True, 4, True) and limiter.try_acquire(20, wake, True) is None
    limiter.release(first, refused=0, items=20)
    assert (limiter.batch_mode, limiter.limit, wake.count) == ("queue", 8, 1)
    # While learning, batches are parallel. At 8, two in flight; the second is refused: back to 4, for good.
    a, b = limiter.try_acquire(20, wake, True), limiter.try_acquire(20, wake, True)
    assert a == (4, False, 8, True) and b == (4, True, 8, True)
    limiter.release(b, refused=20, items=20)
    limiter.release(a, refused=3, items=20)  # sent under 8 as well: already answered
    assert (limiter.limit, limiter.settled) == (4, True)
    # Settled: sequential batches of one slot each, four of them; accepted ones start no new attempt.
    for _ in range(3):
        chains = [limiter.try_acquire(20, wake, True) for _ in range(4)]
        assert [c[0] for c in chains] == [1, 1, 1, 1] and not any(c[3] for c in chains)
        assert limiter.try_acquire(20, wake, True) is None
        for slots in chains:
            limiter.release(slots, refused=0, items=20)
    assert limiter.limit == 4
    # Likely failures still go in parallel batches (a failure there stops no other item).
    assert limiter.try_acquire(20, wake, False) == (4, True, 4, True)
    assert "up to 4 Outlook probes in flight (Graph refused more than 4 at once)" in limiter.describe()


def test_limiter_goes_sequential_where_graph_refuses_batch_items():
    limiter = OutlookLimiter(ceiling=16)
    wake = _Wakes()
    first = limiter.try_acquire(20, wake, True)
    limiter.release(first, refused=16, items=20)  # items beyond 4 refused: the batch mode, not the cap
    assert (limiter.batch_mode, limiter.settled, limiter.limit) == ("refuse", False, 8)
    chains = [limiter.try_acquire(20, wake, False) for _ in range(8)]
    assert all(c is not None and c[0] == 1 and not c[3] for c in chains)  # never parallel here
    assert limiter.try_acquire(20, wake, False) is None
    limiter.release(chains[-1], refused=1, items=20)  # a head refused by the cap: back to 4, for good
    assert (limiter.limit, limiter.settled) == (4, True)


def test_limiter_grows_to_the_ceiling_while_graph_accepts():
    limiter = OutlookLimiter(ceiling=12)
    wake = _Wakes()
    limiter.release(limiter.try_acquire(20, wake, True), refused=0, items=20)
    while not limiter.settled:
        held = []
        while (slots := limiter.try_acquire(20, wake, True)) is not None:
            held.append(slots)
        for slots in held:
            limiter.release(slots, refused=0, items=20)
    assert (limiter.limit, limiter.accepted) == (12, 12)
    assert "the configured ceiling (audit.max_outlook_concurrency = 12)" in limiter.describe()
