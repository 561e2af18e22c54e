"""Import 2D annotations made with labelme (its JSON: shapes with a label) into a datastore.

One labelme file becomes one of three labels for its image:

- ``classes``: ``{"classes": [...]}``, the image-level classes (every shape's label and every flag set);
- ``mask``: a labelmap on the image's grid (polygons, rectangles, circles, lines and points drawn in
  file order, later shapes over earlier ones, as labelme's own export does);
- ``boxes``: ``{"boxes": [{"label", "box_xyxy"}]}`` in pixels, from rectangles and the extent of
  polygons and circles.

labelme's ``x`` is the image column and ``y`` the row. The label goes through the datastore's
``save_label``, so it is checked and versioned like one submitted from a viewer.

``python -m medlabel.io.labelme --studies DIR --mode classes FILE.json ...`` imports into a local
studies folder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import SimpleITK as sitk
from skimage import draw

MODES = ("classes", "mask", "boxes")


class LabelmeError(ValueError):
    """A labelme file that cannot be imported; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Shape:
    label: str
    kind: str  # labelme's shape_type: polygon, rectangle, circle, point, line, linestrip
    points: np.ndarray  # (N, 2) of (x, y) = (column, row)


@dataclass(frozen=True)
class Annotation:
    image_path: str
    height: int
    width: int
    shapes: tuple[Shape, ...]
    flags: dict[str, bool] = field(default_factory=dict)


def read_labelme(path: str | Path) -> Annotation:
    """A labelme JSON file, checked: shapes with a label, a known type and enough points."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        shapes = []
        for n, s in enumerate(data.get("shapes") or []):
            kind = s.get("shape_type") or "polygon"
            points = np.asarray(s["points"], dtype=np.float64).reshape(-1, 2)
            needed = {"polygon": 3, "rectangle": 2, "circle": 2, "line": 2, "linestrip": 2, "point": 1}.get(kind)
            if needed is None:
                raise LabelmeError(f"{path.name}: shape {n} has unsupported shape_type '{kind}'")
            if len(points) < needed or not str(s.get("label", "")).strip():
                raise LabelmeError(f"{path.name}: shape {n} ({kind}) needs a label and at least {needed} point(s)")
            shapes.append(Shape(str(s["label"]).strip(), kind, points))
        return Annotation(str(data["imagePath"]), int(data["imageHeight"]), int(data["imageWidth"]), tuple(shapes),
                          {str(k): bool(v) for k, v in (data.get("flags") or {}).items()})
    except LabelmeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LabelmeError(f"{path.name}: not a labelme file ({type(e).__name__}: {e})") from None


def image_classes(ann: Annotation) -> list[str]:
    """Every shape's label and every flag that is set, sorted."""
    return sorted({s.label for s in ann.shapes} | {k for k, v in ann.flags.items() if v})


def rasterise(ann: Annotation, label_ids: Mapping[str, int]) -> np.ndarray:
    """(height, width) uint8 labelmap, indexed [row, column]; unknown labels raise ``LabelmeError``."""
    unknown = sorted({s.label for s in ann.shapes} - set(label_ids))
    if unknown:
        raise LabelmeError(f"labels {unknown} are not among the model's {sorted(label_ids)}")
    mask = np.zeros((ann.height, ann.width), np.uint8)
    shape = mask.shape
    for s in ann.shapes:
        x, y = s.points[:, 0], s.points[:, 1]
        if s.kind == "polygon":
            rr, cc = draw.polygon(y, x, shape=shape)
        elif s.kind == "rectangle":
            rr, cc = draw.rectangle((min(y[:2]), min(x[:2])), (max(y[:2]), max(x[:2])), shape=shape)
            rr, cc = np.round(rr).astype(int), np.round(cc).astype(int)
        elif s.kind == "circle":
            rr, cc = draw.disk((y[0], x[0]), float(np.hypot(x[1] - x[0], y[1] - y[0])), shape=shape)
        elif s.kind == "point":
            rr, cc = np.round(y[:1]).astype(int), np.round(x[:1]).astype(int)
        else:  # line, linestrip
            pieces = [draw.line(*map(int, np.round((y[i], x[i], y[i + 1], x[i + 1])))) for i in range(len(x) - 1)]
            rr, cc = np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
        inside = (rr >= 0) & (rr < shape[0]) & (cc >= 0) & (cc < shape[1])
        mask[rr[inside], cc[inside]] = label_ids[s.label]
    return mask


def boxes(ann: Annotation) -> list[dict[str, Any]]:
    """Boxes ``[x0, y0, x1, y1]`` in pixels from rectangles, polygons and circles (points and lines have none)."""
    result = []
    for s in ann.shapes:
        if s.kind in ("rectangle", "polygon"):
            lo, hi = s.points.min(0), s.points.max(0)
        elif s.kind == "circle":
            r = float(np.hypot(*(s.points[1] - s.points[0])))
            lo, hi = s.points[0] - r, s.points[0] + r
        else:
            continue
        result.append({"label": s.label, "box_xyxy": [round(float(v), 3) for v in (*lo, *hi)]})
    return result


def _temp(suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="medlabel-labelme-")
    os.close(fd)
    return path


def label_file(ann: Annotation, mode: str, image_path: str, label_ids: Mapping[str, int] | None = None) -> str:
    """The label of ``mode`` as a new temp file (JSON, or NRRD on the grid of ``image_path``)."""
    if mode == "classes":
        path = _temp(".json")
        Path(path).write_text(json.dumps({"classes": image_classes(ann)}))
    elif mode == "boxes":
        path = _temp(".json")
        Path(path).write_text(json.dumps({"boxes": boxes(ann)}))
    elif mode == "mask":
        if not label_ids:
            raise LabelmeError("a mask needs the model's label ids, e.g. {'liver': 1, 'tumour': 2}")
        reader = sitk.ImageFileReader()
        reader.SetFileName(image_path)
        reader.ReadImageInformation()
        size = reader.GetSize()
        if size[:2] != (ann.width, ann.height) or any(s != 1 for s in size[2:]):
            raise LabelmeError(f"the labelme file is for a {ann.width}x{ann.height} image; the datastore's image "
                               f"has voxel size {size}")
        mask = rasterise(ann, label_ids)
        image = sitk.GetImageFromArray(mask.reshape(tuple(reversed(size))))
        image.SetOrigin(reader.GetOrigin())
        image.SetSpacing(reader.GetSpacing())
        image.SetDirection(reader.GetDirection())
        path = _temp(".nrrd")
        sitk.WriteImage(image, path, useCompression=True)
    else:
        raise LabelmeError(f"mode must be one of {MODES}, got '{mode}'")
    return path


def image_id_of(ann: Annotation) -> str:
    """The datastore id of the annotated image: its file name without extension(s)."""
    name = Path(ann.image_path.replace("\\", "/")).name
    for ext in (".nii.gz", ".nii", ".nrrd", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return Path(name).stem


def import_labelme(json_path: str | Path, datastore, mode: str, label_ids: Mapping[str, int] | None = None,
                   image_id: str | None = None, tag: str = "final") -> str:
    """Imports one labelme file as a ``mode`` label of its image (``imagePath``, or ``image_id``); returns the id."""
    ann = read_labelme(json_path)
    image_id = image_id or image_id_of(ann)
    path = label_file(ann, mode, datastore.get_image_uri(image_id), label_ids)
    try:
        return datastore.save_label(image_id, path, tag, {"source": "labelme", "labelme_file": Path(json_path).name,
                                                          "labelme_mode": mode})
    finally:
        os.unlink(path)


def main() -> None:
    from medlabel.datastore.local import CheckedLocalDatastore

    parser = argparse.ArgumentParser(description="Import labelme JSON files into a local studies folder")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--studies", required=True, type=Path)
    parser.add_argument("--mode", choices=MODES, default="classes")
    parser.add_argument("--labels", default="", help="mask ids as name=id,name=id (mode mask)")
    parser.add_argument("--tag", default="final")
    args = parser.parse_args()
    label_ids = {k: int(v) for k, v in (p.split("=") for p in args.labels.split(",") if p)}
    check = None if args.mode == "mask" else (lambda label, image, image_id, info: None)  # JSON: checked by the server's model
    store = CheckedLocalDatastore(str(args.studies), check_label=check, extensions=("*.nii.gz", "*.nii", "*.nrrd", "*.png", "*.jpg"))
    for f in args.files:
        print(f"{f.name} -> {import_labelme(f, store, args.mode, label_ids, tag=args.tag)} ({args.mode})")


if __name__ == "__main__":
    main()
