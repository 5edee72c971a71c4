"""Ask the served model as of a version (default: live): generate, or classify with CLIP.

Open like the other reads: answering changes nothing. Each version is loaded once per
process (state.ModelCache) and answers one query at a time.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Depends, Request

from unlearnd.api.errors import ApiError
from unlearnd.api.openapi import errors
from unlearnd.api.schemas import ClassifyBody, GenerateBody
from unlearnd.api.state import state, store
from unlearnd.registry import RegistryStore

router = APIRouter(tags=["model"])


def decode_base64_image(encoded: str | None, limits, field: str = "image") -> Any:
    """A PIL image from base64 bytes, checked like a request's images (size, pixels, decode);
    a 422 naming `field` otherwise."""
    if encoded is None:
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, f"{field}: not valid base64") from None
    return checked_image(data, limits, field)


def checked_image(data: bytes, limits, field: str = "image") -> Any:
    from unlearnd.serving.images import ImageRejected, decode_image

    try:
        return decode_image(data, limits)
    except ImageRejected as e:
        raise ApiError(422, f"{field}: {e}") from None


def _served(request: Request, st, version: int | None):
    chosen = version if version is not None else st.get_alias("live")
    if chosen is None and version is None:
        raise ApiError(409, "the alias 'live' is not set yet: no version to answer with")
    from unlearnd.models import ModelLoadError
    from unlearnd.serving import DeploymentError

    try:
        return chosen, state(request).models.get(st, chosen)
    except (DeploymentError, ModelLoadError) as e:  # the operator's problem, not the caller's
        raise ApiError(503, f"the served model cannot be loaded: {e}") from None


@router.post(
    "/generate",
    summary="Answer a question (about an image) through the gate",
    responses=errors(404, 409),
)
def generate(
    body: GenerateBody, request: Request, st: RegistryStore = Depends(store)
) -> dict[str, Any]:
    from unlearnd.models import UnsupportedOperation

    image = decode_base64_image(body.image, state(request).settings.limits)
    _, (served, lock) = _served(request, st, body.version)
    with lock:
        try:
            answer = served.answer(body.prompt, image, max_new_tokens=body.max_new_tokens)
        except UnsupportedOperation as e:  # a CLIP deployment: no text generation
            raise ApiError(409, f"{e}; use /classify") from None
    return answer.to_dict()


@router.post(
    "/classify",
    summary="Zero-shot class probabilities (CLIP deployments only)",
    responses=errors(404, 409),
)
def classify(
    body: ClassifyBody, request: Request, st: RegistryStore = Depends(store)
) -> dict[str, Any]:
    from unlearnd.models import UnsupportedOperation

    image = decode_base64_image(body.image, state(request).settings.limits)
    chosen, (served, lock) = _served(request, st, body.version)
    try:
        served.check_classifies()
    except UnsupportedOperation as e:
        raise ApiError(409, f"{e} (use /generate)") from None
    with lock:
        (probs,) = served.classify([image], body.labels, template=body.template).tolist()
    best = max(range(len(probs)), key=probs.__getitem__)
    # A list, not a mapping: the same label twice must not lose a probability.
    scored = [{"label": lbl, "p": p} for lbl, p in zip(body.labels, probs, strict=True)]
    return {"version": chosen, "label": body.labels[best], "probabilities": scored}
