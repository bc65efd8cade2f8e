"""Read the files admins produce from Exchange Online PowerShell, whichever way they produced them.

Accepted, for any Get-* cmdlet's output:
- `| ConvertTo-Json`: one object or a list. Windows PowerShell 5.1 wraps a piped-in array given with
  -InputObject as {"value": [...], "Count": n}; that is unwrapped too.
- `| Export-Csv`, with the `#TYPE <type name>` first line Windows PowerShell 5.1 writes by default, or
  without it (-NoTypeInformation, and PowerShell 7's default).
- the plain `Format-List` text the cmdlet prints (`Name : value` blocks, long values wrapped onto
  indented lines), e.g. `Get-ApplicationAccessPolicy > policies.txt`.
- any of these in UTF-8 (with or without BOM), UTF-16 with BOM (what Windows PowerShell 5.1's `>` and
  Out-File write by default), or the ANSI code page (Set-Content's default there).

Values are returned as the export holds them; `text()` turns Exchange's serialised values (nested objects
from ConvertTo-Json, lists, booleans) into one string.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from pathlib import Path

MAX_EXPORT_BYTES = 50 * 1024 * 1024
_FORMAT_LIST = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9_.]*)\s*:\s?(?P<value>.*)$")


def decode(raw: bytes) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8")
    if len(raw) >= 4 and raw[1:4:2] == b"\x00\x00" and raw[0] != 0:  # UTF-16 LE written without a BOM
        return raw.decode("utf-16-le")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def read_export(path: Path) -> list[dict]:
    """The objects in one export file; ValueError (naming what is wrong) when it holds none we can read."""
    if path.stat().st_size > MAX_EXPORT_BYTES:
        raise ValueError(f"the file is larger than {MAX_EXPORT_BYTES // (1024 * 1024)} MB")
    text = decode(path.read_bytes()).lstrip("\ufeff")
    return parse_export(text)


def parse_export(text: str) -> list[dict]:
    body = text.strip()
    if not body:
        return []
    if body.startswith(("[", "{")):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as err:
            raise ValueError(f"not valid JSON ({err})") from None
        if isinstance(data, dict) and isinstance(data.get("value"), list) and set(data) <= {"value", "Count"}:
            data = data["value"]
        rows = [data] if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise ValueError("the JSON holds neither an object nor a list of objects")
        return [r for r in rows if isinstance(r, dict)]
    lines = body.splitlines()
    if lines[0].startswith("#TYPE") or lines[0].startswith("#"):
        lines = lines[1:]
    first = lines[0] if lines else ""
    if _FORMAT_LIST.match(first) and not first.startswith('"'):
        return _format_list(lines)
    return [dict(r) for r in csv.DictReader(io.StringIO("\n".join(lines)))]


def _format_list(lines: list[str]) -> list[dict]:
    """`Format-List` text: blank lines between objects; a wrapped value goes on in indented lines."""
    rows: list[dict] = []
    row: dict[str, str] = {}
    key = None
    for line in lines:
        if not line.strip():
            if row:
                rows.append(row)
            row, key = {}, None
            continue
        match = _FORMAT_LIST.match(line)
        if match and not line[:1].isspace():
            key = match.group("key")
            row[key] = match.group("value").strip()
        elif key is not None:  # continuation of a value the console wrapped
            row[key] += line.strip()
    if row:
        rows.append(row)
    return rows


def text(value: object) -> str:
    """One export value as a plain string ("" for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict):
        for key in ("Name", "DisplayName", "Value", "value", "Id", "Guid"):
            if value.get(key) not in (None, ""):
                return text(value[key])
        return ""
    if isinstance(value, list):
        return ";".join(text(v) for v in value if v not in (None, ""))
    return str(value).strip()


def flag(value: object, default: bool = True) -> bool:
    """A True/False column (`Enabled`, `IsValid`), however it was serialised."""
    if isinstance(value, bool):
        return value
    word = text(value).lower()
    if word in ("true", "1", "yes"):
        return True
    if word in ("false", "0", "no"):
        return False
    return default
