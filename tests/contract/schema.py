"""Check a Graph JSON answer against the v1.0 metadata: known property names and value types only.

The metadata copy is tests/data/graph-v1.0-schema.json (its `_source` key names the Microsoft file and
commit it was taken from). Types are written as in the CSDL: `Edm.String`, `Collection(graph.appRole)`,
`graph.userPurpose`, with " (not null)" for properties declared Nullable="false" and "nav:" before
navigation properties (present in an answer only when expanded, or as a collection of their own).

What the checks follow from the OData JSON format (OData v4.01 JSON, sections 4.5 and 7): instance
annotations (`@odata.context`, `@odata.nextLink`, `@odata.count`, `@odata.type`, `prop@odata.xyz`) may
appear on any object; an enumeration value is a plain string holding the member name (several,
comma-separated, for a flags enumeration); Edm.Int64 may be a number; a derived type is announced with
`@odata.type: "#microsoft.graph.<name>"`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "data" / "graph-v1.0-schema.json"

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DATE_TIME_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIME_OF_DAY = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d{1,12})?)?$")
DURATION = re.compile(r"^-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
INTEGERS = {"Edm.Byte", "Edm.SByte", "Edm.Int16", "Edm.Int32", "Edm.Int64"}
NUMBERS = {"Edm.Double", "Edm.Single", "Edm.Decimal"}


@dataclass(frozen=True)
class PropertyType:
    name: str  # e.g. "Edm.String", "graph.appRole"
    collection: bool
    nullable: bool
    navigation: bool


def parse_type(text: str) -> PropertyType:
    navigation = text.startswith("nav:")
    text = text.removeprefix("nav:")
    nullable = not text.endswith(" (not null)")
    text = text.removesuffix(" (not null)")
    collection = text.startswith("Collection(") and text.endswith(")")
    if collection:
        text = text[len("Collection(") : -1]
    return PropertyType(text, collection, nullable, navigation)


@cache
def load_schema(path: Path = SCHEMA_FILE) -> dict[str, dict]:
    return json.loads(path.read_text(encoding="utf-8"))["types"]


class Schema:
    def __init__(self, types: dict[str, dict] | None = None) -> None:
        self.types = load_schema() if types is None else types

    def kind(self, name: str) -> str | None:
        entry = self.types.get(name)
        return entry["kind"] if entry else None

    def chain(self, name: str) -> list[str]:
        """The type and its base types, nearest first."""
        names = []
        while name:
            names.append(name)
            base = (self.types.get(name) or {}).get("base")
            name = base.removeprefix("graph.") if base else ""
        return names

    def properties(self, name: str) -> dict[str, str]:
        merged: dict[str, str] = {}
        for each in reversed(self.chain(name)):
            merged.update((self.types.get(each) or {}).get("properties", {}))
        return merged

    # ---------------------------------------------------------------------------------------------
    def check_value(self, value, type_text: str, where: str) -> list[str]:
        """Problems with one property value; `where` names it in the messages (path and property)."""
        t = parse_type(type_text)
        if value is None:
            return [] if t.nullable else [f"{where}: null, but the property is declared not null ({type_text})"]
        if t.collection:
            if not isinstance(value, list):
                return [f"{where}: {type(value).__name__} where v1.0 has a collection ({type_text})"]
            problems = []
            for i, item in enumerate(value):
                if item is None:
                    problems.append(f"{where}[{i}]: null inside a collection")
                    continue
                problems += self.check_value(item, t.name, f"{where}[{i}]")
            return problems
        return self.check_single(value, t.name, where)

    def check_single(self, value, name: str, where: str) -> list[str]:
        def wrong(expected: str) -> list[str]:
            return [f"{where}: {json.dumps(value)[:80]} is not {expected} ({name})"]

        if name.startswith("Edm."):
            if name in ("Edm.String",):
                return [] if isinstance(value, str) else wrong("a string")
            if name == "Edm.Boolean":
                return [] if isinstance(value, bool) else wrong("a boolean")
            if name in INTEGERS:
                return [] if isinstance(value, int) and not isinstance(value, bool) else wrong("an integer")
            if name in NUMBERS:
                ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in (
                    "NaN",
                    "INF",
                    "-INF",
                )
                return [] if ok else wrong("a number")
            if not isinstance(value, str):
                return wrong("a string")
            if name == "Edm.Guid":
                return [] if GUID.match(value) else wrong("a GUID")
            if name == "Edm.DateTimeOffset":
                return [] if DATE_TIME_OFFSET.match(value) else wrong("a date and time with a UTC offset")
            if name == "Edm.Date":
                return [] if DATE.match(value) else wrong("a date (YYYY-MM-DD)")
            if name == "Edm.TimeOfDay":
                return [] if TIME_OF_DAY.match(value) else wrong("a time of day")
            if name == "Edm.Duration":
                return [] if DURATION.match(value) else wrong("a duration")
            if name == "Edm.Binary":
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    return wrong("base64 binary")
                return []
            return [f"{where}: {name} values are not sent inline in JSON"]
        short = name.removeprefix("graph.")
        kind = self.kind(short)
        if kind is None:
            return [f"{where}: type {name} is not in the schema copy; add it from the v1.0 metadata"]
        if kind == "EnumType":
            if not isinstance(value, str):
                return wrong("an enumeration member name (a plain string)")
            members = self.types[short]["properties"]
            given = [v.strip() for v in value.split(",")] if self.types[short].get("isFlags") else [value]
            unknown = [v for v in given if v not in members]
            return [f"{where}: '{value}' is not a member of {name} ({', '.join(members)})"] if unknown else []
        return self.check_object(value, short, where)

    def check_object(self, value, name: str, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: {json.dumps(value)[:80]} where v1.0 has an object of type graph.{name}"]
        announced = value.get("@odata.type")
        if isinstance(announced, str) and announced.startswith("#microsoft.graph."):
            derived = announced.removeprefix("#microsoft.graph.")
            if self.kind(derived) is None:
                return [f"{where}: @odata.type {announced} is not in the schema copy"]
            if name not in self.chain(derived):
                return [f"{where}: @odata.type {announced} does not derive from graph.{name}"]
            name = derived
        props = self.properties(name)
        problems = []
        for key, item in value.items():
            if key.startswith("@") or "@odata." in key:
                continue  # instance or property annotations
            if key not in props:
                problems.append(f"{where}.{key}: graph.{name} has no property '{key}' in v1.0")
                continue
            problems += self.check_value(item, props[key], f"{where}.{key}")
        return problems


# -------------------------------------------------------------------------------------------------
# What each path answers with. `collection` = {"value": [...]}; `value` = {"value": <single>}
# (a property read on its own, e.g. /mailboxSettings/userPurpose); `entity` = the object itself.


@dataclass(frozen=True)
class Answer:
    pattern: re.Pattern
    type_name: str
    shape: str  # collection | entity | value | count | text | empty


def _a(pattern: str, type_name: str, shape: str) -> Answer:
    return Answer(re.compile("^/v1\\.0" + pattern + "$", re.IGNORECASE), type_name, shape)


_ID = r"/[^/]+"
ANSWERS: tuple[Answer, ...] = (
    _a(r"/users/\$count", "", "count"),
    _a(r"/users", "user", "collection"),
    _a(r"/users" + _ID + r"/mailboxSettings", "mailboxSettings", "entity"),
    _a(r"/users" + _ID + r"/mailboxSettings/userPurpose", "graph.userPurpose", "value"),
    _a(r"/users" + _ID + r"/mailFolders" + _ID, "mailFolder", "entity"),
    _a(r"/users" + _ID + r"/sendMail", "", "empty"),
    _a(r"/users" + _ID + r"/messages", "message", "entity"),
    _a(r"/users" + _ID + r"/messages" + _ID + r"/attachments", "attachment", "entity"),
    _a(r"/users" + _ID + r"/messages" + _ID + r"/attachments/createUploadSession", "uploadSession", "entity"),
    _a(r"/users" + _ID + r"/messages" + _ID + r"/send", "", "empty"),
    _a(r"/users" + _ID, "user", "entity"),
    _a(r"/directory/deletedItems/microsoft\.graph\.user", "user", "collection"),
    _a(r"/directory/administrativeUnits", "administrativeUnit", "collection"),
    _a(r"/directory/administrativeUnits" + _ID, "administrativeUnit", "entity"),
    _a(r"/directory/administrativeUnits" + _ID + r"/members", "directoryObject", "collection"),
    _a(r"/directory/administrativeUnits" + _ID + r"/members/microsoft\.graph\.user", "user", "collection"),
    _a(r"/directory/administrativeUnits" + _ID + r"/members/microsoft\.graph\.group", "group", "collection"),
    _a(r"/organization", "organization", "collection"),
    _a(r"/domains", "domain", "collection"),
    _a(r"/subscribedSkus", "subscribedSku", "collection"),
    _a(r"/servicePrincipals", "servicePrincipal", "collection"),
    _a(r"/servicePrincipals(\(appId='[^']*'\)|" + _ID + ")", "servicePrincipal", "entity"),
    _a(r"/servicePrincipals(\(appId='[^']*'\)|" + _ID + ")/appRoleAssignments", "appRoleAssignment", "collection"),
    _a(
        r"/servicePrincipals(\(appId='[^']*'\)|" + _ID + ")/oauth2PermissionGrants",
        "oAuth2PermissionGrant",
        "collection",
    ),
    _a(r"/applications", "application", "collection"),
    _a(r"/applications(\(appId='[^']*'\)|" + _ID + ")", "application", "entity"),
    _a(r"/groups", "group", "collection"),
    _a(r"/groups" + _ID, "group", "entity"),
    _a(r"/groups" + _ID + r"/(transitiveMembers|members)/microsoft\.graph\.user", "user", "collection"),
    _a(r"/groups" + _ID + r"/(transitiveMembers|members)", "directoryObject", "collection"),
    # The usage report answers 302 with a download link, then CSV (api/reportroot-getmailboxusagedetail.md).
    _a(r"/reports/getMailboxUsageDetail\(period='[^']*'\)", "", "text"),
)


def answer_for(path: str) -> Answer | None:
    bare = path.split("?", 1)[0]
    return next((a for a in ANSWERS if a.pattern.match(bare)), None)


def check_answer(schema: Schema, path: str, status: int, body) -> list[str]:
    """Problems with one successful JSON answer to `path`; each message starts with the path."""
    bare = path.split("?", 1)[0]
    found = answer_for(path)
    if found is None:
        return [f"{bare}: no v1.0 type is known for this path; add it to tests/contract/schema.py ANSWERS"]
    where = f"{bare} ({found.shape} of {found.type_name or 'no JSON'})"
    if found.shape in ("text", "count", "empty"):
        return []
    if not isinstance(body, dict):
        return [f"{where}: the answer is not a JSON object"]
    extra = sorted(k for k in body if not k.startswith("@") and k != "value")
    if found.shape == "collection":
        if not isinstance(body.get("value"), list):
            return [f"{where}: no 'value' array"]
        problems = [f"{where}: unexpected top-level key '{k}' next to 'value'" for k in extra]
        for i, item in enumerate(body["value"]):
            problems += schema.check_object(item, found.type_name, f"{where} value[{i}]")
        return problems
    if found.shape == "value":
        if "value" not in body:
            return [f"{where}: no 'value' key"]
        problems = [f"{where}: unexpected top-level key '{k}' next to 'value'" for k in extra]
        return problems + schema.check_value(body["value"], found.type_name, f"{where} value")
    return schema.check_object(body, found.type_name, where)
