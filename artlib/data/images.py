"""Opening paintings safely: every mode to RGB, EXIF orientation, huge JPEGs via draft mode.

WikiArt holds grayscale, CMYK, palette and 16-bit files and some images beyond Pillow's
decompression-bomb limit. The guard stays on: a huge JPEG is decoded at a reduced scale
(JPEG DCT scaling via ``draft``) so that the pixels actually decoded stay under the limit;
anything that would still exceed it is refused as unreadable.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

RESIZE_POLICY = "shorter-side-then-center-crop/bilinear-antialias/v1"
"""How a painting becomes a square input; part of every cache key."""

# Errors Pillow raises for files that are not (complete) images.
_DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError, EOFError,
                  Image.DecompressionBombError, MemoryError, IndexError, TypeError, KeyError)


class ImageLoadError(Exception):
    """An image file cannot be read; ``reason`` is 'missing_image' or 'unreadable_image'."""

    def __init__(self, path: str | os.PathLike[str], reason: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.path, self.reason, self.detail = str(path), reason, detail

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        """Rebuilt from its three fields (pickled out of a worker process, e.g. a decoding pool's)."""
        return type(self), (self.path, self.reason, self.detail)


def _pixel_limit() -> int | None:
    """Pillow's current decompression-bomb error threshold (pixels), or None if disabled."""
    return None if Image.MAX_IMAGE_PIXELS is None else 2 * Image.MAX_IMAGE_PIXELS


def _is_jpeg(path: Path) -> bool:
    """True when the file starts with the JPEG SOI marker."""
    with open(path, "rb") as fh:
        return fh.read(3) == b"\xff\xd8\xff"


def _draft_scale(w: int, h: int, min_size: int | None, limit: int | None) -> int:
    """The JPEG reduction (1, 2, 4 or 8) to decode at: as small as ``min_size`` allows, within the pixel limit."""
    scales = (1, 2, 4, 8)
    allowed = max((s for s in scales if min_size is not None and min(w, h) // s >= min_size), default=1)
    if limit is None:
        return allowed
    needed = next((s for s in scales if -(-w // s) * -(-h // s) <= limit), None)
    if needed is None:
        raise Image.DecompressionBombError(f"{w}x{h} pixels is too large even at 1/8 scale (limit {limit} pixels)")
    return max(allowed, needed)


def open_image(path: str | os.PathLike[str], min_size: int | None = None) -> Image.Image:
    """Open an image lazily; JPEGs get a draft scale so decoding stays small and within the bomb limit.

    ``min_size``: the shorter side the caller needs; JPEG decoding is reduced (1/2…1/8) as far as
    this allows. Raises :class:`ImageLoadError` for missing or unreadable files.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError(path, "missing_image", "file not found") from None
    except OSError as exc:
        raise ImageLoadError(path, "unreadable_image", f"cannot stat: {exc}") from None
    if size == 0:
        raise ImageLoadError(path, "unreadable_image", "zero bytes")
    try:
        if _is_jpeg(path):
            # Construct the JPEG reader directly: Image.open would refuse a huge file before we
            # can ask for a reduced decode. The limit is then enforced on the decoded size below.
            im: Image.Image = JpegImagePlugin.JpegImageFile(path)
            w, h = im.size
            im.info["artlib_full_size"] = (w, h)
            scale = _draft_scale(w, h, min_size, _pixel_limit())
            if scale > 1:
                im.draft("RGB", (max(1, w // scale), max(1, h // scale)))  # Pillow honours one draft() call only
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(path)
        return im
    except ImageLoadError:
        raise
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(path, "unreadable_image", f"{type(exc).__name__}: {exc}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB: EXIF orientation applied, alpha over white, 16-bit scaled."""
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)  # animated GIF/PNG/WebP: the first frame
    im = ImageOps.exif_transpose(im) or im
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if (mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P":
        im = im.convert("RGBA") if "transparency" in im.info else im.convert("RGB")
        mode = im.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode != "RGB":
        return im.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return im


def load_rgb(path: str | os.PathLike[str], min_size: int | None = None) -> Image.Image:
    """Fully decode an image as RGB (reduced by draft mode to about ``min_size`` for JPEGs)."""
    im = open_image(path, min_size)
    try:
        im.load()
        return to_rgb(im)
    except _DECODE_ERRORS as exc:
        raise ImageLoadError(path, "unreadable_image", f"{type(exc).__name__}: {exc}") from None
    finally:
        im.close()


def square_resize(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` and center-crop to ``size``×``size`` (bilinear, antialiased)."""
    w, h = im.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=None)
    left, top = (nw - size) // 2, (nh - size) // 2
    return im.crop((left, top, left + size, top + size))


def load_square(path: str | os.PathLike[str], size: int, draft: bool = True) -> np.ndarray:
    """A painting as a ``size``×``size``×3 uint8 array (the model's input before normalisation)."""
    im = load_rgb(path, min_size=size if draft else None)
    return np.array(square_resize(im, size), dtype=np.uint8)  # a writable copy (torch wants one)


@dataclass(frozen=True)
class ImageCheck:
    """Result of checking one file: None reason means usable; phash is computed while the file is open anyway."""

    reason: str | None
    detail: str
    width: int
    height: int
    phash: str = ""


def check_image(path: str | os.PathLike[str]) -> ImageCheck:
    """Check that a file decodes completely (truncation included), cheaply via JPEG draft mode, and hash it.

    The phash (``imagehash.phash``) is computed from the decoded image — at JPEG draft scale, at least
    64 px on the shorter side, far above the 32×32 phash works on.
    """
    from artlib.data.phash import image_phash

    try:
        im = open_image(path, min_size=64)
        try:
            w, h = im.info.get("artlib_full_size", im.size)
            im.load()
            digest = image_phash(to_rgb(im))
        finally:
            im.close()
    except ImageLoadError as exc:
        return ImageCheck(exc.reason, exc.detail, 0, 0)
    except _DECODE_ERRORS as exc:
        return ImageCheck("unreadable_image", f"{type(exc).__name__}: {exc}", 0, 0)
    return ImageCheck(None, "", int(w), int(h), digest)
