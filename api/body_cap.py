"""A size cap on the bodies of the answering routes (`/generate`, `/classify`, the chat API),
which take a base64 image in JSON: without it a client could make the server buffer any size.
A body is read up to the cap before the route sees it; one over it is a 413 (`[api]
max_body_bytes`). `POST /requests` counts its own against `[limits] max_bundle_bytes`."""

from __future__ import annotations

from typing import Any

from unlearnd.api.errors import error_response

CAPPED = ("/generate", "/classify", "/v1/chat/completions")


class BodyCap:
    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in CAPPED:
            await self.app(scope, receive, send)
            return
        too_large = error_response(413, f"the body is larger than the limit of {self.limit} "
                                   "bytes ([api] max_body_bytes)")  # fmt: skip
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:  # refused before reading it
            await too_large(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:  # a chunked body is counted as it arrives
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()  # waits for the disconnect, as the server would
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
