"""The image and the Kubernetes manifest: what they promise about privileges, secrets and dependencies.

- The Dockerfile installs every dependency from requirements.lock with --require-hashes and builds the
  package with no index; it runs as a non-root user, and its documented `docker run` is --read-only.
- deploy/cronjob.yaml validates against the Kubernetes schemas of the oldest version it needs (1.29:
  backoffLimitPerIndex and podFailurePolicy FailIndex) and the newest the validator ships, offline: the
  schemas come inside the kubernetes-validate package (generated from Kubernetes' own OpenAPI).
- Every pod: no API token mounted, RuntimeDefault seccomp, non-root, read-only root file system, no
  capabilities, bounded resources; the shards sign in with a projected token; the merge holds no
  sign-in secret.
- pip-audit checks the locked dependencies when its advisory service can be reached, and says so
  plainly (a skip with the reason) when it cannot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
CRONJOB = REPO / "deploy" / "cronjob.yaml"
OLDEST_KUBERNETES = "1.29"
TOKEN_DIR = "/var/run/secrets/azure/tokens"


def dockerfile_runs() -> list[str]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.strip()[4:] for line in text.splitlines() if line.strip().startswith("RUN ")]


def locked() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of requirements.lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    text = LOCK.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)\s*(.*)$", line.strip())
        if m:
            entries[m.group(1).lower().replace("_", "-")] = (m.group(2), re.findall(r"--hash=sha256:(\w{64})", line))
    return entries


def test_the_image_installs_only_hashed_locked_dependencies() -> None:
    runs = dockerfile_runs()
    deps = [r for r in runs if "-r requirements.lock" in r]
    assert deps and all("--require-hashes" in r and "--no-deps" in r for r in deps), runs
    own = [r for r in runs if re.search(r"pip install .*\s\.$", r)]
    assert own and all("--no-index" in r and "--no-deps" in r for r in own), runs
    assert not [r for r in runs if "pip install" in r and r not in deps + own], runs


def test_the_lock_pins_every_dependency_with_hashes() -> None:
    from packaging.requirements import Requirement

    entries = locked()
    assert entries and all(hashes for _, hashes in entries.values()), [n for n, (_, h) in entries.items() if not h]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = [Requirement(r) for r in project["project"]["dependencies"] + project["build-system"]["requires"]]
    for req in needed:
        name = req.name.lower().replace("_", "-")
        assert name in entries, f"{req} is not in requirements.lock: regenerate it (see the Dockerfile)"
        assert req.specifier.contains(entries[name][0], prereleases=True), (req, entries[name][0])


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "docker run -d --name etd-audit --read-only --tmpfs /tmp" in text


# ---------------------------------------------------------------------------------------------------
# The Kubernetes manifest


def manifest() -> list[dict]:
    yaml = pytest.importorskip("yaml", reason="PyYAML comes with kubernetes-validate in the test extras")
    return [d for d in yaml.safe_load_all(CRONJOB.read_text()) if d]


def pods() -> dict[str, dict]:
    return {
        d["metadata"]["name"]: d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for d in manifest()
        if d["kind"] == "CronJob"
    }


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "newest"])
def test_the_manifest_validates_against_kubernetes_schemas(version: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate is in the test extras")
    wanted = kv.latest_version() if version == "newest" else version
    for doc in manifest():
        kv.validate(doc, wanted, strict=True)  # raises ValidationError naming the field


def test_every_pod_runs_unprivileged_with_bounded_resources() -> None:
    for name, pod in pods().items():
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0, name
        writable = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v or "emptyDir" in v}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            mounted = {m["name"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert mounted <= writable == {"reports", "tmp"}, (name, mounted)


def test_shards_sign_in_with_a_projected_token_and_the_merge_holds_no_sign_in_secret() -> None:
    shard, merge = pods()["etd-audit"], pods()["etd-audit-merge"]
    (token,) = [v for v in shard["volumes"] if "projected" in v]
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "api://AzureADTokenExchange"
    container = shard["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AZURE_FEDERATED_TOKEN_FILE"] == f"{TOKEN_DIR}/{source['serviceAccountToken']['path']}"
    assert {"name": token["name"], "mountPath": TOKEN_DIR, "readOnly": True} in container["volumeMounts"]
    assert "envFrom" not in container  # no secret in the shards' environment

    merge_container = merge["containers"][0]
    assert not [v for v in merge["volumes"] if "projected" in v or "secret" in v]
    assert [e["secretRef"]["name"] for e in merge_container.get("envFrom", [])] == ["etd-audit-mail"]


def test_the_cluster_config_signs_in_with_the_platform_token_only() -> None:
    from audit.config import load_config

    config = load_config(REPO / "deploy" / "etd-audit.toml")  # no variable set: none is needed
    assert all(t.federated_token_from_env for t in config.tenants)
    assert len({t.client_id for t in config.tenants}) == 1  # one multi-tenant app for every tenant


# ---------------------------------------------------------------------------------------------------
# Known vulnerabilities in the locked dependencies

UNREACHABLE = re.compile(
    r"ConnectionError|ConnectTimeout|ReadTimeout|Max retries exceeded|NameResolution|Temporary failure in name "
    r"resolution|Network is unreachable|Connection refused|timed out|ServiceError|HTTPSConnectionPool",
    re.I,
)


def test_no_locked_dependency_has_a_known_vulnerability_with_a_fix(tmp_path: Path) -> None:
    audit = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if audit is None:
        pytest.skip("pip-audit could not run: it is not installed (it is in the test extras)")
    out = tmp_path / "audit.json"
    done = subprocess.run(
        [audit, "-r", str(LOCK), "--require-hashes", "--disable-pip", "--progress-spinner", "off"]
        + ["--timeout", "10", "--format", "json", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if not out.exists() or not out.read_text().strip():
        reason = " ".join(done.stderr.split())[-300:]
        if UNREACHABLE.search(done.stderr):
            pytest.skip(f"pip-audit could not run: its advisory service is not reachable from here ({reason})")
        raise AssertionError(f"pip-audit failed (exit {done.returncode}): {reason}")
    report = json.loads(out.read_text())
    not_run = could_not_audit(report)
    if not_run:
        pytest.skip(f"pip-audit could not run: {not_run}")
    skipped = [d["skip_reason"] for d in report.get("dependencies", []) if d.get("skip_reason")]
    assert not skipped, "pip-audit could not check: " + "; ".join(skipped)
    fixable = fixable_vulnerabilities(report)
    assert not fixable, "known vulnerabilities with a fix; update requirements.lock: " + "; ".join(fixable)


def could_not_audit(report: dict) -> str | None:
    """Why pip-audit's answer is no audit: every dependency skipped (it then still says 'No known
    vulnerabilities found' and exits 0)."""
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if d.get("skip_reason")]
    if dependencies and len(skipped) == len(dependencies):
        return (
            f"none of the {len(dependencies)} locked dependencies could be looked up in its advisory service "
            f"(first: {skipped[0]['skip_reason']})"
        )
    return None


def fixable_vulnerabilities(report: dict) -> list[str]:
    """pip-audit's JSON (`--format json`): dependencies[].vulns[] with id and fix_versions."""
    return [
        f"{d['name']} {d['version']}: {v['id']} (fixed in {', '.join(v['fix_versions'])})"
        for d in report.get("dependencies", [])
        for v in d.get("vulns", [])
        if v.get("fix_versions")
    ]


def test_the_audit_verdict_fails_on_a_fixable_vulnerability_and_names_an_audit_that_did_not_run() -> None:
    audited = {
        "dependencies": [
            {"name": "requests", "version": "2.19.0", "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}]},
            {"name": "msal", "version": "1.39.0", "vulns": [{"id": "GHSA-none", "fix_versions": []}]},
            {"name": "pandas", "version": "3.1.1", "vulns": []},
        ],
        "fixes": [],
    }
    assert fixable_vulnerabilities(audited) == ["requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)"]
    assert could_not_audit(audited) is None
    offline = {
        "dependencies": [{"name": "msal", "skip_reason": "Dependency not found on PyPI and could not be audited"}]
    }
    assert "none of the 1 locked dependencies could be looked up" in (could_not_audit(offline) or "")
    assert fixable_vulnerabilities(offline) == []
