"""What every kind's infer task reads from a monailabel request, checked in one place."""

import os

from medlabel.errors import NotFound


def image_path(request: dict) -> str:
    """The request's image file; a 404 naming the image when the datastore has no such file."""
    path = request.get("image")
    if not isinstance(path, str) or not path or not os.path.exists(path):
        raise NotFound(f"image '{request.get('image_id', path)}' was not found in the datastore")
    return path
