"""QR images: rendered codes read back exactly from photos, scans and PDFs people upload."""

from __future__ import annotations

import io
import os
import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

from ledger import crypto
from ledger.domain.certificate import valid_until
from ledger.domain.referential import COMPETENCE_CODES
from ledger.qr_image import ImageUnreadable, decode_qr, qr_png, qr_svg
from ledger.qr_token import CertificateClaims, qr_url, sign_token

KEY = crypto.SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))  # same QR every run
SVG_NS = "{http://www.w3.org/2000/svg}"


def certificate_url() -> str:
    """The URL a real certificate prints: long French names, every competence certified."""
    issued_on = date(2026, 6, 30)
    row = {
        "code": "P-3K7QX9BD",
        "competences": [
            {"code": code, "level": 1 + i % 6} for i, code in enumerate(COMPETENCE_CODES)
        ],
        "issued_on": issued_on.isoformat(),
        "valid_until": valid_until(issued_on).isoformat(),
        "pix_score": 688,
        "max_level": 6,
    }
    holder = {
        "first_name": "Marie-Hélène Françoise Éléonore",
        "last_name": "Lefèvre-Ducroquet de Saint-Exupéry",
        "birth_date": "1987-02-28",
    }
    claims = CertificateClaims.from_certificate(row, holder, crypto.sha256_hex(b"issued"))
    return qr_url("https://certification.numerique.gouv.fr", claims.code, sign_token(claims, KEY))


URL = certificate_url()


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


@pytest.fixture(scope="module")
def code_image() -> Image.Image:
    return Image.open(io.BytesIO(qr_png(URL))).convert("L")


# --- rendering ---------------------------------------------------------------


def test_png_decodes_to_the_exact_text() -> None:
    png = qr_png(URL)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode_qr(png) == [URL]


def test_png_has_a_quiet_zone_of_four_modules(code_image: Image.Image) -> None:
    first_dark = next(x for x in range(code_image.width) if code_image.getpixel((x, x)) < 128)
    module = first_dark // 4
    assert module >= 4
    finder = [code_image.getpixel((first_dark + i, first_dark)) < 128 for i in range(7 * module)]
    assert all(finder)  # the 7-module finder pattern starts right after the quiet zone


def rasterize_svg(svg: str, scale: int = 6) -> Image.Image:
    """Draw the SVG's module squares with Pillow, a renderer independent of the module."""
    root = ET.fromstring(svg)
    _, _, width, height = (int(float(v)) for v in root.attrib["viewBox"].split())
    image = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(image)
    (path,) = root.iter(f"{SVG_NS}path")
    for x, y, x2, y2 in re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)", path.attrib["d"]):
        box = (int(x) * scale, int(y) * scale, int(x2) * scale - 1, int(y2) * scale - 1)
        draw.rectangle(box, fill=0)
    return image


def test_svg_is_a_standalone_document_that_decodes_to_the_exact_text() -> None:
    svg = qr_svg(URL)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG_NS}svg"
    for element in root.iter():
        assert not any("href" in name for name in element.attrib)
        assert element.tag in (f"{SVG_NS}svg", f"{SVG_NS}rect", f"{SVG_NS}path")
    assert "url(" not in svg and "<image" not in svg and "<script" not in svg
    _, _, width, _ = root.attrib["viewBox"].split()
    modules = Image.open(io.BytesIO(qr_png(URL))).width // 8
    assert int(float(width)) == modules
    assert decode_qr(png_bytes(rasterize_svg(svg))) == [URL]


# --- photographed, scanned, re-encoded ---------------------------------------


def grey_on_grey(dark: int, light: int) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.point(lambda v: dark if v < 128 else light)


low_contrast = grey_on_grey(110, 150)


def grain(image: Image.Image, amplitude: int, seed: int = 3) -> Image.Image:
    """Sensor noise: every pixel off by up to ±amplitude, the same on every run."""
    rng = random.Random(seed)
    noise = Image.frombytes("L", image.size, rng.randbytes(image.width * image.height))
    noise = noise.point(lambda v: 128 - amplitude + v * 2 * amplitude // 255)
    return ImageChops.add(image, noise, offset=-128)


def uneven_light(image: Image.Image) -> Image.Image:
    """Grey on grey, one side in shadow, out of focus."""
    light = (
        Image.linear_gradient("L").resize(image.size).rotate(90).point(lambda v: 100 + v * 3 // 5)
    )
    return ImageChops.multiply(low_contrast(image), light).filter(ImageFilter.GaussianBlur(2))


def noisy_page(image: Image.Image) -> Image.Image:
    """An A4 page at 150 dpi: speckled paper, lines of text, the code in a corner."""
    rng = random.Random(7)
    page = grain(Image.new("L", (1240, 1754), 230), 25)
    draw = ImageDraw.Draw(page)
    for line in range(40):
        y = 120 + line * 30
        for _ in range(12):
            x = rng.randint(80, 1100)
            draw.rectangle((x, y, x + rng.randint(20, 90), y + 12), fill=rng.randint(20, 90))
    page.paste(image.resize((420, 420)), (760, 1280))
    return page


def photo(image: Image.Image) -> Image.Image:
    """All at once: tilted, grey on grey, slightly out of focus, shrunk."""
    tilted = low_contrast(image).rotate(17, expand=True, fillcolor=150, resample=Image.BICUBIC)
    blurred = tilted.filter(ImageFilter.GaussianBlur(1.2))
    return blurred.resize((blurred.width * 3 // 4, blurred.height * 3 // 4), Image.LANCZOS)


def scale(factor: float) -> Callable[[Image.Image], Image.Image]:
    def resize(image: Image.Image) -> Image.Image:
        size = (round(image.width * factor), round(image.height * factor))
        return image.resize(size, Image.LANCZOS)

    return resize


VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "rotated-90": lambda image: image.rotate(90, expand=True),
    "rotated-17": lambda image: image.rotate(
        17, expand=True, fillcolor=255, resample=Image.BICUBIC
    ),
    "scaled-60%": scale(0.6),
    "scaled-250%": scale(2.5),
    "grey-110-on-150": low_contrast,
    "slight-blur": lambda image: image.filter(ImageFilter.GaussianBlur(1.5)),
    "on-a-noisy-page": noisy_page,
    "photo": photo,
    "inverted": ImageOps.invert,
    # harder than most uploads: each needs one of the prepared copies
    "faint-125-on-135": grey_on_grey(125, 135),
    "uneven-light": uneven_light,
    "grainy-grey-on-grey": lambda image: grain(grey_on_grey(120, 145)(image), 35),
    "far-and-grainy": lambda image: grain(scale(0.4)(grey_on_grey(120, 145)(image)), 15),
    "far-away-20%": scale(0.2),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_distorted_copy_decodes_to_the_exact_text(code_image: Image.Image, variant: str) -> None:
    assert decode_qr(png_bytes(VARIANTS[variant](code_image))) == [URL]


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "GIF", "BMP", "TIFF"])
def test_other_image_formats_decode(code_image: Image.Image, fmt: str) -> None:
    assert decode_qr(png_bytes(photo(code_image).convert("RGB"), fmt)) == [URL]


def test_a_transparent_background_counts_as_paper(code_image: Image.Image) -> None:
    dark = Image.new("RGBA", code_image.size, (0, 0, 0, 255))
    transparent = Image.new("RGBA", code_image.size, (0, 0, 0, 0))
    transparent.paste(dark, mask=ImageOps.invert(code_image))
    assert decode_qr(png_bytes(transparent)) == [URL]


def test_exif_orientation_is_honoured(code_image: Image.Image) -> None:
    sideways = code_image.rotate(90, expand=True).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    out = io.BytesIO()
    sideways.save(out, format="JPEG", exif=exif)
    assert decode_qr(out.getvalue()) == [URL]


def test_two_codes_on_one_page_are_both_found(code_image: Image.Image) -> None:
    other = Image.open(io.BytesIO(qr_png("https://example.org/hello"))).convert("L")
    page = Image.new("L", (code_image.width + other.width + 40, code_image.height), 255)
    page.paste(code_image, (0, 0))
    page.paste(other, (code_image.width + 40, 0))
    assert sorted(decode_qr(png_bytes(page))) == sorted([URL, "https://example.org/hello"])


# --- nothing to read, or not an image ----------------------------------------


def test_an_image_without_a_qr_code_gives_nothing(code_image: Image.Image) -> None:
    blank = Image.new("L", code_image.size, 255)
    assert decode_qr(png_bytes(noisy_page(blank))) == []
    assert decode_qr(png_bytes(Image.new("RGB", (640, 480), (200, 180, 150)), "JPEG")) == []


@pytest.mark.parametrize(
    "data",
    [os.urandom(4096), b"", b"hello, this is text", qr_png(URL)[:200], b"\x89PNG\r\n\x1a\n"],
    ids=["random", "empty", "text", "truncated-png", "png-signature-only"],
)
def test_bytes_that_are_not_an_image_are_unreadable(data: bytes) -> None:
    with pytest.raises(ImageUnreadable):
        decode_qr(data)


def test_a_decompression_bomb_is_refused() -> None:
    bomb = png_bytes(Image.new("1", (6000, 5000), 1))  # 30 megapixels in a few kilobytes
    assert len(bomb) < 100_000
    with pytest.raises(ImageUnreadable, match="megapixels"):
        decode_qr(bomb)


# --- PDF -------------------------------------------------------------------------


def test_the_first_page_of_a_pdf_decodes(code_image: Image.Image) -> None:
    page = Image.new("L", (1240, 1754), 255)
    page.paste(code_image.resize((500, 500)), (370, 900))
    second = Image.new("L", (1240, 1754), 255)
    out = io.BytesIO()
    page.save(out, "PDF", resolution=150, save_all=True, append_images=[second])
    pdf = out.getvalue()
    assert pdf.startswith(b"%PDF")
    assert decode_qr(pdf) == [URL]  # needs pdftoppm on PATH: fails, not skips, without it


def test_a_broken_pdf_is_unreadable() -> None:
    with pytest.raises(ImageUnreadable):
        decode_qr(b"%PDF-1.7\n" + os.urandom(2048))


def test_without_poppler_a_pdf_is_refused_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no pdftoppm to be found
    page = io.BytesIO()
    Image.new("L", (200, 200), 255).save(page, "PDF")
    with pytest.raises(ImageUnreadable, match="poppler-utils"):
        decode_qr(page.getvalue())
