"""Checks every client request's ids and size before monailabel's endpoints see it.

The stock endpoints answer an unknown model or strategy with HTTP 500, treat an image id that happens to
be an existing server path as that path, and accept uploads of any size. This ASGI layer sits inside
Starlette's exception middleware (installed on the router at start-up, see ``install``), so its
``MedlabelError``s become 4xx responses with a message, and the endpoints only ever see valid input.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

from medlabel.errors import BadRequest, Conflict, NotFound, PayloadTooLarge

logger = logging.getLogger(__name__)

ID_PATTERN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
ID_PARAMS = ("image", "label", "id")


def check_image_id(value: str, what: str = "image id") -> str:
    """An id that names a datastore entry and can never name a path (no separators, no '..')."""
    if not ID_PATTERN.fullmatch(value) or ".." in value:
        raise BadRequest(
            f"{what} '{value[:80]}' is not allowed: use letters, digits, '.', '_' and '-' only "
            "(no path separators or '..')"
        )
    return value


@dataclass
class Catalogue:
    """What the guard checks names against; callables so it always sees the app's current state."""

    models: Callable[[], set[str]]
    trainers: Callable[[], set[str]]
    strategies: Callable[[], set[str]]
    scoring: Callable[[], set[str]]
    image_exists: Callable[[str], bool | None] = field(default=lambda _id: None)
    max_upload_bytes: int = 1 << 30
    queued_training: Callable[[], dict | None] = field(default=lambda: None)  # the training waiting to run
    final_labels: Callable[[], int | None] = field(default=lambda: None)  # how many images have a final label
    label_free_trainers: Callable[[], set[str]] = field(default=set)  # trainers that learn from the images alone


class RequestGuard:
    """ASGI middleware: validates path names, id parameters and body size, then calls the endpoints."""

    def __init__(self, app, catalogue: Catalogue):
        self.app = app
        self.catalogue = catalogue

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self._check_names(scope["method"], scope["path"].rstrip("/"))
        self._check_ids(scope["method"], scope["path"], parse_qs(scope.get("query_string", b"").decode(errors="replace")))
        if scope["method"] == "POST" and scope["path"].rstrip("/").startswith("/train"):
            self._check_trainable(scope["path"])
            queued = self.catalogue.queued_training()
            if queued is not None:
                detail = "a training is already queued; it will start when the running one ends and use the newest labels"
                return await JSONResponse({**queued, "detail": detail})(scope, receive, send)
            scope = {**scope, "query_string": _with_enqueue(scope.get("query_string", b""))}
        return await self.app(scope, self._limited(scope, receive), send)

    def _check_names(self, method: str, path: str) -> None:
        parts = path.strip("/").split("/")
        if len(parts) != 2:
            return
        group, name = parts
        c = self.catalogue
        known = {
            ("infer", "POST"): (c.models, "model"),
            ("train", "POST"): (c.trainers, "trainer"),
            ("activelearning", "POST"): (c.strategies, "active-learning strategy"),
            ("scoring", "POST"): (c.scoring, "scoring method"),
        }.get((group, method))
        if known is None:
            return
        names, what = known
        available = names()
        if name not in available:
            raise NotFound(f"unknown {what} '{name[:80]}'; this app has: {', '.join(sorted(available)) or 'none'}")

    def _check_ids(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        for key in ID_PARAMS:
            for value in query.get(key, []):
                if not value:
                    continue
                check_image_id(value, f"{key} id")
                # an upload (PUT /datastore/image, or PUT /datastore/?image= as the Slicer client sends it)
                # names a new image, and with a session_id the image is the session's uploaded volume
                # (Slicer sends its own volume name); everywhere else the image must exist
                upload = path.rstrip("/") == "/datastore/image" or (method == "PUT" and path.rstrip("/") == "/datastore")
                named_elsewhere = upload or query.get("session_id")
                if key == "image" and not named_elsewhere and self.catalogue.image_exists(value) is False:
                    raise NotFound(f"image '{value}' is not in the datastore")

    def _check_trainable(self, path: str) -> None:
        """Training without any final label crashes in the training process (an empty sampler) and the
        client only sees a SUBMITTED task that later fails; OHIF's "Update Model" is one click away from that.

        A trainer named in the path that learns from the images alone (self-supervised restoration) may train.
        """
        model = path.rstrip("/")[len("/train"):].strip("/")
        if model and model in self.catalogue.label_free_trainers():
            return
        if self.catalogue.final_labels() == 0:
            raise Conflict("there is nothing to train on: no image has a final label yet. Submit a label first "
                           "(Slicer: Submit Label; REST: PUT /datastore/label?image=ID&tag=final; DICOMweb: store a "
                           "DICOM SEG of the series in the PACS), then start training")

    def _limited(self, scope, receive):
        limit = self.catalogue.max_upload_bytes
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(f"upload of {int(length)} bytes exceeds the limit of {limit} bytes (--conf max_upload_mb)")
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes (--conf max_upload_mb)")
            return message

        return counted


def _with_enqueue(query: bytes) -> bytes:
    """A training request waits for a running one instead of failing with HTTP 429 (never two at once).

    Slicer's "train on save" and OHIF's "Update Model" post while the server's own retraining may run.
    """
    kept = [p for p in query.split(b"&") if p and not p.startswith(b"enqueue=")]
    return b"&".join(kept + [b"enqueue=true"])


def install(catalogue: Catalogue, extra_routes=None) -> bool:
    """Wraps the running monailabel server's router with the guard and adds medlabel's routes.

    Returns False outside the server process (e.g. in a training subprocess), where there is no router.
    """
    import sys

    server = sys.modules.get("monailabel.app")
    if server is None:
        return False
    if extra_routes is not None and not any(getattr(r, "path", "").startswith("/medlabel") for r in server.app.routes):
        server.app.include_router(extra_routes)
    router = server.app.router
    if not isinstance(router.middleware_stack, RequestGuard):
        router.middleware_stack = RequestGuard(router.middleware_stack, catalogue)
    else:
        router.middleware_stack.catalogue = catalogue
    logger.info("request guard installed")
    return True
