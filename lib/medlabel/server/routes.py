"""medlabel's own REST routes: model versions and rollback, label history.

Mounted under ``/medlabel`` next to monailabel's endpoints when the server starts (see ``install``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import FileResponse

from medlabel.errors import NotFound
from medlabel.server.guard import check_image_id

if TYPE_CHECKING:
    from medlabel.app import MedlabelApp


def build_router(app: MedlabelApp) -> APIRouter:
    router = APIRouter(prefix="/medlabel", tags=["medlabel"])

    def store(name: str):
        if name not in app.stores:
            raise NotFound(f"unknown model '{name[:80]}'; this app has: {', '.join(sorted(app.stores))}")
        return app.stores[name]

    def history():
        if app.label_history is None:
            raise NotFound("this datastore keeps no label history (local studies folders do)")
        return app.label_history

    @router.get("/models/{name}/versions", summary="Every version of a model: status, metrics, labels, parent")
    def model_versions(name: str):
        s = store(name)
        return {"model": name, "serving": s.serving_version(), "versions": [asdict(r) for r in s.records()]}

    @router.post("/models/{name}/rollback", summary="Serve an earlier version of a model again")
    def rollback(name: str, version: int):
        s = store(name)
        s.rollback(version)
        return model_versions(name)

    @router.get("/labels/{image}/versions", summary="Every submitted label version of an image")
    def label_versions(image: str):
        check_image_id(image)
        return {"image": image, "versions": [asdict(v) for v in history().versions(image)]}

    @router.get("/labels/{image}/versions/{version}", summary="Download one label version")
    def label_version(image: str, version: int):
        check_image_id(image)
        path = history().path(image, version)
        return FileResponse(path, filename=f"{image}_v{version}{path.name[5:]}")

    return router
