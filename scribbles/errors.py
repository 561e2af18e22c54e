"""Errors raised by the scribbles package."""

from __future__ import annotations

__all__ = ["ScribbleError"]


class ScribbleError(ValueError):
    """Invalid scribble-refinement input (shape mismatch, missing or overlapping scribbles, bad parameter).

    Subclasses ValueError so callers that already catch ValueError keep working, while
    a server can catch ScribbleError alone and report the message to the user verbatim
    (the messages name the offending input: "shape", "foreground", "background", ...).
    """
