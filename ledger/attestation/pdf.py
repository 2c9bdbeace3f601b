"""The attestation's page: A4 portrait, what docs/domain.md lists, drawn with reportlab.

Pure layout: `render` gets checked content (ledger/attestation/service.py builds it
from verified, signed events) and returns unsigned PDF bytes; signing.py seals it.
The QR code is drawn as vector squares at least MIN_MODULE_MM wide, so a phone
reads it from paper. The lower right corner is left for the visible signature.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from reportlab.lib.colors import Color, HexColor, white
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from ledger.attestation.words import WORDS, long_date
from ledger.domain.referential import title_in
from ledger.domain.scoring import MAX_LEVEL_LIMIT, PIX_PER_LEVEL
from ledger.qr_image import qr_matrix

PAGE_W, PAGE_H = A4
MARGIN = 18 * mm
MIN_MODULE_MM = 0.5
QR_MIN_SIDE = 40 * mm
SIGNATURE_BOX = (118 * mm, 14 * mm, 74 * mm, 24 * mm)  # x, y, width, height (from bottom left)
NAVY = HexColor("#12295b")
ACCENT = HexColor("#c8102e")
INK = HexColor("#1d1d1f")
MUTED = HexColor("#5b6270")
RULE = HexColor("#c9ced8")
SHADE = HexColor("#eef1f7")
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


@dataclass(frozen=True)
class Attestation:
    """What one attestation states; every value comes from verified, signed events."""

    code: str
    first_name: str
    last_name: str
    birth_date: str
    birth_place: str
    centre: str
    centre_city: str
    passed_on: str
    issued_on: str
    valid_until: str
    pix_score: int
    max_level: int
    domains: list[dict[str, Any]]
    qr_url: str
    verify_url: str
    issued_seq: int
    issued_hash: str
    rescored_on: str | None = None


@cache
def _fonts() -> tuple[str, str, str]:
    """DejaVu (any script a name may use) when installed, else reportlab's own Vera."""
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        mono = folder / "DejaVuSansMono.ttf"
        if regular.is_file() and bold.is_file() and mono.is_file():
            pdfmetrics.registerFont(TTFont("Att", str(regular)))
            pdfmetrics.registerFont(TTFont("Att-Bold", str(bold)))
            pdfmetrics.registerFont(TTFont("Att-Mono", str(mono)))
            return "Att", "Att-Bold", "Att-Mono"
    pdfmetrics.registerFont(TTFont("Att", "Vera.ttf"))
    pdfmetrics.registerFont(TTFont("Att-Bold", "VeraBd.ttf"))
    return "Att", "Att-Bold", "Courier"


def max_pix(max_level: int, competences: int = 16) -> int:
    """The highest pix score reachable when levels are capped at `max_level`."""
    return competences * max_level * PIX_PER_LEVEL


def render(att: Attestation, lang: str = "fr") -> bytes:
    """Unsigned PDF bytes of the attestation in `lang` ("fr" or "en")."""
    words = WORDS[lang]
    out = io.BytesIO()
    pdf = Canvas(out, pagesize=A4, pageCompression=1, invariant=1)
    pdf.setTitle(f"{words['title']} {att.code}")
    pdf.setAuthor(words["issuer"])
    pdf.setSubject(words["subtitle"])
    pdf.setCreator("crcn-ledger")
    page = _Page(pdf, words, lang)
    y = page.header(att)
    y = page.holder(att, y)
    y = page.facts_and_qr(att, y)
    y = page.competences(att, y)
    page.proof(att)
    page.footer()
    pdf.showPage()
    pdf.save()
    return out.getvalue()


class _Page:
    """Draws the page top-down; each part returns the y where the next one starts."""

    def __init__(self, pdf: Canvas, words: dict[str, str], lang: str):
        self.pdf, self.w, self.lang = pdf, words, lang
        self.regular, self.bold, self.mono = _fonts()

    def text(self, x: float, y: float, s: str, size: float, font: str = "", color: Color = INK):
        self.pdf.setFillColor(color)
        self.pdf.setFont(font or self.regular, size)
        self.pdf.drawString(x, y, s)

    def right(self, x: float, y: float, s: str, size: float, font: str = "", color: Color = INK):
        self.pdf.setFillColor(color)
        self.pdf.setFont(font or self.regular, size)
        self.pdf.drawRightString(x, y, s)

    def fit(self, s: str, font: str, size: float, width: float) -> str:
        """`s` shortened with an ellipsis until it fits `width`."""
        if self.pdf.stringWidth(s, font, size) <= width:
            return s
        while s and self.pdf.stringWidth(s + "…", font, size) > width:
            s = s[:-1]
        return s + "…"

    def shrink(self, s: str, font: str, size: float, width: float, minimum: float) -> float:
        """The largest size from `size` down to `minimum` at which `s` fits `width`."""
        while size > minimum and self.pdf.stringWidth(s, font, size) > width:
            size -= 0.5
        return size

    def wrap(self, s: str, font: str, size: float, width: float) -> tuple[list[str], float]:
        """`s` on at most two lines of `width`, smaller if needed; cut only as a last resort."""
        for attempt in (size, size - 1, size - 2, size - 2.5):
            lines = simpleSplit(s, font, attempt, width)
            if len(lines) <= 2:
                return lines, attempt
        return [lines[0], self.fit(" ".join(lines[1:]), font, attempt, width)], attempt

    def date(self, iso: str) -> str:
        return long_date(iso, self.lang)

    def header(self, att: Attestation) -> float:
        pdf, top = self.pdf, PAGE_H
        pdf.setFillColor(NAVY)
        pdf.rect(0, top - 26 * mm, PAGE_W, 26 * mm, stroke=0, fill=1)
        pdf.setFillColor(ACCENT)
        pdf.rect(0, top - 27 * mm, PAGE_W, 1 * mm, stroke=0, fill=1)
        self.text(MARGIN, top - 12 * mm, self.w["title"].upper(), 19, self.bold, white)
        self.text(MARGIN, top - 19 * mm, self.w["subtitle"], 10, self.regular, white)
        self.right(PAGE_W - MARGIN, top - 12 * mm, self.w["issuer"], 10.5, self.bold, white)
        self.right(PAGE_W - MARGIN, top - 19 * mm, att.code, 10.5, self.mono, white)
        return top - 36 * mm

    def holder(self, att: Attestation, y: float) -> float:
        self.text(MARGIN, y, self.w["awarded_to"], 10, color=MUTED)
        name = f"{att.first_name} {att.last_name.upper()}"
        size = self.shrink(
            name, self.bold, 22, PAGE_W - 2 * MARGIN, 12
        )  # a name is never cut short
        self.text(MARGIN, y - 9 * mm, self.fit(name, self.bold, size, PAGE_W - 2 * MARGIN), size,
                  self.bold, NAVY)  # fmt: skip
        born = self.w["born"].format(date=self.date(att.birth_date), place=att.birth_place)
        width = PAGE_W - 2 * MARGIN
        self.text(MARGIN, y - 15.5 * mm, self.fit(born, self.regular, 11, width), 11)
        self.text(MARGIN, y - 20.5 * mm, self.w["achieved"], 11)
        self.rule(y - 24 * mm)
        return y - 30 * mm

    def rule(self, y: float) -> None:
        self.pdf.setStrokeColor(RULE)
        self.pdf.setLineWidth(0.6)
        self.pdf.line(MARGIN, y, PAGE_W - MARGIN, y)

    def facts_and_qr(self, att: Attestation, y: float) -> float:
        """Facts and the score on the left, the QR code on the right."""
        matrix = qr_matrix(att.qr_url)
        side = qr_side(len(matrix))
        qr_x = PAGE_W - MARGIN - side
        facts = [
            (self.w["centre"], f"{att.centre} ({att.centre_city})"),
            (self.w["passed_on"], self.date(att.passed_on)),
            (self.w["issued_on"], self.date(att.issued_on)),
            (self.w["valid_until"], self.w["valid_3y"].format(date=self.date(att.valid_until))),
            (self.w["code"], att.code),
        ]
        if att.rescored_on:
            facts.append((self.w["rescored"], self.date(att.rescored_on)))
        left_w = qr_x - MARGIN - 6 * mm
        row = y
        for label, value in facts:
            self.text(MARGIN, row, label, 9, color=MUTED)
            font = self.mono if label == self.w["code"] else self.bold
            lines, size = self.wrap(value, font, 10, left_w - 40 * mm)
            for line in lines:
                self.text(MARGIN + 40 * mm, row, line, size, font)
                row -= 4.2 * mm
            row -= 2.4 * mm
        row = self.score(att, row + 2 * mm, left_w) - 2 * mm
        top = y + 4 * mm
        draw_qr(self.pdf, matrix, qr_x, top - side, side)
        self.pdf.setFillColor(MUTED)
        self.pdf.setFont(self.regular, 8)
        self.pdf.drawCentredString(qr_x + side / 2, top - side - 3.5 * mm, self.w["scan"])
        y = min(row, top - side - 6 * mm)
        if att.max_level < MAX_LEVEL_LIMIT:
            note = self.w["capped"].format(level=att.max_level, limit=MAX_LEVEL_LIMIT)
            self.text(MARGIN, y - 1 * mm, note, 8, color=MUTED)
            y -= 4 * mm
        return y - 5 * mm

    def score(self, att: Attestation, y: float, width: float) -> float:
        """The pix score over the maximum reachable, in a shaded box `width` wide."""
        pdf, height = self.pdf, 13 * mm
        pdf.setFillColor(SHADE)
        pdf.roundRect(MARGIN, y - height, width, height, 2 * mm, stroke=0, fill=1)
        self.text(MARGIN + 4 * mm, y - 4.6 * mm, self.w["score"].upper(), 7.5, self.bold, MUTED)
        value = self.w["pix_over"].format(pix=att.pix_score, max=max_pix(att.max_level))
        value = self.fit(value, self.bold, 14, width - 8 * mm)
        self.text(MARGIN + 4 * mm, y - 10.4 * mm, value, 14, self.bold, NAVY)
        return y - height

    def competences(self, att: Attestation, y: float) -> float:
        pdf, width, row_h = self.pdf, PAGE_W - 2 * MARGIN, 5.1 * mm
        self.text(MARGIN, y, self.w["levels"], 11, self.bold, NAVY)
        y -= 4 * mm
        for domain in att.domains:
            pdf.setFillColor(NAVY)
            pdf.rect(MARGIN, y - row_h, width, row_h, stroke=0, fill=1)
            title = title_in(domain["code"], domain["title"], self.lang)
            self.text(MARGIN + 2.5 * mm, y - row_h + 1.5 * mm, f"{domain['code']}. {title}",
                      9, self.bold, white)  # fmt: skip
            y -= row_h
            for index, comp in enumerate(domain["competences"]):
                if index % 2:
                    pdf.setFillColor(SHADE)
                    pdf.rect(MARGIN, y - row_h, width, row_h, stroke=0, fill=1)
                name = title_in(comp["code"], comp["title"], self.lang)
                base = y - row_h + 1.5 * mm
                self.text(MARGIN + 2.5 * mm, base, comp["code"], 8.5, self.bold, MUTED)
                self.text(MARGIN + 11 * mm, base, self.fit(name, self.regular, 8.5, 108 * mm), 8.5)
                self.level_bar(
                    MARGIN + 124 * mm, y - row_h + 1.2 * mm, comp["level"], att.max_level
                )
                level = self.w["level_over"].format(level=comp["level"], max=att.max_level)
                self.right(PAGE_W - MARGIN - 2.5 * mm, base, level, 8.5, self.bold)
                y -= row_h
        return y

    def level_bar(self, x: float, y: float, level: int, maximum: int) -> None:
        """`maximum` small squares, `level` of them filled: readable at a glance."""
        pdf, size, gap = self.pdf, 2.7 * mm, 0.9 * mm
        pdf.setLineWidth(0.5)
        pdf.setStrokeColor(NAVY)
        for i in range(maximum):
            pdf.setFillColor(NAVY if i < level else white)
            pdf.rect(x + i * (size + gap), y, size, size, stroke=1, fill=1)

    def proof(self, att: Attestation) -> None:
        """Bottom left: how to check this document; bottom right stays for the signature."""
        x, top = MARGIN, SIGNATURE_BOX[1] + SIGNATURE_BOX[3] + 2 * mm
        width = SIGNATURE_BOX[0] - MARGIN - 4 * mm
        self.text(x, top, self.w["check"], 9.5, self.bold, NAVY)
        self.text(x, top - 4.6 * mm, self.fit(att.verify_url, self.mono, 8, width), 8, self.mono)
        self.text(x, top - 9.2 * mm, self.w["check_how"], 7.5, color=MUTED)
        self.text(x, top - 14 * mm, self.w["proof"].format(seq=att.issued_seq), 7.5, color=MUTED)
        self.text(x, top - 17.8 * mm, att.issued_hash[:32], 7, self.mono, MUTED)
        self.text(x, top - 21.2 * mm, att.issued_hash[32:], 7, self.mono, MUTED)

    def footer(self) -> None:
        self.rule(10 * mm)
        self.pdf.setFillColor(MUTED)
        self.pdf.setFont(self.regular, 7)
        self.pdf.drawCentredString(PAGE_W / 2, 6 * mm, self.w["footer"])


def qr_side(modules: int) -> float:
    """Printed side of a QR code `modules` wide: at least QR_MIN_SIDE and MIN_MODULE_MM each."""
    return max(QR_MIN_SIDE, modules * MIN_MODULE_MM * 1.1 * mm)


def draw_qr(pdf: Canvas, matrix: list[list[bool]], x: float, y: float, side: float) -> None:
    """The QR code as filled squares (quiet zone included), side `side` from (x, y)."""
    module = side / len(matrix)
    pdf.setFillColor(white)
    pdf.rect(x, y, side, side, stroke=0, fill=1)
    pdf.setFillColor(HexColor("#000000"))
    path = pdf.beginPath()
    for r, row in enumerate(matrix):
        for start, length in _dark_runs(row):  # one rectangle per run: a third of the operators
            path.rect(x + start * module, y + side - (r + 1) * module, length * module, module)
    pdf.drawPath(path, stroke=0, fill=1)


def _dark_runs(row: list[bool]) -> list[tuple[int, int]]:
    """(start, length) of each horizontal run of dark modules."""
    runs, start = [], None
    for c, dark in enumerate([*row, False]):
        if dark and start is None:
            start = c
        elif not dark and start is not None:
            runs.append((start, c - start))
            start = None
    return runs
