"""The demo workbook printed to PDF by LibreOffice, headless: how the Findings sheet comes out on paper.

Skipped when LibreOffice (soffice) or poppler's pdftotext/pdfinfo are not installed. The text-size check
needs a font metric-compatible with Calibri (Carlito): without it LibreOffice substitutes a wider font and
scales the sheet down further than Excel would, so that one check is skipped then.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from audit.cli import main

SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")
POPPLER = shutil.which("pdftotext") and shutil.which("pdfinfo")
pytestmark = pytest.mark.skipif(
    not (SOFFICE and POPPLER),
    reason="needs LibreOffice and poppler-utils (apt-get install libreoffice-calc poppler-utils) to print to PDF",
)
READABLE_PT = 8.0  # 11 pt body text printed at 80 % or more is 8.8 pt; 8 pt leaves room for rounding


def _carlito() -> bool:
    fc = shutil.which("fc-list")
    return bool(fc) and "carlito" in subprocess.run([fc], capture_output=True, text=True).stdout.lower()


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("print")
    assert main(["demo", "--users", "200", "--out", str(out), "--no-email"]) == 1
    xlsx = next(out.glob("etd-audit-*.xlsx"))
    profile = out / "lo-profile"  # a profile of its own: no clash with another LibreOffice running
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf", "--outdir", str(out)]
        + [str(xlsx)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return xlsx, xlsx.with_suffix(".pdf")


def pages(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1]


def page_sizes(pdf: Path, count: int) -> list[tuple[float, float]]:
    info = subprocess.run(
        ["pdfinfo", "-f", "1", "-l", str(count), str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    return [(float(w), float(h)) for w, h in re.findall(r"Page\s+\d+ size:\s+([\d.]+) x ([\d.]+)", info)]


def findings_pages(pdf: Path) -> list[int]:
    """Page numbers (from 1) whose footer names the Findings sheet."""
    return [i + 1 for i, text in enumerate(pages(pdf)) if re.search(r"Findings, page \d+ of \d+", text)]


def test_findings_print_landscape_one_page_across_with_the_header_on_every_page(printed):
    xlsx, pdf = printed
    numbers = findings_pages(pdf)
    assert numbers, "no page of the PDF is a Findings page"
    assert numbers == list(range(numbers[0], numbers[-1] + 1))  # one run of pages
    every = pages(pdf)
    sizes = page_sizes(pdf, numbers[-1])
    for n in numbers:
        width, height = sizes[n - 1]
        assert width > height, f"page {n} is not landscape"
        text = every[n - 1]
        # print titles: the header is repeated; one page across: the last printed column is on every page
        assert "Severity" in text and "Evidence" in text and "Fix" in text, f"page {n}"
        assert "Object id" not in text  # ids stay on screen and in the CSV
    # page count: the rows' heights at the print scale fill this many pages, give or take rounding
    ws = openpyxl.load_workbook(xlsx)["Findings"]
    rows = ws.max_row - 1
    tallest = max((ws.row_dimensions[r].height or 15.0) for r in range(2, ws.max_row + 1))
    usable = (sizes[numbers[0] - 1][1] - 72.0) / 0.8 - 30  # 0.5 in margins, header row, at 80 % or more
    per_page = max(1, math.floor(usable / tallest))
    assert len(numbers) <= math.ceil(rows / per_page), (len(numbers), rows, per_page)
    assert len(numbers) >= math.ceil(rows * 15.0 / usable)


def test_findings_text_is_printed_at_a_readable_size(printed):
    if not _carlito():
        pytest.skip("Carlito (fonts-crosextra-carlito) is not installed; LibreOffice would print in a wider font")
    _, pdf = printed
    first = findings_pages(pdf)[0]
    boxes = subprocess.run(
        ["pdftotext", "-bbox", "-f", str(first), "-l", str(first), str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    heights = sorted(
        float(b) - float(a) for a, b in re.findall(r'yMin="([\d.]+)" xMax="[\d.]+" yMax="([\d.]+)"', boxes)
    )
    median = heights[len(heights) // 2]
    size = median / 1.22  # Carlito's line box (ascent + descent) is 1.22 em
    assert size >= READABLE_PT, f"Findings print at about {size:.1f} pt"
