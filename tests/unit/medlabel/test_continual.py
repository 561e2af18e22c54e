import json

import pytest
import torch

from medlabel.continual.store import ModelStore, gate
from medlabel.continual.trigger import RetrainTrigger
from medlabel.datastore.history import LabelHistory
from medlabel.errors import NotFound
from medlabel.spec import ModelSpec


def make_store(tmp_path):
    spec = ModelSpec(name="m", labels={"a": 1})
    store = ModelStore(tmp_path, spec)
    store.ensure_initial(lambda: torch.nn.Linear(2, 2))
    return store


def weights(value: float):
    return {"weight": torch.full((2, 2), value), "bias": torch.zeros(2)}


def test_gate_rule():
    assert gate(0.8, 0.8, 1).promoted and gate(0.81, 0.8, 2).promoted
    assert not gate(0.79, 0.8, 1).promoted
    assert not gate(0.9, 0.1, 0).promoted and "no validation" in gate(0.9, 0.1, 0).reason


def test_versions_promotion_rejection_and_rollback(tmp_path):
    store = make_store(tmp_path)
    initial = store.load_serving()["model"]["weight"].clone()
    assert store.serving_version() == 0 and [r.status for r in store.records()] == ["initial"]

    v1 = store.add_candidate(weights(1.0), 4, {"x": 1})
    store.decide(v1, gate(0.7, 0.1, 1))
    assert store.serving_version() == 1 and torch.equal(store.load_serving()["model"]["weight"], weights(1.0)["weight"])

    v2 = store.add_candidate(weights(2.0), 5, {})
    store.decide(v2, gate(0.2, 0.7, 1))
    records = {r.version: r for r in store.records()}
    assert records[2].status == "rejected" and records[2].parent == 1 and records[2].metrics["gate_serving"] == 0.7
    assert store.serving_version() == 1 and torch.equal(store.load_serving()["model"]["weight"], weights(1.0)["weight"])

    store.rollback(0)
    assert store.serving_version() == 0 and torch.equal(store.load_serving()["model"]["weight"], initial)
    assert {r.version: r.status for r in store.records()} == {0: "serving", 1: "retired", 2: "rejected"}
    with pytest.raises(NotFound, match="no version 9"):
        store.rollback(9)
    assert not list(tmp_path.rglob("*.tmp"))

    # a second store on the same folder (a restarted server) sees the same state
    again = ModelStore(tmp_path, store.spec)
    again.ensure_initial(lambda: torch.nn.Linear(2, 2))
    assert again.serving_version() == 0 and len(again.records()) == 3


def test_label_history_keeps_every_version(tmp_path):
    history = LabelHistory(tmp_path / "h")
    for i, who in enumerate(["ann-a", "ann-b", "ann-a"]):
        f = tmp_path / f"l{i}.nii.gz"
        f.write_bytes(bytes([i]) * 10)
        history.add("img1", str(f), ".nii.gz", "final", {"client_id": who, "model_version": i})
    versions = history.versions("img1")
    assert [v.version for v in versions] == [1, 2, 3]
    assert [v.submitted_by for v in versions] == ["ann-a", "ann-b", "ann-a"]
    assert history.path("img1", 2).read_bytes() == bytes([1]) * 10
    assert history.count("final") == 3 and history.count("original") == 0
    with pytest.raises(NotFound):
        history.path("img1", 4)


def test_trigger_queues_at_threshold_once_and_resumes(tmp_path):
    store = make_store(tmp_path)
    labels, queued, waiting = [0], [], [False]
    trigger = RetrainTrigger(tmp_path / "c.json", 2, {"m": store}, lambda: labels[0], queued.append, lambda: waiting[0])
    labels[0] = 1
    assert trigger.on_label_saved()["retrain"] == "1/2 new labels" and not queued
    labels[0] = 2
    assert trigger.on_label_saved()["retrain"] == "queued" and queued == [["m"]] and store.pending
    labels[0] = 3
    assert trigger.on_label_saved()["retrain"] == "1/2 new labels"
    labels[0], waiting[0] = 4, True
    assert trigger.on_label_saved()["retrain"] == "already queued" and len(queued) == 1
    assert json.loads((tmp_path / "c.json").read_text())["labels_at_last_queue"] == 4
    # a restarted server queues the interrupted training again
    again = RetrainTrigger(tmp_path / "c.json", 2, {"m": store}, lambda: labels[0], queued.append, lambda: False)
    assert again.resume() == ["m"] and len(queued) == 2
    store.mark_pending(False)
    assert again.resume() == []
    off = RetrainTrigger(tmp_path / "d.json", 0, {"m": store}, lambda: 99, queued.append, lambda: False)
    assert off.on_label_saved()["retrain"] == "disabled"
