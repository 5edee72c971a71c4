"""`GET /versions/{id}/export?format=peft|merged`: a version as a .tar.gz of the folder
`unlearnd export` writes (serving/export.py). Weights leave the registry here, so unlike the
other reads it needs the API token."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from unlearnd.api.auth import WRITE
from unlearnd.api.errors import ApiError
from unlearnd.api.openapi import errors
from unlearnd.api.schemas import Id
from unlearnd.api.state import state, store
from unlearnd.registry import RegistryStore

router = APIRouter(tags=["registry"])


def _export(request: Request, st: RegistryStore, version_id: int, fmt: str, tmp: Path) -> Path:
    from unlearnd.serving import Deployment
    from unlearnd.serving.export import ExportError, export_version

    models = state(request).models
    if models.deployment is None:  # shared with answering: the base is read once
        models.deployment = Deployment(state(request).settings)
    name = f"v{version_id}-{fmt}"
    try:
        export_version(models.deployment, st, version_id, tmp / name, fmt)
    except ExportError as e:
        raise ApiError(409, str(e)) from None
    archive = tmp / f"{name}.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp / name, arcname=name)
    return archive


@router.get(
    "/versions/{version_id}/export",
    dependencies=WRITE,
    summary="A version as a PEFT folder or a merged model, in a .tar.gz",
    response_class=FileResponse,
    responses={200: {"content": {"application/gzip": {}}}, **errors(404, 409)},
)
async def export(
    version_id: Id,
    request: Request,
    format: Literal["peft", "merged"] = Query("peft"),  # noqa: A002 - the CLI's --format
    st: RegistryStore = Depends(store),
) -> FileResponse:
    st.get_version(version_id)  # 404 before any work
    tmp = Path(tempfile.mkdtemp(prefix="unlearnd-export-"))
    try:
        archive = await run_in_threadpool(_export, request, st, version_id, format, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cleanup = BackgroundTask(shutil.rmtree, tmp, ignore_errors=True)  # after the last byte
    return FileResponse(
        archive, media_type="application/gzip", filename=archive.name, background=cleanup
    )
