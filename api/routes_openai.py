"""The OpenAI chat API over a version, for the clients a platform already runs.

`POST /v1/chat/completions` with `model` = a version id or an alias (`live`), `messages` in
OpenAI's form (content a string or parts: `{"type": "text"}`, `{"type": "image_url"}` with a
`data:` URI, or a local file path for a caller with the API token), answered through the
expert switch like `/generate`. The served families answer one question about at most one
image, so the prompt is the last user message (its text parts joined, its image); system
and earlier messages are not sent to the model. Decoding is greedy: `temperature`, `top_p`
and `seed` are accepted and have no effect; `stream` and `n` > 1 are refused.
`GET /v1/models` lists the aliases and the newest committed versions.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, field_validator

from unlearnd.api.auth import _bearer, require_token
from unlearnd.api.errors import ApiError
from unlearnd.api.openapi import errors
from unlearnd.api.routes_model import _served, checked_image, decode_base64_image
from unlearnd.api.schemas import DB_INT_MAX, JsonInt, NonBlank
from unlearnd.api.state import state, store
from unlearnd.registry import RegistryStore

router = APIRouter(tags=["openai"])


# The image formats the fuzzer is taught to fill (tests/fuzz_hooks.py): JSON Schema cannot
# say "the bytes of an image", so the format names it.
IMAGE_URL = {
    "format": "image-url",
    "description": "A data: URI (base64) of an image, or an absolute local path (token holders).",
}
TEXT_PART = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "text": {"type": "string", "pattern": r"\S"}},
    "required": ["type", "text"],
}
IMAGE_PART = {"type": "object", "properties": {"type": {"const": "image_url"}}}


class ImageUrl(BaseModel):
    url: str = Field(max_length=50_000_000, json_schema_extra=IMAGE_URL)
    detail: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["image_url"]
    image_url: ImageUrl


Part = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "assistant", "tool"]
    content: str | list[Part] | None = None


class UserMessage(BaseModel):
    """The question: some text, and at most one image (the served models take one)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["user"]
    content: (
        NonBlank
        | Annotated[
            list[Part],
            Field(
                json_schema_extra={
                    "allOf": [
                        {"contains": TEXT_PART},
                        {"contains": IMAGE_PART, "minContains": 0, "maxContains": 1},
                    ]
                }
            ),  # fmt: skip
        ]
    ) = Field(description="Text, or parts: at least one with text, at most one image.")

    @field_validator("content")
    @classmethod
    def _has_text(cls, content: str | list[TextPart | ImagePart]):
        if isinstance(content, str):  # NonBlank
            return content
        if not any(isinstance(p, TextPart) and p.text.strip() for p in content):
            raise ValueError("the question has no text")
        if sum(isinstance(p, ImagePart) for p in content) > 1:
            raise ValueError("the served model takes at most one image per question")
        return content


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's other options: accepted, unused
    model: str = Field(min_length=1, max_length=200, description="A version id or an alias.")
    messages: list[Annotated[UserMessage | Message, Field(discriminator="role")]] = Field(
        min_length=1,
        max_length=1000,
        json_schema_extra={"contains": {"properties": {"role": {"const": "user"}}}},
        description="At least one user message: the last one is the question.",
    )
    max_tokens: Annotated[int, JsonInt] | None = Field(None, ge=1, le=512)
    max_completion_tokens: Annotated[int, JsonInt] | None = Field(None, ge=1, le=512)
    stream: Literal[False] = Field(False, description="Streaming is not supported.")
    n: Annotated[int, JsonInt] = Field(1, ge=1, le=1, description="One choice per request.")

    @field_validator("messages")
    @classmethod
    def _has_a_question(cls, messages: list[UserMessage | Message]):
        if not any(isinstance(m, UserMessage) for m in messages):
            raise ValueError("no user message to answer")
        return messages


def _version(st: RegistryStore, model: str) -> int:
    if model.isascii() and model.isdigit() and int(model) <= DB_INT_MAX:
        return int(model)
    chosen = st.get_alias(model)
    if chosen is None:
        raise ApiError(404, f"model {model!r}: no such alias or version id (GET /v1/models)")
    return chosen


def _image(url: str, request: Request, creds: HTTPAuthorizationCredentials | None):
    """The image of an `image_url` part: a data URI, or a local file (token holders only:
    an open read must not open files on the server)."""
    limits = state(request).settings.limits
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise ApiError(422, "image_url: a data URI must be base64 (data:image/png;base64,...)")
        return decode_base64_image(payload, limits, "image_url")
    if url.startswith(("http://", "https://")):
        raise ApiError(422, "image_url: remote URLs are not fetched; send a data: URI")
    require_token(request, creds)
    path = Path(url.removeprefix("file://"))
    if not path.is_absolute():
        raise ApiError(422, f"image_url: a local path must be absolute, not {url!r}")
    try:
        if path.stat().st_size > limits.max_image_bytes:
            raise ApiError(413, f"image_url: {path} is larger than {limits.max_image_bytes} bytes")
        data = path.read_bytes()
    except OSError as e:
        raise ApiError(422, f"image_url: cannot read {path}: {e.strerror}") from None
    return checked_image(data, limits, "image_url")


def _prompt(body: ChatBody, request: Request, creds) -> tuple[str, Any]:
    content = [m for m in body.messages if isinstance(m, UserMessage)][-1].content
    if isinstance(content, str):
        return content.strip(), None
    texts = [p.text.strip() for p in content if isinstance(p, TextPart)]
    images = [p.image_url.url for p in content if isinstance(p, ImagePart)]
    image = _image(images[0], request, creds) if images else None
    return " ".join(t for t in texts if t), image


@router.post(
    "/v1/chat/completions",
    summary="OpenAI chat completion through the gate",
    responses=errors(401, 403, 404, 409, 413),
)
def chat_completions(
    body: ChatBody,
    request: Request,
    st: RegistryStore = Depends(store),
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> dict[str, Any]:
    from unlearnd.models import UnsupportedOperation

    prompt, image = _prompt(body, request, creds)
    budget = body.max_completion_tokens or body.max_tokens or 32
    chosen, (served, lock) = _served(request, st, _version(st, body.model))
    with lock:
        try:
            answer = served.answer(prompt, image, max_new_tokens=budget)
        except UnsupportedOperation as e:
            raise ApiError(409, f"{e}; use /classify") from None
        tokenizer = served.fam.tokenizer
        prompt_tokens = len(tokenizer(prompt).input_ids)
        completion_tokens = len(tokenizer(answer.text, add_special_tokens=False).input_ids)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(chosen),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.text},
            "finish_reason": "length" if completion_tokens >= budget else "stop",
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
        "unlearnd": {"version": chosen, "routing": answer.routing},
    }  # fmt: skip


@router.get("/v1/models", summary="The aliases and the newest committed versions")
def list_models(st: RegistryStore = Depends(store)) -> dict[str, Any]:
    aliases = [{"id": name, "object": "model", "owned_by": "unlearnd", "version": version}
               for name, version in st.list_aliases().items()]  # fmt: skip
    versions = [{"id": str(v.id), "object": "model", "owned_by": "unlearnd", "version": v.id,
                 "created": int(v.created_at.timestamp())}
                for v in st.list_versions(limit=50) if v.status == "committed"]  # fmt: skip
    return {"object": "list", "data": [*aliases, *versions]}
