"""QR images: render (qrcode) and read back (zxing-cpp), photos and PDF pages included.

Reading tries the picture as it is, then contrast-stretched, binarized and
upscaled copies, so a low-contrast phone photo of a printed attestation still
decodes. PDFs are rendered page 1 at 150 dpi with `pdftoppm` first.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import qrcode
import qrcode.image.svg
import zxingcpp
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 25_000_000
PDF_TIMEOUT_S = 20


class ImageUnreadable(ValueError):
    """Bytes that are not an image or PDF we can read."""


def _qr(text: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=8)
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    _qr(text).make_image().save(out, format="PNG")
    return out.getvalue()


def qr_svg(text: str) -> str:
    image = _qr(text).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return image.to_string(encoding="unicode")


def _open(data: bytes) -> Image.Image:
    if data[:5] == b"%PDF-":
        data = _pdf_first_page(data)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ImageUnreadable("image too large")
        image.load()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise ImageUnreadable("not an image we can read") from exc
    return ImageOps.exif_transpose(image).convert("L")


def _pdf_first_page(data: bytes) -> bytes:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise ImageUnreadable("PDF support needs poppler-utils")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "in.pdf"
        source.write_bytes(data)
        try:
            subprocess.run(
                [tool, "-r", "150", "-png", "-f", "1", "-l", "1", str(source), str(Path(work) / "page")],
                check=True, capture_output=True, timeout=PDF_TIMEOUT_S,
            )  # fmt: skip
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise ImageUnreadable("not a PDF we can read") from exc
        pages = sorted(Path(work).glob("page*.png"))
        if not pages:
            raise ImageUnreadable("the PDF has no page")
        return pages[0].read_bytes()


def _variants(image: Image.Image):
    yield image
    stretched = ImageOps.autocontrast(image, cutoff=2)
    yield stretched
    threshold = sum(stretched.getextrema()) // 2
    yield stretched.point(lambda v: 255 if v > threshold else 0)
    if max(image.size) < 1200:
        yield stretched.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)


def decode_qr(data: bytes) -> list[str]:
    """Texts of the QR codes found in an image or a PDF's first page ([] when none)."""
    image = _open(data)
    for variant in _variants(image):
        found = zxingcpp.read_barcodes(variant, formats=zxingcpp.BarcodeFormat.QRCode)
        texts = [b.text for b in found if b.valid and b.text]
        if texts:
            return texts
    return []
