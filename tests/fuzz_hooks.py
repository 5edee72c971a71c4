"""Schemathesis hooks for fuzzing `unlearnd api` (tests/test_api_fuzz.py, docs/api.md).

The API's image fields hold the bytes of an image, which JSON Schema cannot describe: the
schema names them by a format (api/schemas.py, api/routes_openai.py) and this module teaches
the fuzzer to fill it with real, small images, so schema-valid requests are accepted."""

from __future__ import annotations

import base64
import io

import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _png(size: tuple[int, int], rgb: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, rgb).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


_sizes = st.tuples(st.integers(1, 64), st.integers(1, 64))
_colours = st.tuples(*[st.integers(0, 255)] * 3)
images = st.builds(_png, _sizes, _colours)

schemathesis.openapi.format("image-base64", images)
schemathesis.openapi.format("image-url", images.map(lambda b64: f"data:image/png;base64,{b64}"))
