"""Licensing tables: SKU and service-plan names, and which plans give a user an Exchange Online mailbox.

The tables ship as package data (audit/data/skus.csv, service_plans.csv) derived from Microsoft's
"Product names and service plan identifiers for licensing" CSV. Nothing here reads that CSV at run
time; `python -m audit.licensing SOURCE.csv` regenerates the tables from a newer copy.

The mailbox rule lives in MAILBOX_PLAN_NAMES below and nowhere else: the derivation writes it into the
`gives_mailbox` column, the run-time API reads that column back.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import logging
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TextIO

from audit.models import AssignedPlan, Dataset, User

log = logging.getLogger("audit")

# Month of the Microsoft table the shipped data was derived from. Keep in step with data/LICENSING.md.
DATA_DATE = "2025-12"

# Service plans whose assignment makes Exchange Online create a user mailbox. Suites (E3, Business
# Premium, F3, ...) and the GCC High / DoD SKUs carry these same plans, so the list is short. The
# licensing CSV does not say which plans create a mailbox; this is Exchange Online knowledge:
# - Plan 1 / Plan 2 / Kiosk / Essentials and their small-business, midsize and POP variants do.
# - The _GOV variants are the same plans in the GCC catalogue.
# Kiosk (EXCHANGE_S_DESKLESS) creates a mailbox even inside "Microsoft 365 F1", whose terms grant no
# mailbox rights: what matters for remediation is whether a mailbox exists, so it counts.
MAILBOX_PLAN_NAMES: frozenset[str] = frozenset(
    {
        "EXCHANGE_S_STANDARD",
        "EXCHANGE_S_ENTERPRISE",
        "EXCHANGE_S_DESKLESS",
        "EXCHANGE_S_ESSENTIALS",
        "EXCHANGE_L_STANDARD",
        "EXCHANGE_S_STANDARD_MIDMARKET",
        "EXCHANGE_B_STANDARD",
        "EXCHANGE_S_STANDARD_GOV",
        "EXCHANGE_S_ENTERPRISE_GOV",
        "EXCHANGE_S_DESKLESS_GOV",
    }
)

# Exchange-named plans that were reviewed and give no mailbox: Exchange Foundation (the plumbing that
# Power BI, Entra ID P1/P2, Intune ... carry), archiving, protection, analytics, multi-geo, data
# classification and privacy add-ons. Regeneration warns about any Exchange-looking plan in neither
# list, so a new mailbox plan in a future table is not silently missed.
NON_MAILBOX_EXCHANGE_PLAN_NAMES: frozenset[str] = frozenset(
    {
        "EXCHANGE_S_FOUNDATION",
        "EXCHANGE_S_FOUNDATION_GOV",
        "EXCHANGE_FOUNDATION_GOV",
        "EXCHANGE_S_ARCHIVE",
        "EXCHANGE_S_ARCHIVE_ADDON",
        "EXCHANGE_ANALYTICS",
        "EXCHANGE_ANALYTICS_GOV",
        "EXCHANGEONLINE_MULTIGEO",
        "EOP_ENTERPRISE",
        "EOP_ENTERPRISE_PREMIUM",
        "MIP_S_EXCHANGE",
        "MIP_S_EXCHANGE_CO",
        # A malformed row of the 2025-12 table: the plan is Power BI Premium EM1, not Exchange.
        "EXCHANGE_S_FOUNDATION PBI_PREMIUM_EM1_ADDON",
    }
)

_EXCHANGE_LOOKING = re.compile(r"EXCHANGE|^EXO_|_EXO_|_EXO$")

SKU_COLUMNS = ("sku_id", "sku_part_number", "product_name", "mailbox_plans")
PLAN_COLUMNS = ("plan_id", "plan_name", "friendly_name", "gives_mailbox")


@dataclass(frozen=True)
class SkuRow:
    sku_id: str
    sku_part_number: str
    product_name: str
    mailbox_plans: tuple[str, ...]  # ids of the mailbox-giving plans the SKU carries


@dataclass(frozen=True)
class PlanRow:
    plan_id: str
    plan_name: str
    friendly_name: str
    gives_mailbox: bool


def _pick(values: Iterable[str], *, avoid: str = "") -> str:
    """The most frequent spelling; on a tie prefer one that is not shouting in capitals, then sort order."""
    counts = Counter(v for v in values if v)
    if not counts:
        return ""
    return min(counts, key=lambda v: (-counts[v], v == avoid, v.isupper(), v))


def _is_mailbox_plan(name: str) -> bool:
    return name.upper() in MAILBOX_PLAN_NAMES


def derive_tables(source: TextIO) -> tuple[list[SkuRow], list[PlanRow]]:
    """Read Microsoft's licensing CSV (comma or semicolon, with or without BOM) into the two tables."""
    text = source.read().lstrip("\ufeff")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    # Old copies spell a header "String_ Id"; normalise by dropping spaces.
    reader.fieldnames = [name.replace(" ", "") for name in reader.fieldnames or []]
    wanted = {"Product_Display_Name", "String_Id", "GUID", "Service_Plan_Name", "Service_Plan_Id"}
    if missing := wanted - set(reader.fieldnames):
        raise ValueError(f"licensing CSV lacks the column(s) {', '.join(sorted(missing))}")

    sku_parts: dict[str, list[str]] = defaultdict(list)
    sku_products: dict[str, list[str]] = defaultdict(list)
    sku_plan_ids: dict[str, set[str]] = defaultdict(set)
    plan_names: dict[str, list[str]] = defaultdict(list)
    plan_friendly: dict[str, list[str]] = defaultdict(list)
    for row in reader:
        sku_id = (row.get("GUID") or "").strip().lower()
        plan_id = (row.get("Service_Plan_Id") or "").strip().lower()
        if sku_id:
            sku_parts[sku_id].append((row.get("String_Id") or "").strip())
            sku_products[sku_id].append((row.get("Product_Display_Name") or "").strip())
        if plan_id:
            plan_names[plan_id].append((row.get("Service_Plan_Name") or "").strip())
            plan_friendly[plan_id].append((row.get("Service_Plans_Included_Friendly_Names") or "").strip())
            if sku_id:
                sku_plan_ids[sku_id].add(plan_id)

    plans = []
    for plan_id in sorted(plan_names):
        name = _pick(plan_names[plan_id])
        friendly = _pick(plan_friendly[plan_id], avoid=name)
        plans.append(PlanRow(plan_id, name, friendly, _is_mailbox_plan(name)))

    found = {p.plan_name.upper() for p in plans}
    if absent := MAILBOX_PLAN_NAMES - found:
        raise ValueError(f"mailbox plan(s) not in the licensing CSV: {', '.join(sorted(absent))}")
    for plan in plans:
        upper = plan.plan_name.upper()
        if (
            _EXCHANGE_LOOKING.search(upper)
            and upper not in MAILBOX_PLAN_NAMES
            and upper not in NON_MAILBOX_EXCHANGE_PLAN_NAMES
            and not upper.startswith("PRIVACY_")
        ):
            log.warning(
                "unreviewed Exchange plan %s (%s): decide whether it gives a mailbox", plan.plan_name, plan.plan_id
            )

    mailbox_ids = {p.plan_id for p in plans if p.gives_mailbox}
    skus = [
        SkuRow(
            sku_id,
            _pick(sku_parts[sku_id]),
            _pick(sku_products[sku_id]),
            tuple(sorted(sku_plan_ids[sku_id] & mailbox_ids)),
        )
        for sku_id in sorted(sku_parts)
    ]
    return skus, plans


def write_tables(skus: list[SkuRow], plans: list[PlanRow], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "skus.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(SKU_COLUMNS)
        for s in skus:
            writer.writerow([s.sku_id, s.sku_part_number, s.product_name, " ".join(s.mailbox_plans)])
    with (out_dir / "service_plans.csv").open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(PLAN_COLUMNS)
        for p in plans:
            writer.writerow([p.plan_id, p.plan_name, p.friendly_name, "true" if p.gives_mailbox else "false"])


# ---------------------------------------------------------------------------------------------------
# Run-time API over the shipped tables (loaded on first use, once).


@dataclass(frozen=True)
class _Tables:
    skus: dict[str, SkuRow]
    plans: dict[str, PlanRow]
    mailbox_plan_ids: frozenset[str]


def _read_data(name: str) -> list[dict[str, str]]:
    text = resources.files("audit").joinpath("data", name).read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@functools.cache
def _tables() -> _Tables:
    skus = {
        r["sku_id"]: SkuRow(r["sku_id"], r["sku_part_number"], r["product_name"], tuple(r["mailbox_plans"].split()))
        for r in _read_data("skus.csv")
    }
    plans = {
        r["plan_id"]: PlanRow(r["plan_id"], r["plan_name"], r["friendly_name"], r["gives_mailbox"] == "true")
        for r in _read_data("service_plans.csv")
    }
    return _Tables(skus, plans, frozenset(p.plan_id for p in plans.values() if p.gives_mailbox))


def _key(guid: str | None) -> str:
    return (guid or "").strip().lower()


def plan_name(plan_id: str | None) -> str | None:
    """Service plan name (e.g. EXCHANGE_S_STANDARD) of a servicePlanId, None when unknown."""
    row = _tables().plans.get(_key(plan_id))
    return row.plan_name if row else None


def plan_friendly_name(plan_id: str | None) -> str | None:
    row = _tables().plans.get(_key(plan_id))
    return row.friendly_name if row else None


def sku_part_number(sku_id: str | None) -> str | None:
    """String id of a SKU (e.g. ENTERPRISEPACK), None when unknown."""
    row = _tables().skus.get(_key(sku_id))
    return row.sku_part_number if row else None


def product_name(sku_id: str | None) -> str | None:
    """Display name of a SKU (e.g. Office 365 E3), None when unknown."""
    row = _tables().skus.get(_key(sku_id))
    return row.product_name if row else None


def sku_mailbox_plan_ids(sku_id: str | None) -> frozenset[str]:
    """Mailbox-giving plans a SKU carries according to the shipped table (empty when unknown)."""
    row = _tables().skus.get(_key(sku_id))
    return frozenset(row.mailbox_plans) if row else frozenset()


def __getattr__(name: str) -> frozenset[str]:
    # MAILBOX_PLAN_IDS is read from the package data on first access, not at import.
    if name == "MAILBOX_PLAN_IDS":
        return _tables().mailbox_plan_ids
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- a tenant's SKUs and a user's mailbox plans -------------------------------------------------------

ENABLED = "enabled"
GRACE = "warning"  # still works; stops when the grace period ends
LAPSED = frozenset({"suspended", "deleted", "lockedout"})
LICENSE_ERROR_STATES = frozenset({"error", "activewitherror"})


class SkuIndex:
    """Which mailbox plans each SKU carries: the tenant's subscribedSkus first, the shipped table second."""

    def __init__(self, mailbox: dict[str, frozenset[str]], names: dict[str, str]):
        self._mailbox = mailbox  # lower-case SKU id -> the mailbox plans the tenant says it carries
        self._names = names  # lower-case SKU id -> skuPartNumber as the tenant reports it

    @classmethod
    def from_skus(cls, subscribed_skus: Dataset[list[dict]]) -> SkuIndex:
        """Index the tenant's subscribedSkus items; an unread list leaves only the shipped table."""
        mailbox: dict[str, frozenset[str]] = {}
        names: dict[str, str] = {}
        mailbox_ids = _tables().mailbox_plan_ids
        if subscribed_skus.ok:
            for sku in subscribed_skus.value or ():
                sku_id = str(sku.get("skuId") or "").lower()
                plans = {str(p.get("servicePlanId") or "").lower() for p in sku.get("servicePlans") or ()}
                mailbox[sku_id] = frozenset(plans & mailbox_ids)
                if sku.get("skuPartNumber"):
                    names[sku_id] = sku["skuPartNumber"]
        return cls(mailbox, names)

    def mailbox_plans(self, sku_id: str) -> frozenset[str] | None:
        """Mailbox plans the SKU carries; None when neither the tenant nor the table knows the SKU."""
        sku_id = sku_id.lower()
        known = self._mailbox.get(sku_id)
        table = sku_mailbox_plan_ids(sku_id)
        if known is None and sku_part_number(sku_id) is None:
            return None
        return (known or frozenset()) | table

    def name(self, sku_id: str) -> str:
        return self._names.get(sku_id.lower()) or sku_part_number(sku_id) or sku_id


def plan_label(plan_id: str) -> str:
    return plan_name(plan_id) or plan_id


@dataclass(frozen=True)
class MailboxPlans:
    """A user's mailbox-giving Exchange plans, sorted by what their status means for the mailbox."""

    enabled: tuple[AssignedPlan, ...]
    grace: tuple[AssignedPlan, ...]
    lapsed: tuple[AssignedPlan, ...]
    disabled: tuple[tuple[str, str], ...]  # (plan id, SKU name) switched off through disabledPlans
    other_exchange: tuple[AssignedPlan, ...]  # Exchange plans that give no mailbox (Foundation ...)

    @property
    def usable(self) -> tuple[AssignedPlan, ...]:
        """Plans under which the mailbox works today (Enabled or in the Warning grace period)."""
        return self.enabled + self.grace

    @property
    def present(self) -> bool:
        return bool(self.enabled or self.grace or self.lapsed)


def _switched_off(user: User, skus: SkuIndex) -> dict[str, str]:
    """Mailbox plans disabled in every licence of the user that (may) carry them -> the SKU disabling it."""
    mailbox_ids = _tables().mailbox_plan_ids
    off: dict[str, str] = {}
    still_on: set[str] = set()
    for lic in user.licenses:
        disabled = set(lic.disabled_plans) & mailbox_ids
        for plan_id in disabled:
            off.setdefault(plan_id, skus.name(lic.sku_id))
        carried = skus.mailbox_plans(lic.sku_id)
        if carried is None:
            # A SKU we do not know may carry the plan: trust assignedPlans rather than guess it away.
            still_on |= mailbox_ids - disabled
        else:
            still_on |= carried - disabled
    return {plan_id: sku for plan_id, sku in off.items() if plan_id not in still_on}


def mailbox_plans(user: User, skus: SkuIndex) -> MailboxPlans:
    mailbox_ids = _tables().mailbox_plan_ids
    off = _switched_off(user, skus)
    enabled, grace, lapsed, other = [], [], [], []
    seen: set[tuple[str, str]] = set()
    for plan in user.plans:
        key = (plan.plan_id, plan.status)
        if key in seen:
            continue
        seen.add(key)
        status = plan.status.lower()
        if plan.plan_id not in mailbox_ids:
            if plan.service.lower() == "exchange":
                other.append(plan)
        elif plan.plan_id in off:
            continue
        elif status == ENABLED:
            enabled.append(plan)
        elif status == GRACE:
            grace.append(plan)
        elif status in LAPSED:
            lapsed.append(plan)
    return MailboxPlans(tuple(enabled), tuple(grace), tuple(lapsed), tuple(sorted(off.items())), tuple(other))


def describe_plans(plans: Iterable[AssignedPlan]) -> str:
    return ", ".join(f"{plan_label(p.plan_id)} ({p.status})" for p in plans)


def describe_licences(user: User, skus: SkuIndex) -> str:
    if not user.licenses:
        return "no licences"
    by_group = {s.sku_id: s.assigned_by_group for s in user.license_states if s.assigned_by_group}
    names = [skus.name(lic.sku_id) + (" (via group)" if lic.sku_id in by_group else "") for lic in user.licenses]
    return "licences: " + ", ".join(names)


def licence_errors(user: User, skus: SkuIndex) -> list[str]:
    return [
        f"licence {skus.name(s.sku_id)} in state {s.state}" + (f" ({s.error})" if s.error else "")
        for s in user.license_states
        if s.state.lower() in LICENSE_ERROR_STATES
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.licensing",
        description="Regenerate the licensing tables from Microsoft's licensing service-plan CSV.",
    )
    parser.add_argument("source", type=Path, help="the downloaded licensing CSV")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).parent / "data",
        help="folder to write skus.csv and service_plans.csv to (default: the package data)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    with args.source.open(encoding="utf-8-sig", newline="") as f:
        skus, plans = derive_tables(f)
    write_tables(skus, plans, args.out)
    mailbox = sorted(p.plan_name for p in plans if p.gives_mailbox)
    print(f"wrote {len(skus)} SKUs and {len(plans)} service plans to {args.out}")
    print(f"mailbox plans ({len(mailbox)}): {', '.join(mailbox)}")
    print("remember to update DATA_DATE and LICENSING.md with the source table's date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
