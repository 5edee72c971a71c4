"""Writes need `Authorization: Bearer <api.token>`; with no token configured they are refused.

Reads are open: the registry's contents are the audit trail, meant to be looked at.
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from unlearnd.api.errors import ApiError

# auto_error=False: our own 401/403 bodies; the scheme still shows in the OpenAPI schema.
_bearer = HTTPBearer(auto_error=False, description="The `[api] token` of the config.")


def require_token(
    request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    token = request.app.state.api.settings.api.token
    if not token:
        raise ApiError(403, "writes are disabled: no api.token is configured (UNLEARND_API__TOKEN)")
    if creds is None:
        raise ApiError(
            401,
            "this operation needs a bearer token: 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    # Constant-time comparison: the token must not leak through response timing.
    if not hmac.compare_digest(creds.credentials.encode(), token.encode()):
        raise ApiError(403, "wrong token")


WRITE = [Depends(require_token)]
