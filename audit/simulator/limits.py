"""Faults on demand, Graph's throttling limits (opt-in) and the counters tests assert on."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

# Request classes: how Graph's throttling sees a call.
DIRECTORY, OUTLOOK, REPORTS, BATCH, IDENTITY, OTHER = (
    "directory",
    "outlook",
    "reports",
    "batch",
    "identity",
    "other",
)


@dataclass(frozen=True)
class FaultSpec:
    """Faults injected into Graph calls, drawn from a seeded RNG.

    Parsed from e.g. "429=0.1,retry_after=1-3,5xx=0.05,drop=0.02,token_ttl=60,latency=0.005,seed=3":
    ratios of 429 (with a Retry-After drawn from `retry_after`), 503/504, dropped connections (the
    socket is closed with no response); `token_ttl`: seconds after which the server refuses a token
    with 401 although it advertised 3599; `latency`: seconds slept in every Graph call.
    `bad_json` and `no_value`: ratios of 200 answers whose body is cut-off JSON, or a JSON object
    without `value` (without `responses` for a $batch; routes answering one object get cut-off JSON
    instead), as a failing gateway or proxy may send.
    Like drops they hit whole requests, never $batch items, and only routes that answer JSON; they
    carry a Retry-After drawn like a 429's, so a client honouring it retries at the pace tests choose.
    `batch_garble`: ratio of $batch answers passed on garbled, as a faulty gateway might: entries that answer
    no request first (not an object, an id nobody sent, no id), the first item with fields of the wrong type
    and the last item left out.
    `next_link_base` and `download_base` (URLs such as https://127.0.0.1:9) replace the simulator's own
    address in every `@odata.nextLink`, or in the usage report's download Location: a foreign host a
    client must not send its token to, or a download URL that cannot be reached.
    """

    throttle: float = 0.0
    retry_after: tuple[float, float] = (1.0, 1.0)
    server_error: float = 0.0
    drop: float = 0.0
    bad_json: float = 0.0
    no_value: float = 0.0
    batch_garble: float = 0.0
    token_ttl: float | None = None
    latency: float = 0.0
    seed: int = 0
    next_link_base: str | None = None
    download_base: str | None = None

    _KEYS = (
        "429",
        "retry_after",
        "5xx",
        "drop",
        "bad_json",
        "no_value",
        "batch_garble",
        "token_ttl",
        "latency",
        "seed",
        "next_link_base",
        "download_base",
    )

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        values: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, raw = part.partition("=")
            key, raw = key.strip().lower(), raw.strip()
            if not sep or not raw:
                raise ValueError(f"fault spec {spec!r}: {part!r} is not key=value (keys: {', '.join(cls._KEYS)})")
            try:
                if key in ("429", "5xx", "drop", "bad_json", "no_value", "batch_garble"):
                    ratio = float(raw)
                    if not 0.0 <= ratio <= 1.0:
                        raise ValueError
                    names = {"429": "throttle", "5xx": "server_error"}
                    values[names.get(key, key)] = ratio
                elif key == "retry_after":
                    low, _, high = raw.partition("-")
                    bounds = (float(low), float(high or low))
                    if bounds[0] < 0 or bounds[1] < bounds[0]:
                        raise ValueError
                    values["retry_after"] = bounds
                elif key in ("token_ttl", "latency"):
                    number = float(raw)
                    if number < 0:
                        raise ValueError
                    values[key] = number
                elif key == "seed":
                    values["seed"] = int(raw)
                elif key in ("next_link_base", "download_base"):
                    if not raw.startswith(("https://", "http://")):
                        raise ValueError
                    values[key] = raw.rstrip("/")
                else:
                    raise KeyError(key)
            except KeyError:
                raise ValueError(f"fault spec {spec!r}: unknown key {key!r} (keys: {', '.join(cls._KEYS)})") from None
            except ValueError:
                raise ValueError(
                    f"fault spec {spec!r}: bad value {raw!r} for {key!r} "
                    "(ratios are 0..1, durations are seconds >= 0, retry_after is N or LOW-HIGH, bases are URLs)"
                ) from None
        return cls(**values)  # type: ignore[arg-type]


# How Graph's Outlook concurrency cap of 4 is counted. The current throttling page
# (learn.microsoft.com/graph/throttling-limits#outlook-service-limits) counts 4 concurrent requests per
# app, whatever mailboxes they reach ("app"); an older revision listed 4 per app and mailbox, and the 429
# names a "MailboxConcurrency" limit ("app-mailbox"; e.g. github.com/alcionai/corso/issues/3695,
# github.com/magodo/terraform-provider-outlook/issues/21, both code ApplicationThrottled). "app-tenant"
# is the simulator's old reading, one cap per app and tenant. Default: the current page.
OUTLOOK_SCOPES = ("app", "app-tenant", "app-mailbox")
# What a $batch does with Outlook items beyond 4. "queue": Graph hands at most 4 of a batch's items to
# Outlook at once and the rest wait their turn (learn.microsoft.com/graph/throttling-limits and the
# Microsoft answer on learn.microsoft.com/answers/questions/1660054). "refuse": items beyond 4 in flight
# are answered 429 at once (reported on learn.microsoft.com/answers/questions/734143; json-batching says
# batch items are evaluated individually against throttling limits). Default: the current page.
OUTLOOK_BATCHES = ("queue", "refuse")
BATCH_OUTLOOK_PARALLEL = 4  # items of one $batch handed to Outlook at the same time ("queue")


@dataclass(frozen=True)
class Limits:
    """Graph's service limits, enforced only when given (graph-side numbers from the throttling docs).

    outlook_concurrency: Outlook operations executing at once per `outlook_scope` (batch items
    included); the cap counts Outlook's service time only, never the round trip.
    outlook_scope: "app", "app-tenant" or "app-mailbox" (see OUTLOOK_SCOPES).
    outlook_batch: "queue" or "refuse" (see OUTLOOK_BATCHES).
    ru_per_10s: resource units per 10 s per (app, tenant) for directory calls (token bucket).
    global_rps: requests per second per app over all tenants.
    latency: service seconds per class: "directory", "outlook", "reports", "batch" (batch overhead).
    rtt: seconds of network round trip added to every HTTP request (a $batch pays it once).
    """

    outlook_concurrency: int = 4
    ru_per_10s: int | None = None
    global_rps: int | None = None
    latency: dict[str, float] = field(default_factory=dict)
    outlook_retry_after: float = 1.0  # Retry-After sent when the Outlook concurrency limit refuses a call
    rtt: float = 0.0
    outlook_scope: str = "app"
    outlook_batch: str = "queue"

    def __post_init__(self) -> None:
        if self.outlook_scope not in OUTLOOK_SCOPES:
            raise ValueError(f"outlook_scope {self.outlook_scope!r}: use one of {', '.join(OUTLOOK_SCOPES)}")
        if self.outlook_batch not in OUTLOOK_BATCHES:
            raise ValueError(f"outlook_batch {self.outlook_batch!r}: use one of {', '.join(OUTLOOK_BATCHES)}")
        if self.rtt < 0:
            raise ValueError(f"rtt {self.rtt!r}: a round trip is 0 seconds or more")


def parse_latency(spec: str) -> dict[str, float]:
    """ "directory=0.5,outlook=0.15" -> {"directory": 0.5, "outlook": 0.15} (service seconds per class)."""
    classes = (DIRECTORY, OUTLOOK, REPORTS, BATCH)
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, _, raw = part.partition("=")
        key = key.strip().lower()
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if key not in classes or value < 0:
            raise ValueError(f"latency {spec!r}: {part!r} is not CLASS=SECONDS (classes: {', '.join(classes)})")
        out[key] = value
    return out


class TokenBucket:
    """A thread-safe token bucket; take() answers 0 when granted, else the seconds to wait."""

    def __init__(self, capacity: float, per_second: float, clock=time.monotonic) -> None:
        self.capacity, self.rate, self.clock = capacity, per_second, clock
        self.tokens, self.stamp = capacity, clock()
        self.lock = threading.Lock()

    def take(self, cost: float) -> float:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= cost:
                self.tokens -= cost
                return 0.0
            return max(1.0, math.ceil((cost - self.tokens) / self.rate))


class OutlookGate:
    """Counts Outlook operations executing per scope key; refuses above the limit when enforced."""

    def __init__(self, limit: int | None, counters: Counters) -> None:
        self.limit, self.counters = limit, counters
        self.in_flight: Counter[tuple[str, ...]] = Counter()
        self.total = 0  # over all keys
        self.lock = threading.Lock()

    def reserve(self, key: tuple[str, ...], wanted: int) -> int:
        """Take up to `wanted` slots (all of them when not enforced); return how many were taken."""
        with self.lock:
            free = wanted if self.limit is None else max(0, self.limit - self.in_flight[key])
            taken = min(wanted, free)
            self.in_flight[key] += taken
            self.total += taken
            self.counters.observe_outlook(self.in_flight[key], self.total)
            return taken

    def release(self, key: tuple[str, ...], count: int = 1) -> None:
        with self.lock:
            self.in_flight[key] -= count
            self.total -= count
            if self.in_flight[key] <= 0:
                del self.in_flight[key]  # one key per mailbox under "app-mailbox": do not keep them all


class Counters:
    """Thread-safe counts of what the simulator saw and did. `snapshot()` gives plain values."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_class: Counter[str] = Counter()  # every Graph operation, $batch items included
        self.by_route: Counter[str] = Counter()  # e.g. "users.list", "mailboxSettings", "token"
        self.http_requests = 0  # HTTP requests received (a $batch is one)
        self.throttled = 0  # 429 sent (top level and batch items)
        self.server_errors = 0  # 5xx sent
        self.drops = 0  # connections closed without a response
        self.bad_bodies = 0  # 200 answers with cut-off JSON or without `value` (fault kinds bad_json, no_value)
        self.unauthorized = 0  # 401 sent
        self.tokens_issued = 0
        self.token_errors = 0
        self.batch_sizes: list[int] = []
        self.max_outlook_concurrency = 0  # the most Outlook operations seen executing under one scope key
        self.max_outlook_in_flight = 0  # ... and over all keys together

    def count(self, request_class: str, route: str) -> None:
        with self.lock:
            self.by_class[request_class] += 1
            self.by_route[route] += 1

    def add(self, name: str, amount: int = 1) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def status(self, status: int) -> None:
        with self.lock:
            if status == 429:
                self.throttled += 1
            elif status >= 500:
                self.server_errors += 1
            elif status == 401:
                self.unauthorized += 1

    def batch(self, size: int) -> None:
        with self.lock:
            self.batch_sizes.append(size)

    def observe_outlook(self, in_flight: int, total: int) -> None:
        with self.lock:  # called under the gate lock; this lock is never held while taking the gate's
            self.max_outlook_concurrency = max(self.max_outlook_concurrency, in_flight)
            self.max_outlook_in_flight = max(self.max_outlook_in_flight, total)

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "by_class": dict(self.by_class),
                "by_route": dict(self.by_route),
                "http_requests": self.http_requests,
                "throttled": self.throttled,
                "server_errors": self.server_errors,
                "drops": self.drops,
                "bad_bodies": self.bad_bodies,
                "unauthorized": self.unauthorized,
                "tokens_issued": self.tokens_issued,
                "token_errors": self.token_errors,
                "batch_sizes": list(self.batch_sizes),
                "max_outlook_concurrency": self.max_outlook_concurrency,
                "max_outlook_in_flight": self.max_outlook_in_flight,
            }


class FaultDice:
    """Draws faults from one seeded RNG, thread-safely."""

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.lock = threading.Lock()

    def draw(self, allow_drop: bool = True, allow_bad_body: bool | None = None) -> str | None:
        """None, "drop", "bad_json", "no_value", "429", "503" or "504" for one call.

        $batch items cannot be dropped nor garbled (allow_drop=False); routes answering text
        ($count, the usage report) pass allow_bad_body=False. The default follows allow_drop.
        """
        spec = self.spec
        drop = spec.drop if allow_drop else 0.0
        garble = allow_drop if allow_bad_body is None else allow_bad_body
        bad_json, no_value = (spec.bad_json, spec.no_value) if garble else (0.0, 0.0)
        if not (drop or bad_json or no_value or spec.throttle or spec.server_error):
            return None
        with self.lock:
            roll = self.rng.random()
            if roll < drop:
                return "drop"
            roll -= drop
            if roll < bad_json:
                return "bad_json"
            roll -= bad_json
            if roll < no_value:
                return "no_value"
            roll -= no_value
            if roll < spec.throttle:
                return "429"
            roll -= spec.throttle
            if roll < spec.server_error:
                return "503" if self.rng.random() < 0.5 else "504"
            return None

    def chance(self, ratio: float) -> bool:
        """True with the given probability (never drawn when it is 0)."""
        if not ratio:
            return False
        with self.lock:
            return self.rng.random() < ratio

    def retry_after(self) -> str:
        low, high = self.spec.retry_after
        with self.lock:
            value = low if high == low else self.rng.uniform(low, high)
        return format_seconds(value)


def format_seconds(value: float) -> str:
    """Retry-After as Graph writes it: whole seconds, or up to 3 decimals when fractional."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"
