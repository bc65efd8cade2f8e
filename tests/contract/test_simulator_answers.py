"""Contract: every JSON answer the audit receives from the simulator has Graph v1.0's shape.

The simulator is only useful if it answers as Graph does, so a whole demo (run with probes of every
mailbox, run with the usage report first, readiness, triage of an error log, and the report mailed
through Graph inline and through an upload session) runs against it over HTTPS while the simulator's
`on_response` hook records every answer it sends. Each JSON answer to a /v1.0 path, and each item of
every $batch answer, is then checked against the v1.0 metadata copy (tests/data/graph-v1.0-schema.json):
a property v1.0 does not declare, or a value of the wrong type, fails the test with the path and type.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import threading
from dataclasses import replace

import pytest

from audit.config import EmailConfig
from audit.delivery import send_report
from audit.demo import demo_config
from audit.readiness import check_readiness
from audit.runner import RunOptions, run
from audit.simulator import Simulator, demo_tenants
from audit.triage import triage
from tests.contract.schema import Schema, answer_for, check_answer

GRAPH = "/v1.0/"
ID_SEGMENT = re.compile(r"/(?=[^/ ]*[0-9])[^/ (]{20,}|/[^/ ]+@[^/ ]+")  # ids and addresses in a path
INDEX = re.compile(r"\[\d+\]")


class Recorder:
    """What the simulator sent: (path with query, status, JSON body or None), batch items unpacked."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int, object]] = []
        self.other_paths: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str, request_body: bytes, response) -> None:
        with self.lock:
            if not path.startswith(GRAPH):
                self.other_paths.add(path.split("?")[0].split("/")[1] if "/" in path else path)
                return
            body = _json(response)
            if path.split("?")[0].rstrip("/") == "/v1.0/$batch" and isinstance(body, dict):
                urls = {
                    str(r.get("id")): r.get("url", "") for r in json.loads(request_body or b"{}").get("requests", [])
                }
                for item in body.get("responses", []):
                    url = GRAPH + urls.get(str(item.get("id")), "?").lstrip("/")
                    self.answers.append((url, int(item.get("status", 0)), item.get("body")))
                return
            self.answers.append((path, response.status, body))


def _json(response):
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    if "json" not in content_type.lower() or not response.body:
        return None
    return json.loads(response.body)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorder:
    tmp = tmp_path_factory.mktemp("contract")
    recorder = Recorder()
    saved = dict(os.environ)
    with Simulator(demo_tenants(users=60, seed=11), on_response=recorder) as sim:
        config, recipients = demo_config(sim, tmp, tmp / "reports")
        home = next(t for t in sim.tenants if t.get("scenario") == "home")
        sender = next(
            u["userPrincipalName"] for u in home["users"] if (u.get("mailbox") or {}).get("location") == "cloud"
        )
        home["clients"][0]["roles"] = [*home["clients"][0]["roles"], "Mail.Send", "Mail.ReadWrite"]
        mail = EmailConfig(to=("secops@example.org",), transport="graph", sender=sender, sender_tenant=home["name"])
        config = replace(config, email=mail)
        everything = run(config, RunOptions(probe="all", recipients_file=recipients, email=True))
        run(config, RunOptions(probe="auto", email=False, stem="auto"))
        check_readiness(config)
        addresses = [row["address"] for row in csv.DictReader(recipients.open(encoding="utf-8"))][:6]
        errorlog = tmp / "errors.csv"
        errorlog.write_text("Mailbox,Remediation Error\n" + "".join(f"{a},Resource is not found\n" for a in addresses))
        triage(config, errorlog, out_dir=tmp / "triage")
        big = tmp / "big.xlsx"  # over Graph's 3 MB inline limit: draft, upload session, send
        big.write_bytes(random.Random(3).randbytes(4 * 1024 * 1024))
        send_report(
            everything.result, replace(everything.report, paths={**everything.report.paths, "xlsx": big}), config
        )
    os.environ.clear()
    os.environ.update(saved)
    return recorder


def test_every_answer_the_audit_receives_has_the_v1_shape(recorded: Recorder) -> None:
    schema = Schema()
    problems: dict[str, list[str]] = {}
    for path, status, body in recorded.answers:
        if not 200 <= status < 300:
            continue  # error envelopes are Graph's, not the metadata's (tests/test_graph.py covers them)
        for problem in check_answer(schema, path, status, body):
            problems.setdefault(ID_SEGMENT.sub("/{id}", INDEX.sub("[i]", problem)), []).append(problem)
    report = [f"{len(found)}x {shape}\n    e.g. {found[0]}" for shape, found in problems.items()]
    assert not report, "answers that are not Graph v1.0 shaped:\n" + "\n".join(report[:40])


def test_the_recording_covers_every_path_the_audit_calls(recorded: Recorder) -> None:
    """A contract over half the paths would pass by missing the broken ones."""
    hit = {
        answer_for(path).pattern.pattern for path, status, _ in recorded.answers if answer_for(path) and status < 400
    }
    wanted = [
        "/users",
        "/users/$count",
        "/users/x/mailboxSettings",
        "/directory/deletedItems/microsoft.graph.user",
        "/organization",
        "/subscribedSkus",
        "/servicePrincipals",
        "/servicePrincipals/x/appRoleAssignments",
        "/servicePrincipals/x/oauth2PermissionGrants",
        "/applications",
        "/directory/administrativeUnits/x/members",
        "/groups/x/transitiveMembers/microsoft.graph.user",
        "/reports/getMailboxUsageDetail(period='D7')",
        "/users/x/sendMail",
        "/users/x/messages",
        "/users/x/messages/x/attachments/createUploadSession",
        "/users/x/messages/x/send",
    ]
    missing = [p for p in wanted if answer_for(GRAPH.rstrip("/") + p).pattern.pattern not in hit]
    assert not missing, f"the recorded run never got a successful answer for {missing}"
    unknown = sorted({p.split("?")[0] for p, _, _ in recorded.answers if answer_for(p) is None})
    assert not unknown, f"paths with no v1.0 type in tests/contract/schema.py: {unknown}"


def test_mailbox_settings_carry_user_purpose_as_a_plain_string(recorded: Recorder) -> None:
    """v1.0 metadata: mailboxSettings.userPurpose is of the enum type graph.userPurpose, which JSON writes
    as the member name (learn.microsoft.com/graph/api/resources/mailboxsettings, JSON representation:
    "userPurpose": "String"). The older example of api/user-get-mailboxsettings.md shows an object
    {"value": "user"}; the client still reads that (tests/contract/test_user_purpose.py)."""
    purposes = [
        body["userPurpose"]
        for path, status, body in recorded.answers
        if status == 200 and path.split("?")[0].endswith("/mailboxSettings") and isinstance(body, dict)
    ]
    assert purposes and all(isinstance(p, str) for p in purposes), purposes[:3]
    assert {"user", "shared"} <= set(purposes)


def test_an_audit_reads_the_older_object_shape_too(sim_factory, make_config, tmp_path) -> None:
    """A tenant answering {"userPurpose": {"value": ...}} (api/user-get-mailboxsettings.md, example 1)."""
    from audit.simulator import generate_tenant

    spec = {**generate_tenant("contoso", 40, seed=2, scenario="healthy"), "user_purpose_shape": "object"}
    sim = sim_factory([spec])
    outcome = run(make_config(sim, [spec], tmp_path), RunOptions(probe="all", email=False))
    (tenant,) = outcome.result.tenants
    purposes = {p.purpose for p in tenant.snapshot.probes.value.values() if p.outcome == "mailbox"}
    wanted = {
        (u.get("mailbox") or {}).get("purpose")
        for u in spec["users"]
        if (u.get("mailbox") or {}).get("location") == "cloud"
    }
    assert "shared" in wanted and purposes == wanted
