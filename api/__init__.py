"""unlearnd.api: the HTTP API (FastAPI) over the registry, the inbox and the served model.

`create_app(settings)` builds the app; `unlearnd api` serves it with uvicorn.
"""

from unlearnd.api.app import create_app

__all__ = ["create_app"]
