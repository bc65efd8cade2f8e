"""load_config: strict TOML validation; every message names the file, the key and the fix."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.config import (
    AuditConfig,
    Config,
    ConfigError,
    EmailConfig,
    RemediationAppConfig,
    ScheduleConfig,
    TenantConfig,
    load_config,
)
from audit.cron import cron_trigger, crontab_weekdays
from audit.schedule import cron_trigger as scheduler_trigger

REPO = Path(__file__).resolve().parents[1]
SECRET_ENV = "ETD_TEST_CONTOSO_SECRET"
TENANT_GUID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_GUID = "0d3c6e2a-1111-4222-8333-944455556666"
APP_GUID = "11111111-2222-4333-8444-555555555555"
THUMB = "3B1E8F2D9C4A7B6E5D0F1A2B3C4D5E6F7A8B9C0D"


def toml_value(value: Any) -> str:
    """A TOML literal for a Python value (strings, numbers, booleans, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dump_toml(data: dict) -> str:
    """A minimal TOML writer: top-level tables become [sections], lists of tables [[sections]]."""
    plain, tables = [], []
    for key, value in data.items():
        name = toml_value(str(key))
        if isinstance(value, dict):
            body = "\n".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items())
            tables.append(f"[{name}]\n{body}\n")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                body = "\n".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in item.items())
                tables.append(f"[[{name}]]\n{body}\n")
        else:
            plain.append(f"{name} = {toml_value(value)}")
    return "\n".join(plain) + "\n\n" + "\n".join(tables)


def base_config() -> dict:
    return {
        "tenants": [
            {
                "name": "contoso",
                "tenant_id": TENANT_GUID,
                "client_id": CLIENT_GUID,
                "client_secret_env": SECRET_ENV,
                "domains": ["contoso.com"],
            },
            {
                "name": "fabrikam",
                "tenant_id": "fabrikam.onmicrosoft.com",
                "client_id": CLIENT_GUID,
                "certificate_path": "certs/fabrikam.pem",
                "certificate_thumbprint": THUMB,
                "cloud": "usgov",
            },
        ],
        "remediation_app": {"app_id": APP_GUID, "credential_warning_days": 45},
        "audit": {
            "out_dir": "out",
            "fail_on": "medium",
            "keep": 3,
            "probe": "all",
            "formats": ["xlsx", "csv"],
        },
        "email": {
            "to": ["secops@contoso.com"],
            "transport": "smtp",
            "sender": "audit@contoso.com",
            "smtp_host": "smtp.contoso.com",
        },
        "schedule": {"cron": "30 5 * * 1-5", "timezone": "Europe/Berlin"},
    }


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(SECRET_ENV, "not-a-real-secret")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "fabrikam.pem").write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    return tmp_path


def write(folder: Path, data: dict | str) -> Path:
    path = folder / "audit.toml"
    path.write_text(data if isinstance(data, str) else dump_toml(data), encoding="utf-8")
    return path


def test_good_config_round_trip(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")  # relative paths must not depend on the working folder
    path = write(folder, base_config())
    config = load_config(path)
    assert config == Config(
        path=path,
        tenants=(
            TenantConfig(
                name="contoso",
                tenant_id=TENANT_GUID,
                client_id=CLIENT_GUID,
                client_secret_env=SECRET_ENV,
                domains=("contoso.com",),
            ),
            TenantConfig(
                name="fabrikam",
                tenant_id="fabrikam.onmicrosoft.com",
                client_id=CLIENT_GUID,
                certificate_path=folder / "certs" / "fabrikam.pem",
                certificate_thumbprint=THUMB,
                cloud="usgov",
            ),
        ),
        remediation_app=RemediationAppConfig(app_id=APP_GUID, credential_warning_days=45),
        audit=AuditConfig(out_dir=folder / "out", fail_on="medium", keep=3, probe="all", formats=("xlsx", "csv")),
        email=EmailConfig(
            to=("secops@contoso.com",),
            transport="smtp",
            sender="audit@contoso.com",
            smtp_host="smtp.contoso.com",
        ),
        schedule=ScheduleConfig(cron="30 5 * * 1-5", timezone="Europe/Berlin"),
    )


def test_minimal_config_gets_defaults(folder: Path) -> None:
    data = {"tenants": [base_config()["tenants"][0]], "remediation_app": {"app_id": APP_GUID}}
    config = load_config(write(folder, data))
    assert config.email is None
    assert config.audit == AuditConfig(out_dir=folder / "reports")
    assert config.schedule == ScheduleConfig()
    assert config.tenants[0].cloud == "global"


def test_thumbprint_with_colons_is_normalised(folder: Path) -> None:
    data = base_config()
    data["tenants"][1]["certificate_thumbprint"] = ":".join(THUMB[i : i + 2].lower() for i in range(0, 40, 2))
    assert load_config(write(folder, data)).tenants[1].certificate_thumbprint == THUMB


def test_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The example names a certificate file next to it; give it one in a copy of the config folder.
    shutil.copy(REPO / "config" / "example.toml", tmp_path / "example.toml")
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "fabrikam-audit.pem").write_text("placeholder")
    monkeypatch.setenv("CONTOSO_AUDIT_SECRET", "x")
    config = load_config(tmp_path / "example.toml")
    assert [t.name for t in config.tenants] == ["contoso", "fabrikam"]
    assert config.tenants[0].client_secret_env == "CONTOSO_AUDIT_SECRET"
    assert config.tenants[1].certificate_path == tmp_path / "certs" / "fabrikam-audit.pem"
    assert config.schedule.cron == "0 6 * * 1"
    assert config.email is not None and config.email.transport == "smtp"


def test_example_config_loads_without_its_secret_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A variable that is not set, or a certificate file that is missing, fails that tenant when it signs in
    # (see tests/reliability/test_credentials.py); the file as a whole is still valid.
    shutil.copy(REPO / "config" / "example.toml", tmp_path / "example.toml")
    monkeypatch.delenv("CONTOSO_AUDIT_SECRET", raising=False)
    config = load_config(tmp_path / "example.toml")
    assert config.tenants[0].client_secret_env == "CONTOSO_AUDIT_SECRET"
    assert not (tmp_path / "certs").exists() and config.tenants[1].certificate_path is not None


CREDENTIAL_FIX = (
    "Keep federated_token_file (workload identity) or managed_identity to sign in without a stored secret; "
    "client_secret_env or client_secret_file for a secret; or certificate_path with certificate_thumbprint "
    "for a certificate."
)


Mutation = Callable[[dict], None]


def _t(i: int, **values: Any) -> Mutation:
    return lambda d: d["tenants"][i].update(values)


def _drop(section: str, key: str, i: int | None = None) -> Mutation:
    return lambda d: (d[section][i] if i is not None else d[section]).pop(key)


def _set(section: str, **values: Any) -> Mutation:
    return lambda d: d[section].update(values)


BAD_CASES: list[tuple[str, Mutation, str]] = [
    (
        "typo",
        _t(0, clound="global"),
        "{file}: tenants[0].clound: unknown key 'clound'. Remove it or fix its spelling; did you mean 'cloud'?",
    ),
    (
        "unknown-section",
        lambda d: d.update(schedul={"cron": "* * * * *"}),
        "{file}: schedul: unknown key 'schedul'. Remove it or fix its spelling; did you mean 'schedule'?",
    ),
    (
        "unknown-far",
        _set("audit", colour="blue"),
        "{file}: audit.colour: unknown key 'colour'. Remove it or fix its spelling; known keys here: "
        "out_dir, "
        "fail_on, keep, ca_bundle, proxy, proxy_password_env, probe, formats, tenant_concurrency, exceptions_file, "
        "max_outlook_concurrency.",
    ),
    (
        "literal-secret",
        _t(0, client_secret="Abc~123.secret"),
        "{file}: tenants[0].client_secret: secrets are not accepted in the config file. Put the secret in an "
        "environment variable and name that variable in client_secret_env (for SMTP: smtp_password_env).",
    ),
    (
        "password-in-email",
        _set("email", password="hunter2"),
        "{file}: email.password: secrets are not accepted in the config file. Put the secret in an "
        "environment "
        "variable and name that variable in client_secret_env (for SMTP: smtp_password_env).",
    ),
    (
        "secret-as-env-name",
        _t(0, client_secret_env="Abc~123.secret"),
        "{file}: tenants[0].client_secret_env: this is not an environment variable name (it looks like a "
        "literal "
        "secret). Put the secret in an environment variable and name that variable in client_secret_env; "
        "a name "
        "has only letters, digits and '_', e.g. client_secret_env = \"CONTOSO_AUDIT_SECRET\".",
    ),
    (
        "both-credentials",
        _t(1, client_secret_env=SECRET_ENV),
        "{file}: tenants[1]: needs exactly one credential, one of federated_token_file, managed_identity, "
        "client_secret_env, client_secret_file, certificate_path (client_secret_env and certificate_path are "
        "set). " + CREDENTIAL_FIX,
    ),
    (
        "no-credential",
        _drop("tenants", "client_secret_env", 0),
        "{file}: tenants[0]: needs exactly one credential, one of federated_token_file, managed_identity, "
        "client_secret_env, client_secret_file, certificate_path (none is set). " + CREDENTIAL_FIX,
    ),
    (
        "cert-without-thumbprint",
        _drop("tenants", "certificate_thumbprint", 1),
        "{file}: tenants[1]: certificate_path is set but certificate_thumbprint is missing. Add "
        "certificate_thumbprint = \"<SHA-1 thumbprint shown for the certificate in the app's Certificates & "
        'secrets page>".',
    ),
    (
        "bad-thumbprint",
        _t(1, certificate_thumbprint="abc"),
        "{file}: tenants[1].certificate_thumbprint: is not a SHA-1 thumbprint (40 hex digits). Copy the "
        "thumbprint from the app's Certificates & secrets page.",
    ),
    (
        "cloud",
        _t(1, cloud="azure"),
        "{file}: tenants[1].cloud: 'azure' is not one of global, usgov, usgov-dod, china. Use one of global, "
        "usgov, usgov-dod, china.",
    ),
    (
        "tenant-id",
        _t(0, tenant_id="contoso tenant"),
        "{file}: tenants[0].tenant_id: 'contoso tenant' is neither a GUID nor a domain name. Use the "
        "directory "
        "(tenant) ID GUID or a verified domain such as contoso.onmicrosoft.com.",
    ),
    (
        "client-id",
        _t(0, client_id="contoso-app"),
        "{file}: tenants[0].client_id: 'contoso-app' is not a GUID. Use the audit app's application "
        "(client) ID, "
        "a GUID.",
    ),
    (
        "missing-client-id",
        _drop("tenants", "client_id", 0),
        "{file}: tenants[0]: required key 'client_id' is missing. Add client_id = "
        '"00000000-0000-0000-0000-000000000000".',
    ),
    (
        "duplicate-name",
        _t(1, name="Contoso"),
        "{file}: tenants[1].name: 'Contoso' is already used by tenants[0]. Give each tenant a unique name.",
    ),
    (
        "wrong-type",
        _set("audit", keep="12"),
        "{file}: audit.keep: expected a whole number, got a string. Write it like keep = 12.",
    ),
    (
        "bool-is-not-int",
        _set("audit", keep=True),
        "{file}: audit.keep: expected a whole number, got true/false.",
    ),
    (
        "keep-zero",
        _set("audit", keep=0),
        "{file}: audit.keep: 0 is out of range. Use a whole number at least 1.",
    ),
    (
        "fail-on",
        _set("audit", fail_on="severe"),
        "{file}: audit.fail_on: 'severe' is not one of critical, high, medium, low. Use one of critical, "
        "high, "
        "medium, low.",
    ),
    (
        "probe",
        _set("audit", probe="sometimes"),
        "{file}: audit.probe: 'sometimes' is not one of auto, all, none. Use one of auto, all, none.",
    ),
    (
        "formats",
        _set("audit", formats=["xlsx", "pdf"]),
        "{file}: audit.formats: unknown format 'pdf'. List one or more of xlsx, json, csv.",
    ),
    (
        "section-type",
        lambda d: d.update(audit="reports"),
        "{file}: audit: expected a table, got a string. Write it as a [audit] section.",
    ),
    (
        "missing-app",
        lambda d: d.pop("remediation_app"),
        "{file}: remediation_app: required section [remediation_app] is missing. Add a [remediation_app] section.",
    ),
    ("no-tenants", lambda d: d.pop("tenants"), "{file}: tenants: no tenant is configured."),
    ("email-to-empty", _set("email", to=[]), "{file}: email.to: no recipient is listed."),
    (
        "email-address",
        _set("email", to=["secops at contoso"]),
        "{file}: email.to[0]: 'secops at contoso' is not an e-mail address. Fix the address.",
    ),
    (
        "graph-needs-tenant",
        lambda d: d["email"].update(transport="graph") or d["email"].pop("smtp_host"),
        "{file}: email: transport 'graph' needs sender_tenant. Add sender_tenant = the name of the sending "
        "tenant, one of contoso, fabrikam.",
    ),
    (
        "graph-unknown-tenant",
        lambda d: d["email"].update(transport="graph", sender_tenant="northwind") or d["email"].pop("smtp_host"),
        "{file}: email.sender_tenant: 'northwind' is not the name of a configured tenant. Use one of "
        "contoso, "
        "fabrikam.",
    ),
    (
        "smtp-needs-host",
        _drop("email", "smtp_host"),
        "{file}: email: transport 'smtp' needs smtp_host. Add smtp_host = \"smtp.contoso.com\".",
    ),
    (
        "cron",
        _set("schedule", cron="0 6 * *"),
        "{file}: schedule.cron: '0 6 * *' is not a valid cron expression",
    ),
    ("cron-range", _set("schedule", cron="0 25 * * 1"), "{file}: schedule.cron: '0 25 * * 1' is not a valid"),
    (
        # Loaded before, then refused by the scheduler at start: refused at load now, by the same rule.
        "cron-both-days",
        _set("schedule", cron="0 6 1 * 1"),
        "{file}: schedule.cron: '0 6 1 * 1' is not a valid cron expression (it restricts both day of month and "
        "day of week",
    ),
    (
        "timezone",
        _set("schedule", timezone="Mars/Base"),
        "{file}: schedule.timezone: 'Mars/Base' is not a known time zone. Use an IANA name such as "
        '"UTC" or '
        '"Europe/Berlin".',
    ),
    (
        "authority-not-https",
        _t(0, authority_host="http://login.example"),
        "{file}: tenants[0].authority_host: 'http://login.example' is not a https URL.",
    ),
]


@pytest.mark.parametrize(("mutate", "message"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_config_message(folder: Path, mutate: Mutation, message: str) -> None:
    data = base_config()
    mutate(data)
    path = write(folder, data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    expected = message.format(file=path, dir=folder)
    text = str(caught.value)
    assert text.startswith(expected), f"\n got: {text}\nwant: {expected}"
    assert "Abc~123" not in text and "hunter2" not in text  # a literal secret is never echoed back


def test_syntax_error_names_line_and_column(folder: Path) -> None:
    path = write(folder, '[[tenants]]\nname = "contoso"\ntenant_id = contoso.com\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: line 3, column 13: not valid TOML (Invalid value). Fix the syntax there; strings need double quotes."
    )


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: d / "missing.toml", "the config file does not exist. Check the path"),
        (lambda d: d, "is a folder, not a config file"),
        (lambda d: _bytes(d / "bin.toml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe"), "is not a UTF-8 text file"),
        (lambda d: _bytes(d / "nul.toml", b"name = 1\x00\x00"), "is a binary file, not TOML"),
    ],
    ids=["missing", "folder", "binary", "nul-bytes"],
)
def test_unreadable_files(tmp_path: Path, make: Callable[[Path], Path], says: str) -> None:
    path = make(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path.resolve()}: {says}")


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- cron: crontab's meaning of the day of week ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "names"),
    [
        ("1", "mon"),
        ("0", "sun"),
        ("7", "sun"),
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("5-7", "sun,fri,sat"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
    ],
)
def test_crontab_weekdays(field: str, names: str) -> None:
    assert crontab_weekdays(field) == names


def test_monday_cron_fires_on_monday() -> None:
    from datetime import UTC, datetime

    fire = cron_trigger("0 6 * * 1", "UTC").get_next_fire_time(None, datetime(2025, 1, 1, tzinfo=UTC))
    assert fire == datetime(2025, 1, 6, 6, 0, tzinfo=UTC) and fire.strftime("%A") == "Monday"


# ---- property: any input gives a Config or a ConfigError --------------------------------------------

toml_scalars = st.one_of(
    st.text(max_size=30),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.sampled_from(["", "global", "auto", "xlsx", SECRET_ENV, TENANT_GUID, "a@b.co", "* * * * *", "UTC"]),
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
SECTIONS = ["tenants", "remediation_app", "audit", "email", "schedule"]
KEYS = sorted({k for s in base_config().values() for t in (s if isinstance(s, list) else [s]) for k in t})


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict:
    data = copy.deepcopy(base_config())
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(SECTIONS + ["extra"]))
        key = draw(st.sampled_from(KEYS) | st.text(max_size=8))
        action = draw(st.sampled_from(["set", "drop", "replace-section"]))
        if action == "replace-section":
            data[section] = draw(toml_values)
            continue
        target = data.get(section)
        if isinstance(target, list) and target and isinstance(target[0], dict):
            target = target[draw(st.integers(0, len(target) - 1))]
        if not isinstance(target, dict):
            continue
        if action == "drop":
            target.pop(key, None)
        else:
            target[key] = draw(toml_values)
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_configs())
def test_any_mutated_config_gives_config_or_config_error(folder: Path, data: dict) -> None:
    path = write(folder, dump_toml(data))
    try:
        result = load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        assert isinstance(result, Config)
        assert scheduler_trigger(result.schedule, str(path)) is not None  # what loads, the scheduler can run


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.sampled_from(['[[tenants]]\nname = "x"\n', "a = [1,", "[a]\n[a]\n"]))
def test_any_text_gives_config_or_config_error(folder: Path, text: str) -> None:
    path = folder / "any.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(exc).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("federated_token_file = false", "tenants[0].federated_token_file: false is not a token file"),
        ("federated_token_file = 3", "tenants[0].federated_token_file: expected a string, got a number"),
        ('managed_identity = "mine"', "tenants[0].managed_identity: 'mine' is neither \"system\" nor a client id"),
    ],
)
def test_passwordless_credential_keys_are_checked(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "c.toml"
    text = (REPO / "deploy" / "etd-audit.toml").read_text()
    path.write_text(re.sub(r"^federated_token_file = true$", line, text, count=1, flags=re.M))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert says in str(caught.value)


def test_passwordless_credentials_load(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    text = (REPO / "deploy" / "etd-audit.toml").read_text()
    text = re.sub(r"^federated_token_file = true$", 'federated_token_file = "tokens/azure"', text, count=1, flags=re.M)
    path.write_text(re.sub(r"^federated_token_file = true$", 'managed_identity = "SYSTEM"', text, count=1, flags=re.M))
    contoso, fabrikam = load_config(path).tenants
    assert contoso.federated_token_file == tmp_path / "tokens" / "azure" and not contoso.federated_token_from_env
    assert fabrikam.managed_identity == "system"


def test_max_outlook_concurrency(folder: Path) -> None:
    assert load_config(write(folder, base_config())).audit.max_outlook_concurrency == 16
    data = base_config()
    data["audit"]["max_outlook_concurrency"] = 4  # an admin who must stay within Graph's documented 4
    assert load_config(write(folder, data)).audit.max_outlook_concurrency == 4
    data["audit"]["max_outlook_concurrency"] = 0
    with pytest.raises(ConfigError) as caught:
        load_config(write(folder, data))
    assert "audit.max_outlook_concurrency: 0 is out of range" in str(caught.value)
