"""monailabel's local datastore with checked, versioned labels and atomic writes.

Every accepted label becomes a new version in the label history; the ``final`` file monailabel trains
on is the newest version. A label is accepted only when it is a readable image of its image's voxel size with non-negative
integer values (a 3D Slicer ``.seg.nrrd`` or a DICOM SEG is first converted to a labelmap on the image's
grid); it reaches its final path by ``os.replace`` of a finished temp file, and the datastore's
JSON index is rewritten the same way, so a crash mid-write leaves the previous state intact.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pydicom
import SimpleITK as sitk
from filelock import FileLock
from monailabel.datastore.local import DataModel, LocalDatastore
from pydicom.misc import is_dicom

from medlabel.atomic import atomic_copy, atomic_write_bytes
from medlabel.datastore.history import LabelHistory
from medlabel.dicom.seg import SegError, read_seg
from medlabel.errors import BadRequest, NotFound
from medlabel.io.segnrrd import is_slicer_segmentation, slicer_segmentation_to_labelmap
from medlabel.server.guard import check_image_id

logger = logging.getLogger(__name__)


def image_size(path: str) -> tuple[int, ...]:
    """Voxel size (i, j, k) of an image file from its header alone."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    reader.ReadImageInformation()
    return tuple(reader.GetSize())


def check_label_file(label_path: str, image_path: str, image_id: str) -> None:
    """Raises ``BadRequest`` naming the problem unless the file is a label that fits the image."""
    try:
        label = sitk.ReadImage(label_path)
    except RuntimeError:
        raise BadRequest(f"the label for '{image_id}' is not a readable image (NIfTI or NRRD expected)") from None
    size, expected = tuple(label.GetSize()), image_size(image_path)
    if label.GetNumberOfComponentsPerPixel() != 1 or size != expected:
        raise BadRequest(
            f"the label for '{image_id}' has voxel size {size} with {label.GetNumberOfComponentsPerPixel()} "
            f"component(s); its image has {expected} with 1: send a single-channel labelmap on the image's grid"
        )
    values = sitk.GetArrayViewFromImage(label)
    if values.size and (values.min() < 0 or not np.all(np.mod(values, 1) == 0)):
        raise BadRequest(f"the label for '{image_id}' must hold non-negative integer label ids")


def as_labelmap(label_path: str, image_path: str, image_id: str, label_ids: Mapping[str, int] | None = None) -> str:
    """``label_path`` itself, or a 3D Slicer ``.seg.nrrd`` or a DICOM SEG converted to a labelmap on the
    image's grid (a new temp file). ``BadRequest`` names what does not fit."""
    labelmap = None
    if is_slicer_segmentation(label_path):
        labelmap = slicer_segmentation_to_labelmap(label_path, sitk.ReadImage(image_path), label_ids)
    elif is_dicom(label_path):
        grid = sitk.ReadImage(image_path)
        try:
            seg = pydicom.dcmread(label_path)
        except Exception as e:  # a truncated or corrupt file
            raise SegError(f"the label for '{image_id}' is not a readable DICOM file: {e}") from None
        labelmap = sitk.GetImageFromArray(read_seg(seg, grid, label_ids))
        labelmap.CopyInformation(grid)
    if labelmap is not None:
        fd, label_path = tempfile.mkstemp(suffix=".nrrd", prefix="medlabel-seg-")
        os.close(fd)
        sitk.WriteImage(labelmap, label_path, useCompression=True)
    return label_path


class CheckedLocalDatastore(LocalDatastore):
    """Local studies folder whose labels are validated, versioned in a ``LabelHistory`` and written atomically.

    ``check_label`` is the app's check (by the label's kind); ``label_ids`` (the app's label names and ids)
    number the segments of an uploaded ``.seg.nrrd`` or DICOM SEG by name.
    """

    def __init__(self, datastore_path: str, check_label: Callable[[str, str, str, dict], None] | None = None,
                 label_ids: Mapping[str, int] | None = None, **kwargs):
        self.label_ids = {k.lower(): v for k, v in (label_ids or {}).items()}
        super().__init__(datastore_path, **kwargs)
        self.check_label = check_label or (lambda label, image, image_id, info: check_label_file(label, image, image_id))
        self.history = LabelHistory(Path(datastore_path) / ".medlabel" / "label-history")

    def get_image_uri(self, image_id: str) -> str:
        check_image_id(image_id)
        return super().get_image_uri(image_id)

    def has_image(self, image_id: str) -> bool:
        return image_id in self._datastore.objects

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        check_image_id(image_id)
        check_image_id(label_tag, "label tag")
        obj = self._datastore.objects.get(image_id)
        if not obj:
            raise NotFound(f"image '{image_id}' is not in the datastore")
        converted = self.checked_label(label_filename, image_id, label_info)
        try:
            return self._store_label(obj, image_id, converted, label_tag, label_info)
        finally:
            if converted != label_filename:
                os.unlink(converted)

    def checked_label(self, label_filename: str, image_id: str, label_info: dict[str, Any]) -> str:
        """The label as a checked file: a segmentation file converted to a labelmap (a new temp file), then
        checked by the label's kind. ``BadRequest`` names any problem."""
        image_uri = self.get_image_uri(image_id)
        converted = as_labelmap(label_filename, image_uri, image_id, self.label_ids)
        try:
            self.check_label(converted, image_uri, image_id, dict(label_info or {}))
        except BaseException:
            if converted != label_filename:
                os.unlink(converted)
            raise
        return converted

    def _store_label(self, obj, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Adds a checked label to the history and makes it the tag's label, atomically."""
        _, ext = self._to_id(os.path.basename(label_filename))
        info = dict(label_info or {})
        prediction = obj.image.info.get("last_prediction") or {}
        info.setdefault("model", prediction.get("model"))
        info.setdefault("model_version", prediction.get("model_version"))
        record = self.history.add(image_id, label_filename, ext, label_tag, info)
        info.update(version=record.version, submitted_by=record.submitted_by)
        label_dir = self._datastore.label_path(label_tag)
        name = self._filename(image_id, ext)
        with FileLock(self._lock_file):
            atomic_copy(label_filename, Path(label_dir) / name)
            previous = obj.labels.get(label_tag)
            if previous is not None and previous.ext != ext:  # same label in another format: drop the stale file
                stale = os.path.join(label_dir, self._filename(image_id, previous.ext))
                if os.path.exists(stale):
                    os.unlink(stale)
            info.update({"ts": int(time.time()), "name": name})
            obj.labels[label_tag] = DataModel(info=info, ext=ext)
            self._update_datastore_file(lock=False)
        logger.info(f"label saved: {image_id} [{label_tag}] as {name}")
        return image_id

    def _update_datastore_file(self, lock: bool = True) -> None:
        """Same content as monailabel's, written to a temp file and renamed over the index."""

        def write() -> None:
            self._ignore_event_config = True
            content = json.dumps(self._datastore.model_dump(exclude={"base_path"}), indent=2, default=str)
            atomic_write_bytes(Path(self._datastore_config_path), content.encode())
            self._config_ts = os.stat(self._datastore_config_path).st_mtime

        if lock:
            with FileLock(self._lock_file):
                write()
        else:
            write()
