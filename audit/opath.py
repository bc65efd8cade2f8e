"""Exchange OPATH recipient filters: parse them and evaluate them against what the audit knows of a mailbox.

Management scopes of Exchange RBAC for Applications hold their recipient filter in OPATH, the PowerShell-like
syntax of `New-ManagementScope -RecipientRestrictionFilter` (`Department -eq 'Sales' -and CustomAttribute1
-ne 'NoRemediation'`); `Get-ManagementScope` shows it back in `RecipientFilter`, normally with every
comparison in parentheses. Supported: `-eq -ne -like -notlike`, `-and -or -not`, parentheses, values in
single or double quotes (a doubled quote inside stands for one), bare words, `$null`, `$true`, `$false`.

Comparison is case-insensitive, as Exchange's is. `-like` knows the `*` wildcard. A multi-valued property
(EmailAddresses, MemberOfGroup) matches `-eq` when any value does, and `-ne` when none does.

`-and` and `-or` written side by side without parentheses are refused: PowerShell gives them the same
precedence (left to right), other filter languages bind `-and` tighter, and a scope read the wrong way
would produce wrong findings.

Evaluation is three-valued: a property whose value is unknown for one recipient makes a comparison
unknown (None), and `-and`/`-or` combine unknowns the usual way (False -and unknown is False).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass

Value = str | tuple[str, ...] | None  # None: the property is empty ($null)


class OpathError(ValueError):
    """A filter the parser cannot read; str() says where."""


class Unknown(Exception):
    """Raised by a lookup when the property's value is not known for this recipient."""


@dataclass(frozen=True)
class Compare:
    prop: str  # as written in the filter
    op: str  # eq | ne | like | notlike
    value: str | None  # None: $null


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class BoolOp:
    op: str  # and | or
    operands: tuple[Node, ...]


Node = Compare | Not | BoolOp

COMPARISONS = ("eq", "ne", "like", "notlike")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        '(?P<sq>(?:[^']|'')*)' |
        "(?P<dq>(?:[^"]|"")*)" |
        -(?P<op>[A-Za-z]+) |
        (?P<word>[^\s()'"]+)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):  # the script-block form: -RecipientRestrictionFilter { ... }
        body = body[1:-1]
    out: list[tuple[str, str]] = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if not match or match.end() == pos:
            raise OpathError(f"cannot read the filter at position {pos}: {body[pos : pos + 20]!r}")
        pos = match.end()
        kind = match.lastgroup or ""
        if kind == "sq":
            out.append(("str", match.group("sq").replace("''", "'")))
        elif kind == "dq":
            out.append(("str", match.group("dq").replace('""', '"')))
        elif kind == "op":
            out.append(("op", match.group("op").lower()))
        else:
            out.append((kind, match.group(kind)))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise OpathError("the filter ends too early")
        self.i += 1
        return token

    def expression(self) -> Node:
        operands = [self.unary()]
        joiner: str | None = None
        while (token := self.peek()) is not None and token[0] == "op" and token[1] in ("and", "or"):
            if joiner is not None and token[1] != joiner:
                raise OpathError("-and and -or are mixed without parentheses; add parentheses to say which binds first")
            joiner = token[1]
            self.take()
            operands.append(self.unary())
        return operands[0] if joiner is None else BoolOp(joiner, tuple(operands))

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] == "not":
            self.take()
            return Not(self.unary())
        if token is not None and token[0] == "lp":
            self.take()
            inner = self.expression()
            if self.take()[0] != "rp":
                raise OpathError("a parenthesis is not closed")
            return inner
        return self.comparison()

    def comparison(self) -> Node:
        kind, prop = self.take()
        if kind != "word" or prop.startswith("$"):
            raise OpathError(f"expected a property name, found {prop!r}")
        kind, op = self.take()
        if kind != "op" or op not in COMPARISONS:
            raise OpathError(f"unsupported operator after {prop}: {'-' + op if kind == 'op' else op!r}")
        kind, raw = self.take()
        if kind not in ("str", "word"):
            raise OpathError(f"expected a value after {prop} -{op}")
        value: str | None = raw
        if kind == "word" and raw.lower() == "$null":
            value = None
        elif kind == "word" and raw.lower() in ("$true", "$false"):
            value = raw[1:].lower()
        return Compare(prop, op, value)


def parse(text: str) -> Node:
    """The filter as a tree; OpathError when it cannot be read."""
    parser = _Parser(_tokens(text))
    if parser.peek() is None:
        raise OpathError("the filter is empty")
    node = parser.expression()
    if parser.peek() is not None:
        raise OpathError(f"unexpected {parser.peek()[1]!r} after a complete filter")  # type: ignore[index]
    return node


def properties(node: Node) -> set[str]:
    """Every property the filter names, as written."""
    if isinstance(node, Compare):
        return {node.prop}
    if isinstance(node, Not):
        return properties(node.operand)
    return set().union(*(properties(n) for n in node.operands))


def values_for(node: Node, prop: str) -> set[str]:
    """The literal values compared with one property (case-insensitive name), e.g. MemberOfGroup's groups."""
    if isinstance(node, Compare):
        return {node.value} if node.prop.lower() == prop.lower() and node.value is not None else set()
    if isinstance(node, Not):
        return values_for(node.operand, prop)
    return set().union(*(values_for(n, prop) for n in node.operands))


def _matches(op: str, have: Value, want: str | None) -> bool:
    items = tuple(v for v in ((have,) if isinstance(have, str) else (have or ())) if v)
    if want is None:
        empty = not items
        return empty if op in ("eq", "like") else not empty
    target = want.lower()
    if op in ("eq", "ne"):
        hit = any(v.lower() == target for v in items)
    else:
        # Only * is a wildcard in OPATH; escape the rest of fnmatch's syntax.
        pattern = re.sub(r"([\[\]?])", r"[\1]", target)
        hit = any(fnmatch.fnmatchcase(v.lower(), pattern) for v in items)
    return hit if op in ("eq", "like") else not hit


def evaluate(node: Node, lookup: Callable[[str], Value]) -> bool | None:
    """True/False, or None when an unknown value decides it. `lookup(prop)` may raise Unknown."""
    if isinstance(node, Compare):
        try:
            have = lookup(node.prop)
        except Unknown:
            return None
        return _matches(node.op, have, node.value)
    if isinstance(node, Not):
        inner = evaluate(node.operand, lookup)
        return None if inner is None else not inner
    results = [evaluate(n, lookup) for n in node.operands]
    if node.op == "and":
        return False if False in results else (None if None in results else True)
    return True if True in results else (None if None in results else False)
