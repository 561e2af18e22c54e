"""The one ``MONAILabelApp`` every medlabel app uses: it builds all tasks from a list of model specs."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from monailabel.config import settings as server_settings
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random
from monailabel.utils.async_tasks.utils import tasks as background_tasks

from medlabel import __version__
from medlabel.continual.store import ModelStore
from medlabel.continual.trigger import RetrainTrigger
from medlabel.datastore.dicomweb import CheckedDICOMwebDatastore, dicomweb_datastore
from medlabel.datastore.local import CheckedLocalDatastore
from medlabel.errors import BadRequest
from medlabel.kinds.registry import KINDS, ActiveLearning
from medlabel.runtime import set_cpu_precision
from medlabel.server import guard
from medlabel.server.routes import build_router
from medlabel.spec import AppSettings, BaseSpec, parse_specs

logger = logging.getLogger(__name__)


class MedlabelApp(MONAILabelApp):
    """Parses ``--conf`` once, then builds infer, train, strategy and scoring tasks for each spec.

    ``apps/<app>/main.py`` gets one from ``medlabel_app(name, specs)``; nothing else is needed.
    """

    SPECS: list[BaseSpec] = []
    NAME = "medlabel"
    DESCRIPTION = ""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]):
        self.settings = AppSettings.from_conf(conf or {})
        set_cpu_precision(self.settings.cpu_precision)
        self.specs = parse_specs(list(self.SPECS), self.settings.models)
        model_dir = self.settings.model_dir or Path(app_dir) / "model"
        self.stores = {s.name: ModelStore(model_dir, s) for s in self.specs}
        self.predictors = {s.name: KINDS[s.kind].predictor(self.stores[s.name]) for s in self.specs}
        self.active_learning = self._active_learning()
        super().__init__(app_dir, studies, conf, name=self.NAME, description=self.DESCRIPTION, version=__version__)
        # Scores are computed on demand by the uncertainty strategy (cached per model version), not by a
        # background process that would compete with inference for the CPU at every start.
        self._auto_update_scoring = False
        store = self.datastore()
        self.label_history = store.history if isinstance(store, CheckedLocalDatastore) else None
        self.trigger = RetrainTrigger(
            state_file=Path(model_dir) / "continual.json",
            retrain_after=self.settings.retrain_after,
            stores={n: st for n, st in self.stores.items() if KINDS[st.spec.kind].train},
            count_final_labels=self._count_final_labels,
            queue=lambda models: self.async_training(models, enqueue=True),
            waiting=lambda: self._queued_training() is not None,
        )
        guard.install(self._catalogue(), build_router(self))

    @staticmethod
    def _queued_training() -> dict | None:
        """The training task waiting in monailabel's queue (there is at most one), if any."""
        return next((t for t in background_tasks("train") if t.get("status") == "SUBMITTED"), None)

    def _count_final_labels(self) -> int:
        if self.label_history is not None:
            return self.label_history.count("final")
        return len(self.datastore().get_labeled_images())

    def on_init_complete(self):
        super().on_init_complete()
        self.trigger.resume()

    def on_save_label(self, image_id: str, label_id: str) -> dict:
        """Counts the label towards server-side retraining; the answer tells the client what happened."""
        super().on_save_label(image_id, label_id)
        return self.trigger.on_label_saved()

    def infer(self, request, datastore=None):
        """Runs monailabel's infer, then notes which model version predicted the image.

        A label submitted later for the image is recorded as correcting that prediction.
        """
        result = super().infer(request, datastore)
        params, image_id = result.get("params") or {}, request.get("image")
        store = self.datastore()
        if isinstance(params.get("derived_image"), dict) and result.get("file"):
            params["derived_image"] = self._add_derived_image(store, str(image_id), result["file"], params["derived_image"])
        if "model_version" in params and isinstance(store, CheckedLocalDatastore) and store.has_image(str(image_id)):
            prediction = {"model": params.get("model"), "model_version": params["model_version"], "ts": int(time.time())}
            prediction.update(params.get("prediction") or {})  # a kind's own result (class probabilities)
            store.update_image_info(str(image_id), {"last_prediction": prediction})
        return result

    @staticmethod
    def _add_derived_image(store, image_id: str, path: str, derived: dict) -> dict:
        """Keeps an image a model generated (``derived_image`` in its answer) as a new datastore image.

        Its id is ``<source id>_<suffix>`` (with a DICOMweb datastore: the new SeriesInstanceUID of a derived
        series in the source's study); its info records the source image and the model's provenance.
        """
        info = {"generated": {**derived.get("info", {}), "source_image": image_id, "ts": int(time.time())}}
        if isinstance(store, CheckedDICOMwebDatastore):  # a derived DICOM series of the source's study
            return {"stored": True, "id": store.add_derived_image(image_id, path, info, derived.get("label")), **info}
        if not isinstance(store, CheckedLocalDatastore):
            return {"stored": False, "reason": "generated images are kept only in local studies folders and DICOMweb"}
        new_id = guard.check_image_id(f"{image_id}_{derived['suffix']}")
        store.add_image(new_id, path, info)
        if derived.get("label"):  # a generated image's own mask: kept as its final label (a training pair)
            store.save_label(new_id, derived["label"], "final", {"model": derived.get("info", {}).get("model")})
        return {"stored": True, "id": new_id, **info}

    def info(self):
        """monailabel's info plus each model's serving version and version history, and the retrain status."""
        meta = super().info()
        for name, model in meta.get("models", {}).items():
            if name in self.stores:
                model["version"] = self.stores[name].serving_version()
                model["versions"] = [asdict(r) for r in self.stores[name].records()]
        meta["continual"] = self.trigger.status()
        return meta

    def _catalogue(self) -> guard.Catalogue:
        store = self.datastore()
        exists = store.has_image if isinstance(store, CheckedLocalDatastore) else (lambda _id: None)
        return guard.Catalogue(
            models=lambda: set(self._infers),
            trainers=lambda: set(self._trainers),
            strategies=lambda: set(self._strategies),
            scoring=lambda: set(self._scoring_methods),
            image_exists=exists,
            max_upload_bytes=self.settings.max_upload_mb << 20,
            queued_training=self._queued_training,
            final_labels=lambda: len(self.datastore().get_labeled_images()),
            label_free_trainers=lambda: {n for n, t in self._trainers.items() if not getattr(t, "needs_labels", True)},
        )

    def init_datastore(self):
        if self.studies.startswith(("http://", "https://")):
            return dicomweb_datastore(self.studies, self._label_ids(), self.check_label)
        return CheckedLocalDatastore(
            self.studies,
            check_label=self.check_label,
            label_ids=self._label_ids(),
            extensions=server_settings.MONAI_LABEL_DATASTORE_FILE_EXT,
            auto_reload=server_settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=server_settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def _label_ids(self) -> dict[str, int]:
        """Every served model's label names and ids (segments of uploaded SEGs are matched by name)."""
        return {name: i for s in self.specs for name, i in s.labels.items()}

    def init_infers(self) -> dict[str, Any]:
        infers: dict[str, Any] = {}
        for s in self.specs:
            infers.update(KINDS[s.kind].infers(self.predictors[s.name], self.settings))
        return infers

    def init_trainers(self) -> dict[str, Any]:
        return {s.name: KINDS[s.kind].train(self.stores[s.name], self.settings) for s in self.specs if KINDS[s.kind].train}

    def _active_learning(self) -> ActiveLearning:
        """Every model's strategies and scoring methods; on a name clash the model listed first keeps it."""
        strategies: dict[str, Any] = {"random": Random(), "first": First()}
        scoring: dict[str, Any] = {}
        for s in self.specs:
            mine = KINDS[s.kind].active_learning(self.predictors[s.name], self.settings)
            for name, strategy in mine.strategies.items():
                strategies.setdefault(name, strategy)
                strategies.setdefault(f"{name}_{s.name}", strategy)
            for name, method in mine.scoring.items():
                scoring.setdefault(name, method)
                scoring.setdefault(f"{name}_{s.name}", method)
        return ActiveLearning(strategies, scoring)

    def init_strategies(self) -> dict[str, Any]:
        return dict(self.active_learning.strategies)

    def init_scoring_methods(self) -> dict[str, Any]:
        return dict(self.active_learning.scoring)

    @staticmethod
    def _label_check(kind: str, specs: list[BaseSpec]):
        """The kind's label check; one that needs the models (``check_label_for``) gets this app's of that kind."""
        if KINDS[kind].check_label_for:
            return KINDS[kind].check_label_for([s for s in specs if s.kind == kind])
        return KINDS[kind].check_label

    def check_label(self, label_path: str, image_path: str, image_id: str, label_info: dict) -> None:
        """A label is checked by the kind of the model it names (``label_info["model"]``), else by the
        first kind of this app that accepts it; the error shown is the first kind's."""
        named = self.stores.get(str((label_info or {}).get("model")))
        specs = [named.spec] if named else self.specs
        checks = [c for k in dict.fromkeys(s.kind for s in specs) if (c := self._label_check(k, specs))]
        if not checks:
            raise BadRequest(f"no model of this app takes labels{f' (model {named.spec.name})' if named else ''}")
        first_error: BadRequest | None = None
        for check in checks:
            try:
                return check(label_path, image_path, image_id)
            except BadRequest as e:
                first_error = first_error or e
        raise first_error


def medlabel_app(name: str, specs: list[BaseSpec], description: str = "") -> type[MedlabelApp]:
    """The app class for ``main.py``: a ``MedlabelApp`` serving ``specs``.

    monailabel picks the class in ``main.py`` whose *direct* bases include one named ``MONAILabelApp``,
    so the class made here lists it explicitly, and ``main.py`` need not import ``MedlabelApp`` at all.
    """
    attrs = {"SPECS": list(specs), "NAME": name, "DESCRIPTION": description, "__doc__": description}
    return type("App", (MedlabelApp, MONAILabelApp), attrs)
