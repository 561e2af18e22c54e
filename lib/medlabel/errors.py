"""Errors that carry their HTTP status, so a client's mistake is a 4xx with a message, never a 500.

They subclass FastAPI's ``HTTPException``: raised anywhere inside a request (also from monailabel's
infer thread pool, which re-raises in the request thread) the stock exception middleware turns them
into ``{"detail": message}`` with the right status. Outside a request they are ordinary exceptions.
"""

from fastapi import HTTPException


class MedlabelError(HTTPException):
    """Base class: a message that tells the user what to fix."""

    status_code_default = 400

    def __init__(self, message: str):
        super().__init__(status_code=self.status_code_default, detail=message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BadRequest(MedlabelError):
    """The request is malformed: a corrupt image, a label of the wrong shape, a bad parameter."""


class NotFound(MedlabelError):
    """An unknown model, strategy, image or version."""

    status_code_default = 404


class Conflict(MedlabelError):
    """The request clashes with the server's state (e.g. a training already running)."""

    status_code_default = 409


class PayloadTooLarge(MedlabelError):
    """An upload above the configured limit."""

    status_code_default = 413


class Unavailable(MedlabelError):
    """A service the server depends on (the DICOMweb server) cannot be reached or failed; retry later."""

    status_code_default = 503


class ConfigError(ValueError):
    """A bad ``--conf`` value or model spec; raised at start-up, which then stops with this message."""
