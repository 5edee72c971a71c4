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
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from unlearnd.api.auth import _bearer, require_token
from unlearnd.api.errors import ApiError
from unlearnd.api.routes_model import _served, checked_image, decode_base64_image
from unlearnd.api.state import state, store
from unlearnd.registry import RegistryStore

router = APIRouter(tags=["openai"])


class ImageUrl(BaseModel):
    url: str = Field(max_length=50_000_000)
    detail: str | None = None


class Part(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Part] | None = None


class ChatBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI's other options: accepted, unused
    model: str = Field(min_length=1, max_length=200, description="A version id or an alias.")
    messages: list[Message] = Field(min_length=1, max_length=1000)
    max_tokens: int | None = Field(None, ge=1, le=512)
    max_completion_tokens: int | None = Field(None, ge=1, le=512)
    stream: bool = False
    n: int = Field(1, ge=1)


def _version(st: RegistryStore, model: str) -> int:
    if model.isdigit():
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
    users = [m for m in body.messages if m.role == "user"]
    if not users:
        raise ApiError(422, "messages: no user message to answer")
    content = users[-1].content
    if isinstance(content, str) or content is None:
        return content or "", None
    texts = [p.text or "" for p in content if p.type == "text"]
    images = [p.image_url for p in content if p.type == "image_url"]
    if len(images) > 1:
        raise ApiError(422, "messages: the served model takes at most one image per question")
    if images and images[0] is None:
        raise ApiError(422, "messages: an image_url part needs image_url.url")
    image = _image(images[0].url, request, creds) if images else None
    return " ".join(t.strip() for t in texts if t.strip()), image


@router.post("/v1/chat/completions", summary="OpenAI chat completion through the gate")
def chat_completions(
    body: ChatBody,
    request: Request,
    st: RegistryStore = Depends(store),
    creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> dict[str, Any]:
    from unlearnd.models import UnsupportedOperation

    if body.stream:
        raise ApiError(400, "stream: streaming is not supported; send stream=false")
    if body.n != 1:
        raise ApiError(400, "n: one choice per request")
    prompt, image = _prompt(body, request, creds)
    if not prompt:
        raise ApiError(422, "messages: the last user message has no text")
    budget = body.max_completion_tokens or body.max_tokens or 32
    chosen, (served, lock) = _served(request, st, _version(st, body.model))
    with lock:
        try:
            answer = served.answer(prompt, image, max_new_tokens=budget)
        except UnsupportedOperation as e:
            raise ApiError(400, f"{e}; use /classify") from None
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
