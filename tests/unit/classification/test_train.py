"""The trainer keeps the epoch the gate would pick: its validation key metric is the gate's score."""

import numpy as np
import pytest
import torch

from medlabel.continual.store import ModelStore
from medlabel.kinds.classification.metrics import summarise
from medlabel.kinds.classification.spec import ClassificationSpec
from medlabel.kinds.classification.train import ClassificationTrain
from medlabel.spec import AppSettings


@pytest.mark.parametrize("classes, multi", [(("liver", "tumour"), True), (("tumour",), True), (("a", "b", "c"), False)])
def test_val_key_metric_is_the_gate_score(tmp_path, classes, multi):
    spec = ClassificationSpec(name="m", classes=classes, multi_label=multi)
    trainer = ClassificationTrain(ModelStore(tmp_path, spec), AppSettings())
    name, metric = next(iter(trainer.val_key_metric(None).items()))
    rng = np.random.default_rng(0)
    prob = rng.random((10, len(classes))).astype(np.float32)
    target = np.eye(len(classes), dtype=np.float32)[rng.integers(0, len(classes), 10)]
    if multi:
        target = (rng.random((10, len(classes))) > 0.5).astype(np.float32)
        target[0], target[1] = 0, 1  # both outcomes for every class
    metric.reset()
    for rows in (slice(0, 4), slice(4, 10)):  # two batches of decollated items, as the evaluator hands them
        metric.update(metric._output_transform([{"pred": torch.tensor(p), "label": torch.tensor(t)}
                                                for p, t in zip(prob[rows], target[rows])]))
    assert name == "val_score"
    assert metric.compute() == pytest.approx(summarise(prob, target, spec)["score"])
