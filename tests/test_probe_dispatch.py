"""How the prober packs, re-sends and ends its $batches, against a local server that answers each batch item
as the test scripts it; the prober, the client and HTTP are the real ones.

Graph's rules the server follows (learn.microsoft.com/graph/json-batching): a batch holds up to 20 requests;
a request whose `dependsOn` names one that failed is not run and is answered 424 Failed Dependency; each
item carries its own status and headers, a 429 with its own Retry-After
(learn.microsoft.com/graph/throttling).
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from audit.collect import Collector, MailboxProber, user_from_graph
from audit.graph import GraphClient, GraphError
from tests.local_http import StaticToken, serving

EXCHANGE_PLAN = "efb87545-963c-4e0d-99df-69c6916d9eb0"  # EXCHANGE_S_ENTERPRISE
THROTTLED = {"error": {"code": "TooManyRequests", "message": "Please retry again later."}}
UNAVAILABLE = {"error": {"code": "serviceNotAvailable", "message": "The service is temporarily unavailable."}}
# A 429 from Outlook's concurrency cap, worded as Graph words it (github.com/alcionai/corso/issues/3695).
CAP = {"error": {"code": "ApplicationThrottled", "message": "Application is over its MailboxConcurrency limit."}}
CAP_REFUSAL = (429, {"Retry-After": "0"}, CAP)


class Mailboxes:
    """Answers $batch items: 200 for a user with a mailbox, 404 for one without; `first` scripts the first
    answer (status, headers, body) a user's probe gets, `always` every answer, `whole` the answer to every
    POST (e.g. a 400); the first `drops` POSTs get no answer at all."""

    def __init__(
        self,
        without: set[str] = frozenset(),
        first: dict | None = None,
        whole: tuple | None = None,
        always: tuple | None = None,
        drops: int = 0,
    ):
        self.without, self.first, self.whole, self.always, self.drops = without, dict(first or {}), whole, always, drops
        self.batches: list[list[dict]] = []  # the items of each batch, as sent
        self.runs: dict[str, list[float]] = {}  # user id -> when each of its probes was run (not 424'd)
        self.lock = threading.Lock()

    def answer(self, requests_: list[dict]) -> list[dict]:
        with self.lock:
            self.batches.append(requests_)
        failed: set[str] = set()
        out = []
        for item in requests_:
            user = item["url"].split("/")[2]
            if set(item.get("dependsOn") or ()) & failed:
                out.append({"id": item["id"], "status": 424, "body": {"error": {"code": "FailedDependency"}}})
                failed.add(item["id"])
                continue
            with self.lock:
                self.runs.setdefault(user, []).append(time.monotonic())
                scripted = self.first.pop(user, None) or self.always
            if scripted is not None:
                status, headers, body = scripted
                out.append({"id": item["id"], "status": status, "headers": headers, "body": body})
            elif user in self.without:
                body = {"error": {"code": "MailboxNotEnabledForRESTAPI", "message": "The mailbox is inactive"}}
                out.append({"id": item["id"], "status": 404, "body": body})
            else:
                out.append({"id": item["id"], "status": 200, "body": {"userPurpose": "user"}})
            if out[-1]["status"] >= 400:
                failed.add(item["id"])
        return out


@pytest.fixture
def graph() -> Iterator[tuple[list[Mailboxes], str]]:
    script: list[Mailboxes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
            sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            mailboxes = script[0]
            if mailboxes.drops:  # the connection closes with no answer, as a broken network does
                mailboxes.drops -= 1
                self.close_connection = True
                return
            if mailboxes.whole is not None:
                status, body = mailboxes.whole
            else:
                status, body = 200, {"responses": mailboxes.answer(sent["requests"])}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as host:
        yield script, f"http://{host}/v1.0"


def user(n: int, mailbox_plan: bool = True) -> dict:
    plans = [{"servicePlanId": EXCHANGE_PLAN, "service": "exchange", "capabilityStatus": "Enabled"}]
    return {
        "id": f"u{n:03}",
        "userPrincipalName": f"u{n}@contoso.example",
        "assignedPlans": plans if mailbox_plan else [],
    }


def probe(base: str, users: list[dict], ceiling: int = 4, **client) -> tuple[dict, MailboxProber]:
    """Probe `users` as one page; with a ceiling of 4 every batch is sequential (each item dependsOn the
    one before). Fails the test if the prober does not end within 20 s."""
    graph_client = GraphClient(base, StaticToken(), rng=lambda: 0.5, **client)
    config = SimpleNamespace(audit=SimpleNamespace(max_outlook_concurrency=ceiling))
    prober = MailboxProber(Collector(graph_client, SimpleNamespace(name="contoso"), config), None)
    prober.add([user_from_graph(u) for u in users])
    prober.listed()
    done: dict = {}

    def close() -> None:
        try:
            done["probes"] = prober.close()
        except GraphError as err:
            done["error"] = err

    worker = threading.Thread(target=close, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "the prober never ended"
    return done, prober


def test_sequential_batches_put_likely_mailboxes_first_and_one_doubtful_user_last(graph):
    # A doubtful user (no Exchange plan) that has no mailbox fails its item, and with it every later item of
    # a sequential batch (424): so each batch carries at most one, in the last place, and the rest go last.
    script, base = graph
    likely = [user(n) for n in range(45)]
    doubtful = [user(100 + n, mailbox_plan=False) for n in range(5)]
    script.append(Mailboxes(without={u["id"] for u in doubtful}))
    done, _ = probe(base, likely[:20] + doubtful + likely[20:])
    probes = done["probes"]
    assert {uid for uid, p in probes.items() if p.outcome == "mailbox"} == {u["id"] for u in likely}
    assert {uid for uid, p in probes.items() if p.outcome == "no_mailbox"} == {u["id"] for u in doubtful}
    sent = sorted([item["url"].split("/")[2] for item in batch] for batch in script[0].batches)  # 4 at once
    ids = [u["id"] for u in likely]
    assert sent[:3] == [ids[:19] + ["u100"], ids[19:38] + ["u101"], ids[38:] + ["u102"]]
    assert sorted(sent[3:]) == [["u103", "u104"], ["u104"]]  # u104 failed with u103 (424), and went again
    for batch in script[0].batches:  # every item after the first depends on the one before it
        assert [item.get("dependsOn") for item in batch] == [None] + [[str(i)] for i in range(len(batch) - 1)]
        assert {item["method"] for item in batch} == {"GET"}  # as json-batching writes it


def test_a_batch_of_likely_mailboxes_only_is_full(graph):
    # Nothing doubtful to end a batch with: 20 likely mailboxes to a batch, Graph's limit, not 19. Six batches
    # and 4 slots: the last two wait for a slot to come back.
    script, base = graph
    script.append(Mailboxes())
    done, _ = probe(base, [user(n) for n in range(105)])
    assert len(done["probes"]) == 105
    assert sorted(len(batch) for batch in script[0].batches) == [5, 20, 20, 20, 20, 20]


def test_a_refused_probe_waits_out_its_own_retry_after_and_the_prober_then_ends(graph):
    # The only probe left is refused 429 with Retry-After 1: it goes again no sooner than a second later,
    # while nothing else is in flight and no other event will wake the prober.
    script, base = graph
    script.append(Mailboxes(first={"u000": (429, {"Retry-After": "1"}, THROTTLED)}))
    done, prober = probe(base, [user(0)])
    assert done["probes"]["u000"].outcome == "mailbox"
    runs = script[0].runs["u000"]
    assert len(runs) == 2 and runs[1] - runs[0] >= 0.95


def test_a_retry_after_date_is_read_against_the_clients_own_wall_clock(graph):
    # Retry-After may be an HTTP-date (RFC 9110, section 10.2.3). Against the client's wall clock, which
    # here stands in November 2023, this one is a second away; against the machine's own clock it has long
    # passed.
    script, base = graph
    now = 1_700_000_000.0
    later = (429, {"Retry-After": email.utils.formatdate(now + 1, usegmt=True)}, THROTTLED)
    script.append(Mailboxes(first={"u000": later}))
    done, _ = probe(base, [user(0)], wall=lambda: now)
    runs = script[0].runs["u000"]
    assert done["probes"]["u000"].outcome == "mailbox" and len(runs) == 2 and runs[1] - runs[0] >= 0.95


def test_a_probe_answered_401_ends_the_probes_with_graphs_error(graph):
    # A 401 is about the token, not the mailbox (learn.microsoft.com/graph/errors): no probe is reported,
    # and the error keeps Graph's code and request id for a support case.
    script, base = graph
    refused = {"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}
    script.append(Mailboxes(first={"u000": (401, {"request-id": "req-401"}, refused)}))
    done, _ = probe(base, [user(0)])
    error = done["error"]
    assert "probes" not in done
    assert (error.status, error.code, error.request_id) == (401, "InvalidAuthenticationToken", "req-401")


def test_refused_probes_of_one_batch_go_again_in_order_on_a_coarse_clock(graph):
    # Items answered 424 in one batch go again at once: on a clock as coarse as Windows' monotonic one
    # (about 16 ms) they share one instant, and the prober must still tell them apart.
    script, base = graph
    script.append(Mailboxes(first={"u000": (503, {"Retry-After": "0"}, UNAVAILABLE)}))
    done, _ = probe(base, [user(n) for n in range(6)], clock=lambda: float(int(time.monotonic())))
    assert sorted(done["probes"]) == [f"u{n:03}" for n in range(6)]
    assert all(p.outcome == "mailbox" for p in done["probes"].values())
    assert len(script[0].batches) == 2 and len(script[0].batches[1]) == 6  # all six went again together


def test_a_batch_graph_refuses_as_a_whole_ends_the_probes_with_its_error(graph):
    # A 400 to the POST itself is about the batch, not any mailbox: close() raises it, and no probe is
    # reported as if it had been answered.
    script, base = graph
    script.append(Mailboxes(whole=(400, {"error": {"code": "BadRequest", "message": "Invalid batch payload."}})))
    done, prober = probe(base, [user(0)])
    assert "probes" not in done and done["error"].status == 400 and done["error"].code == "BadRequest"
    assert (prober.limiter.refusals, prober.limiter.in_use) == (0, 0)  # nothing learnt about the cap; slots back


def test_each_refusal_by_the_outlook_cap_is_counted_and_only_those(graph):
    # With a ceiling above 4 batches are parallel (no dependsOn) while the cap is learnt. The first, of 20,
    # comes back whole: Graph queues batch items beyond 4, and one batch more may go. Three items of the next
    # come back 429 from the cap, worded as Graph words it ("Application is over its MailboxConcurrency
    # limit.", github.com/alcionai/corso/issues/3695): three refusals, and back to the 4 Graph accepted.
    script, base = graph
    script.append(Mailboxes(first={"u020": CAP_REFUSAL, "u021": CAP_REFUSAL, "u022": CAP_REFUSAL}))
    done, prober = probe(base, [user(n) for n in range(26)], ceiling=16)
    assert all(p.outcome == "mailbox" for p in done["probes"].values()) and len(done["probes"]) == 26
    assert [len(b) for b in script[0].batches[:2]] == [20, 6]
    assert all("dependsOn" not in item for batch in script[0].batches[:2] for item in batch)
    limiter = prober.limiter
    assert (limiter.refusals, limiter.batch_mode, limiter.limit, limiter.settled) == (3, "queue", 4, True)
    assert "(Graph refused more than 4 at once)" in limiter.describe()


def test_items_a_refusing_batch_could_not_run_count_as_no_refusal_by_the_cap(graph):
    # Where Graph answers 429 to the items of one $batch beyond the 4 it runs at once (older throttling
    # pages), the first batch of more than 4 shows it: those 429s say how Graph runs batches, not that the
    # cap was passed, and the log must not say Graph refused more than some number at once.
    script, base = graph
    script.append(Mailboxes(first={"u004": CAP_REFUSAL, "u005": CAP_REFUSAL}))
    done, prober = probe(base, [user(n) for n in range(6)], ceiling=16)
    assert all(p.outcome == "mailbox" for p in done["probes"].values()) and len(done["probes"]) == 6
    assert (prober.limiter.refusals, prober.limiter.batch_mode) == (0, "refuse")
    assert "Graph refused none" in prober.limiter.describe()


def test_a_probe_answered_200_without_any_setting_is_asked_again(graph):
    # A 200 whose body holds no setting (only OData annotations, or nothing) is no answer about the mailbox,
    # as a proxy or a garbling gateway may send: the probe goes again and the next answer counts.
    script, base = graph
    empty = (200, {}, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users('u000')/mailboxSettings"})
    script.append(Mailboxes(first={"u000": empty}))
    done, _ = probe(base, [user(0)])
    assert done["probes"]["u000"].outcome == "mailbox" and len(script[0].runs["u000"]) == 2


@pytest.mark.parametrize("max_attempts", [1, 2, 3])
def test_a_probe_that_keeps_failing_is_sent_twice_the_clients_attempts_then_reported_failed(graph, max_attempts):
    # The prober gives each probe twice the client's attempts (see _settle_item): with 17% of calls faulted,
    # six in a row would otherwise leave one mailbox in ~40,000 unassessed.
    script, base = graph
    script.append(Mailboxes(always=(503, {"Retry-After": "0"}, UNAVAILABLE)))
    done, _ = probe(base, [user(0)], max_attempts=max_attempts)
    assert done["probes"]["u000"].outcome == "failed"
    assert len(script[0].runs["u000"]) == 2 * max_attempts


def test_a_batch_lost_to_a_dropped_connection_is_sent_again(graph):
    # The client gives up on the POST after its attempts (here 1) and hands each item status 0; the prober
    # sends those probes again.
    script, base = graph
    script.append(Mailboxes(drops=1))
    done, _ = probe(base, [user(0), user(1)], max_attempts=1)
    assert {p.outcome for p in done["probes"].values()} == {"mailbox"} and len(done["probes"]) == 2
    assert len(script[0].batches) == 1  # the dropped POST was never answered, so never recorded


def test_a_probe_answered_200_without_settings_to_the_last_attempt_is_reported_failed(graph):
    script, base = graph
    script.append(Mailboxes(always=(200, {}, {})))
    done, _ = probe(base, [user(0)], max_attempts=1)
    assert (done["probes"]["u000"].outcome, done["probes"]["u000"].code) == ("failed", "InvalidResponse")
    assert len(script[0].runs["u000"]) == 2


def test_an_error_answer_without_a_code_is_named_by_its_status(graph):
    # An item's error body may lack its code (a gateway's bare 404): the probe then carries the status.
    script, base = graph
    script.append(Mailboxes(first={"u000": (404, {}, {})}))
    done, _ = probe(base, [user(0)])
    assert done["probes"]["u000"].code == "404"
