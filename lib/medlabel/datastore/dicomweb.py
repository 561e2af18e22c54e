"""A DICOMweb server (e.g. Orthanc) as the studies, with the local store's checks and label history.

Built on monailabel's ``DICOMWebDatastore`` (images are cached locally as NIfTI), with what it lacks here:
- no dcmqi: stock start-up looks for ``itkimage2segimage`` and otherwise downloads it from the internet;
  final labels are written as DICOM SEG by ``medlabel.dicom.seg`` (pydicom-seg) and stored by STOW-RS;
- SEGs written by viewers are read back, the LABELMAP kind of OHIF 3.13 included, and the newest SEG
  of an image becomes its final label (a new version in the label history), mapped to label ids by name;
- a series is downloaded into a temp folder and renamed into place, so a broken connection leaves no
  half series in the cache;
- an unreachable or failing DICOMweb server is HTTP 503 with a message, never a stack trace, and the
  next request tries again (listings are cached for seconds, not stock's two hours).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import requests
import SimpleITK as sitk
from cachetools import TTLCache
from dicomweb_client.session_utils import create_session_from_user_pass
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore
from monailabel.datastore.local import LocalDatastore
from monailabel.datastore.utils.convert import dicom_to_nifti
from monailabel.datastore.utils.dicom import dicom_web_download_series
from monailabel.interfaces.datastore import DefaultLabelTag
from pydicom.dataset import Dataset

from medlabel.datastore.local import CheckedLocalDatastore
from medlabel.dicom.seg import SegError, read_seg, referenced_series, write_seg
from medlabel.dicom.series import write_derived_series
from medlabel.errors import BadRequest, NotFound, Unavailable
from medlabel.server.guard import check_image_id

logger = logging.getLogger(__name__)
LISTING_TTL_S = 10


@dataclass(frozen=True)
class SegRef:
    """A SEG series in the DICOMweb server and what it segments."""

    study_uid: str
    series_uid: str
    image_id: str | None
    stamp: str
    creator: str


class CheckedDICOMwebDatastore(DICOMWebDatastore, CheckedLocalDatastore):
    """DICOMweb studies, locally cached; final labels go to the server as DICOM SEG and come back from it."""

    def __init__(self, client, label_ids: Mapping[str, int], check_label: Callable[[str, str, str, dict], None] | None,
                 **kwargs):
        self._listings: TTLCache = TTLCache(maxsize=4, ttl=LISTING_TTL_S)
        self._seg_refs: dict[str, SegRef] = {}  # a SEG never changes: its reference is fetched once
        super().__init__(client, **kwargs)  # monailabel's DICOMweb store passes no extra arguments on
        self.label_ids = {k.lower(): v for k, v in label_ids.items()}
        self.check_label = check_label or self.check_label

    @contextmanager
    def _remote(self, doing: str) -> Iterator[None]:
        """Turns a failing DICOMweb server into ``Unavailable`` (503) that says what was being done."""
        url = self._client.base_url
        try:
            yield
        except requests.HTTPError as e:
            raise Unavailable(f"the DICOMweb server {url} answered HTTP {e.response.status_code} while {doing}") from e
        except requests.RequestException as e:
            raise Unavailable(f"the DICOMweb server {url} cannot be reached while {doing} ({type(e).__name__}): "
                              "start it, or check the --studies URL; the request can be retried") from e

    # listings

    def list_images(self) -> list[str]:
        if "images" not in self._listings:
            with self._remote("listing image series"):
                found = self._client.search_for_series(search_filters=self._search_filter)
            self._listings["images"] = [str(Dataset.from_json(s)["SeriesInstanceUID"].value) for s in found]
        return list(self._listings["images"])

    def has_image(self, image_id: str) -> bool:
        """Cached images count without asking the server, so they stay usable while it is down."""
        return image_id in self._datastore.objects or image_id in self.list_images()

    def status(self) -> dict[str, Any]:
        """Counts for ``/info``; while the DICOMweb server is unreachable, the reason instead (``/info`` still answers)."""
        try:
            return super().status()
        except Unavailable as e:
            return {"total": 0, "completed": 0, "label_tags": {}, "unavailable": e.message}

    def _segs(self, fresh: bool = False) -> dict[str, SegRef]:
        """The newest SEG of each listed image, by content date and time (``fresh``: not from the listing cache)."""
        if fresh or "segs" not in self._listings:
            with self._remote("listing DICOM SEG series"):
                found = [Dataset.from_json(s) for s in self._client.search_for_series(search_filters={"Modality": "SEG"})]
                refs = [self._seg_ref(str(s.StudyInstanceUID), str(s.SeriesInstanceUID)) for s in found]
            images, newest = set(self.list_images()), {}
            for ref in refs:
                if ref.image_id in images and (ref.image_id not in newest or ref.stamp > newest[ref.image_id].stamp):
                    newest[ref.image_id] = ref
            self._listings["segs"] = newest
        return dict(self._listings["segs"])

    def _seg_ref(self, study_uid: str, series_uid: str) -> SegRef:
        if series_uid not in self._seg_refs:
            meta = Dataset.from_json(self._client.retrieve_series_metadata(study_uid, series_uid)[0])
            stamp = f"{meta.get('ContentDate') or meta.get('SeriesDate') or ''}{meta.get('ContentTime') or meta.get('SeriesTime') or ''}"
            self._seg_refs[series_uid] = SegRef(study_uid, series_uid, referenced_series(meta), stamp,
                                                str(meta.get("ContentCreatorName") or ""))
        return self._seg_refs[series_uid]

    def get_labeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        return list(self._segs())

    def get_unlabeled_images(self, label_tag: str | None = None, labels: list[str] | None = None) -> list[str]:
        labeled = set(self._segs())
        return [i for i in self.list_images() if i not in labeled]

    # images

    def _series_dir(self, image_id: str) -> Path:
        """The image's DICOM files in the cache, downloaded into a temp folder and renamed into place."""
        folder = Path(self._datastore.image_path()) / image_id
        if folder.is_dir() and any(folder.iterdir()):
            return folder
        if not self.has_image(image_id):
            raise NotFound(f"series '{image_id}' is not in the DICOMweb server {self._client.base_url}")
        partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{image_id}."))
        try:
            with self._remote(f"downloading series {image_id}"):
                dicom_web_download_series(None, image_id, str(partial), self._client, self._fetch_by_frame)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(partial, folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        return folder

    def get_image_uri(self, image_id: str) -> str:
        check_image_id(image_id)
        nifti = Path(self._datastore.image_path()) / f"{image_id}.nii.gz"
        if image_id in self._datastore.objects and nifti.exists():
            return str(nifti.resolve())
        series = self._series_dir(image_id)
        if not self._convert_to_nifti:
            return str(series)
        converted = dicom_to_nifti(str(series))
        try:
            with self._remote(f"reading the attributes of series {image_id}"):
                info = self._dicom_info(image_id)
            LocalDatastore.add_image(self, image_id, converted, info)
        finally:
            os.unlink(converted)
        return str(nifti.resolve())

    def add_derived_image(self, source_id: str, path: str, info: dict[str, Any], label: str | None = None) -> str:
        """Stores an image computed from series ``source_id`` (``info["generated"]``: model, version, params)
        as a derived series of the same study by STOW-RS and returns its SeriesInstanceUID (the new image id).

        ``label``: the image's own mask (a synthetic training pair), stored as its final label (a DICOM SEG).
        """
        generated = info.get("generated", {})
        derivation = (f"{generated.get('model')} v{generated.get('model_version')} "
                      f"{generated.get('task', '')} {json.dumps(generated.get('params', {}), sort_keys=True)}")
        source = [pydicom.dcmread(f, stop_before_pixels=True) for f in self._series_dir(source_id).glob("*.dcm")]
        with tempfile.TemporaryDirectory() as folder:
            written = write_derived_series(sitk.ReadImage(path), source, Path(folder), derivation,
                                           f"{generated.get('model')} v{generated.get('model_version')} of "
                                           f"{source[0].get('SeriesDescription') or source_id}")
            with self._remote(f"storing the series derived from {source_id}"):
                self._client.store_instances([pydicom.dcmread(f) for f in written.files])
        self._listings.clear()
        image_id = written.series_uid
        self.get_image_uri(image_id)  # cached as any listed series; then the provenance is kept with it
        CheckedLocalDatastore.update_image_info(self, image_id, info)
        if label:
            self.save_label(image_id, label, DefaultLabelTag.FINAL, {"model": generated.get("model")})
        return image_id

    # labels

    def get_label_uri(self, label_id: str, label_tag: str, image_id: str = "") -> str:
        return LocalDatastore.get_label_uri(self, image_id or label_id, label_tag)

    def _names(self, label_info: dict[str, Any]) -> dict[int, str]:
        """Label id -> segment name: what the client sent (``label_info``), else the app's label names."""
        names = {v: k for k, v in self.label_ids.items()}
        for item in label_info.get("label_info") or []:
            if isinstance(item, dict) and "name" in item and isinstance(item.get("idx"), int):
                names[item["idx"]] = str(item["name"])
        return names

    def save_label(self, image_id: str, label_filename: str, label_tag: str, label_info: dict[str, Any]) -> str:
        """Checks the label; a final one is stored in the DICOMweb server as a SEG first, then kept locally."""
        check_image_id(image_id)
        check_image_id(label_tag, "label tag")
        image_uri = self.get_image_uri(image_id)
        converted = self.checked_label(label_filename, image_id, label_info)
        try:
            info = dict(label_info or {})
            if label_tag == DefaultLabelTag.FINAL:
                info["SeriesInstanceUID"] = self._store_seg(image_id, image_uri, converted, info)
            return CheckedLocalDatastore.save_label(self, image_id, converted, label_tag, info)
        finally:
            if converted != label_filename:
                os.unlink(converted)

    def _store_seg(self, image_id: str, image_uri: str, label_filename: str, info: dict[str, Any]) -> str:
        """Stores the label in the DICOMweb server as a SEG on the image's series; returns the SEG's series UID."""
        grid = sitk.ReadImage(image_uri)
        try:
            label = sitk.ReadImage(label_filename)
        except RuntimeError:
            raise BadRequest("a DICOMweb datastore keeps final labels as DICOM SEG: send a labelmap image") from None
        label.CopyInformation(grid)  # a label is defined on its image's voxel grid
        source = [pydicom.dcmread(f, stop_before_pixels=True) for f in self._series_dir(image_id).glob("*.dcm")]
        seg = write_seg(label, source, self._names(info), creator=str(info.get("client_id") or ""))
        if not (read_seg(seg, grid) == sitk.GetArrayViewFromImage(label)).all():
            raise SegError("the DICOM SEG written for this label does not read back to it")  # never expected
        with self._remote(f"storing the DICOM SEG of {image_id}"):
            self._client.store_instances([seg])
        self._listings.clear()
        return str(seg.SeriesInstanceUID)

    def _import_seg(self, ref: SegRef) -> None:
        """Makes a SEG found in the DICOMweb server the image's final label (a new history version)."""
        grid = sitk.ReadImage(self.get_image_uri(ref.image_id))
        with self._remote(f"downloading DICOM SEG {ref.series_uid}"):
            seg = self._client.retrieve_series(ref.study_uid, ref.series_uid)[0]
        try:
            label = sitk.GetImageFromArray(read_seg(seg, grid, self.label_ids))
        except SegError as e:
            logger.warning(f"DICOM SEG {ref.series_uid} of {ref.image_id} is skipped: {e}")
            return
        label.CopyInformation(grid)
        fd, path = tempfile.mkstemp(suffix=".nii.gz")
        os.close(fd)
        try:
            sitk.WriteImage(label, path, useCompression=True)
            info = {"SeriesInstanceUID": ref.series_uid, "client_id": ref.creator or "dicomweb"}
            CheckedLocalDatastore.save_label(self, ref.image_id, path, DefaultLabelTag.FINAL, info)
        finally:
            os.unlink(path)

    def _download_labeled_data(self) -> None:
        """Brings every image's newest SEG into the local store before training reads it."""
        for image_id, ref in self._segs(fresh=True).items():
            obj = self._datastore.objects.get(image_id)
            final = obj.labels.get(DefaultLabelTag.FINAL) if obj else None
            if final is None or final.info.get("SeriesInstanceUID") != ref.series_uid:
                self._import_seg(ref)


def dicomweb_datastore(url: str, label_ids: Mapping[str, int],
                       check_label: Callable[[str, str, str, dict], None] | None = None) -> CheckedDICOMwebDatastore:
    """The datastore for ``--studies http://.../dicom-web``, configured by monailabel's DICOMweb settings.

    ``label_ids`` (the app's label names and ids) map SEG segments to label ids by name; ``check_label``
    is the app's label check (as for ``CheckedLocalDatastore``).
    """
    url = url.rstrip("/").strip()
    session = None
    if settings.MONAI_LABEL_DICOMWEB_USERNAME and settings.MONAI_LABEL_DICOMWEB_PASSWORD:
        session = create_session_from_user_pass(
            settings.MONAI_LABEL_DICOMWEB_USERNAME, settings.MONAI_LABEL_DICOMWEB_PASSWORD
        )
    client = DICOMwebClientX(
        url=url,
        session=session,
        qido_url_prefix=settings.MONAI_LABEL_QIDO_PREFIX,
        wado_url_prefix=settings.MONAI_LABEL_WADO_PREFIX,
        stow_url_prefix=settings.MONAI_LABEL_STOW_PREFIX,
    )
    # dicomweb-client retries a refused connection for 30 s by default, which would hold every request
    # (``/info`` included) while the server is down; fail within a fraction of a second instead.
    client.set_http_retry_params(retry=True, max_attempts=2, wait_exponential_multiplier=100)
    cache_path = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
    return CheckedDICOMwebDatastore(
        client,
        label_ids,
        check_label,
        search_filter=settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER,
        cache_path=cache_path,
        fetch_by_frame=settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME,
        convert_to_nifti=settings.MONAI_LABEL_DICOMWEB_CONVERT_TO_NIFTI,
    )
