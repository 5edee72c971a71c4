"""Untrusted image bytes (a request's, a query's): checked against the limits before any pixel
is decoded for use, so a decompression bomb or a truncated file is refused, not loaded."""

from __future__ import annotations

import io

from PIL import Image

from unlearnd.config import LimitSettings

IMAGE_FORMATS = ["PNG", "JPEG", "WEBP", "GIF", "BMP"]


class ImageRejected(ValueError):
    """The bytes are not an image within the limits; the message says why."""


def verify_image(data: bytes, limits: LimitSettings) -> str | None:
    """None if `data` is a decodable image within limits, else what is wrong with it."""
    if len(data) > limits.max_image_bytes:
        return f"larger than the limit of {limits.max_image_bytes} bytes"
    try:
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            width, height = im.size
            if width * height > limits.max_image_pixels:
                return f"{width}x{height} pixels is over the limit of {limits.max_image_pixels}"
            im.verify()
        with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
            im.load()  # verify() does not decode pixel data; a truncated image fails here
    except Exception as e:  # noqa: BLE001 - PIL raises many types for hostile input
        return f"not a readable image ({type(e).__name__}: {e})"
    return None


def decode_image(data: bytes, limits: LimitSettings) -> Image.Image:
    """The image as RGB, or ImageRejected saying what is wrong with the bytes."""
    problem = verify_image(data, limits)
    if problem is not None:
        raise ImageRejected(problem)
    with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
        return im.convert("RGB")
