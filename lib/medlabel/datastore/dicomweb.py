"""monailabel's DICOMweb datastore, built without its dcmqi download.

Stock ``MONAILabelApp._init_dicomweb_datastore`` looks for the ``itkimage2segimage`` tool on PATH and
otherwise downloads it from the internet (and writes into the app folder); medlabel writes DICOM SEG
with highdicom instead, so the datastore is built here with the same settings and no download.
"""

from __future__ import annotations

import logging

from dicomweb_client.session_utils import create_session_from_user_pass
from monailabel.config import settings
from monailabel.datastore.dicom import DICOMwebClientX, DICOMWebDatastore

logger = logging.getLogger(__name__)


class CheckedDICOMwebDatastore(DICOMWebDatastore):
    """A DICOMweb server (e.g. Orthanc) as the studies; images and labels cached locally."""


def dicomweb_datastore(url: str) -> CheckedDICOMwebDatastore:
    """The datastore for ``--studies http://.../dicom-web``, configured by monailabel's DICOMweb settings."""
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
    cache_path = (settings.MONAI_LABEL_DICOMWEB_CACHE_PATH or "").strip() or None
    return CheckedDICOMwebDatastore(
        client=client,
        search_filter=settings.MONAI_LABEL_DICOMWEB_SEARCH_FILTER,
        cache_path=cache_path,
        fetch_by_frame=settings.MONAI_LABEL_DICOMWEB_FETCH_BY_FRAME,
        convert_to_nifti=settings.MONAI_LABEL_DICOMWEB_CONVERT_TO_NIFTI,
    )
