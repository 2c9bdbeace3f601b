"""QR images: render them (qrcode) and read them back (zxing-cpp), from photos and PDFs too.

People upload phone photos of printed certificates, scans and PDFs. Reading
tries the picture as it is first, then contrast-stretched, denoised, binarized
and upscaled copies, so grey-on-grey, grainy or small codes still decode. A
PDF's first page is rendered with `pdftoppm` (poppler-utils) before reading.
Uploads are untrusted: over 25 megapixels is refused before decoding.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import qrcode
import qrcode.image.svg
import zxingcpp
from PIL import Image, ImageFilter, ImageOps

BORDER_MODULES = 4
BOX_PIXELS = 8
SVG_BOX = 10  # qrcode draws SVG modules box/10 mm wide: 1 mm, whole-number coordinates
MAX_PIXELS = 25_000_000  # beyond this an upload is a decompression bomb, not a photo
PDF_DPI = 150
PDF_MAX_SIDE = 5_000  # pixels: a page rendered at 150 dpi never exceeds MAX_PIXELS
PDF_TIMEOUT_SECONDS = 20
UPSCALE_BELOW = 1_500  # pixels on the long side; bigger images gain nothing from upscaling


class ImageUnreadable(ValueError):
    """Bytes that are not an image (or PDF) this module can open."""


# --- rendering -------------------------------------------------------------


def _qr(text: str, box_size: int = BOX_PIXELS) -> qrcode.QRCode:
    """Error correction M: a smudge or fold on paper is survivable, the code stays small."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M,
        border=BORDER_MODULES,
        box_size=box_size,
    )
    code.add_data(text)
    code.make(fit=True)
    return code


def qr_matrix(text: str) -> list[list[bool]]:
    """The code's modules, quiet zone included (True is dark), for vector drawing in a PDF.

    Encoded by zxing-cpp (same content and error correction as `_qr`): pure-Python
    mask selection costs about 0.1 s for a token URL, which a PDF per download cannot afford.
    """
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    image = code.to_image(scale=1, add_quiet_zones=True)
    rows, cols = image.shape[:2]
    pixels = bytes(memoryview(image))
    return [[pixels[r * cols + c] < 128 for c in range(cols)] for r in range(rows)]


def qr_png(text: str) -> bytes:
    out = io.BytesIO()
    _qr(text).make_image().save(out, format="PNG")
    return out.getvalue()


def qr_svg(text: str) -> str:
    """A standalone SVG document (white background, no external references)."""
    image = _qr(text, SVG_BOX).make_image(image_factory=qrcode.image.svg.SvgPathFillImage)
    return image.to_string(encoding="unicode")


# --- reading ---------------------------------------------------------------


def decode_qr(image_bytes: bytes) -> list[str]:
    """Texts of the QR codes in an image or a PDF's first page; [] when there is none."""
    image = _open(image_bytes)
    for variant in _variants(image):
        found = zxingcpp.read_barcodes(
            variant, formats=zxingcpp.BarcodeFormat.QRCode, text_mode=zxingcpp.TextMode.Plain
        )
        texts = [barcode.text for barcode in found if barcode.valid and barcode.text]
        if texts:
            return list(dict.fromkeys(texts))
    return []


def _open(data: bytes) -> Image.Image:
    """Greyscale image, upright per its EXIF orientation, transparency flattened onto white."""
    if not isinstance(data, bytes | bytearray):
        raise ImageUnreadable("expected the bytes of an image")
    if data[:4] == b"%PDF":
        data = _pdf_first_page(bytes(data))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise ImageUnreadable(f"image over {MAX_PIXELS // 1_000_000} megapixels")
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageUnreadable:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Warning) as exc:
        raise ImageUnreadable("not an image that can be read") from exc
    return _flatten(image).convert("L")


def _flatten(image: Image.Image) -> Image.Image:
    """Transparent pixels count as white paper, not as the black they often hide."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, "white")
        return Image.alpha_composite(paper, rgba)
    return image


def _pdf_first_page(data: bytes) -> bytes:
    """PNG of page 1 at 150 dpi, cropped to PDF_MAX_SIDE so a huge page cannot exhaust memory."""
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise ImageUnreadable("PDF support needs poppler-utils")
    with tempfile.TemporaryDirectory() as work:
        source, stem = Path(work) / "in.pdf", Path(work) / "page"
        source.write_bytes(data)
        first_page = ["-f", "1", "-l", "1"]
        crop = ["-W", str(PDF_MAX_SIDE), "-H", str(PDF_MAX_SIDE)]
        command = [tool, "-r", str(PDF_DPI), "-png", *first_page, *crop, str(source), str(stem)]
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=PDF_TIMEOUT_SECONDS)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageUnreadable("not a PDF that can be read") from exc
        pages = sorted(Path(work).glob("page*.png"))
        if not pages:
            raise ImageUnreadable("the PDF has no page")
        return pages[0].read_bytes()


def _variants(image: Image.Image) -> Iterator[Image.Image]:
    """Cheapest first: most uploads decode as they are; photos may need the later copies."""
    yield image
    stretched = ImageOps.autocontrast(image, cutoff=1)  # grey on grey, dim or washed-out light
    yield stretched
    yield ImageOps.autocontrast(stretched.filter(ImageFilter.GaussianBlur(2)))  # sensor grain
    smooth = stretched.filter(ImageFilter.MedianFilter(3))
    low, high = smooth.getextrema()
    threshold = (low + high) // 2
    yield smooth.point(lambda value: 255 if value > threshold else 0)
    if max(image.size) < UPSCALE_BELOW:  # modules of a few pixels: far or small codes
        yield stretched.resize((image.width * 2, image.height * 2), Image.Resampling.LANCZOS)
