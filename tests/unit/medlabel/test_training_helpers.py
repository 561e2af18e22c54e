import math

import torch

from medlabel.activelearning.uncertainty import predictive_entropy
from medlabel.kinds.segmentation.network import build_network
from medlabel.continual.training import split_by_id
from medlabel.spec import ModelSpec, NetworkSpec


def items(n):
    return [{"image": f"/s/case{i}.nii.gz", "label": f"/s/labels/final/case{i}.nii.gz"} for i in range(n)]


def test_split_depends_only_on_ids():
    train, val = split_by_id(items(8), 0.25)
    assert len(val) == 2 and len(train) == 6 and not {d["image"] for d in val} & {d["image"] for d in train}
    train2, val2 = split_by_id(list(reversed(items(8))), 0.25)
    assert val2 == val or sorted(d["image"] for d in val2) == sorted(d["image"] for d in val)
    assert split_by_id(items(1), 0.25) == (items(1), [])
    assert len(split_by_id(items(2), 0.25)[1]) == 1


def test_entropy_bounds():
    uniform = torch.full((3, 4, 4, 4), 1 / 3)
    certain = torch.zeros(3, 4, 4, 4)
    certain[0] = 1
    assert math.isclose(predictive_entropy(uniform), 1.0, rel_tol=1e-5)
    assert predictive_entropy(certain) < 1e-5


def test_every_architecture_builds_and_one_step_lowers_the_loss():
    from monai.losses import DiceCELoss

    torch.manual_seed(0)
    x = torch.randn(1, 1, 32, 32, 32)
    y = (x > 0.5).long()
    for arch in ("unet", "segresnet", "dynunet"):
        spec = ModelSpec(name="m", labels={"a": 1}, roi_size=(32, 32, 32), network=NetworkSpec(arch=arch, channels=(8, 16, 32), dropout=0.0))
        net = build_network(spec)
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        out = net(x)
        assert out.shape == (1, 2, 32, 32, 32)
        first = loss_fn(out, y)
        for _ in range(5):
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
        assert loss_fn(net(x), y).item() < first.item(), arch


def test_time_cap_ends_training_before_an_epoch_that_would_pass_it_and_still_completes():
    import time
    from types import SimpleNamespace

    from ignite.engine import Engine, Events

    from medlabel.continual.training import ContinualTrainTask

    trainer = Engine(lambda engine, batch: time.sleep(0.2))
    context = SimpleNamespace(request={"max_minutes": 0.7 / 60}, trainer=trainer, start_ts=time.time())
    task = SimpleNamespace(spec=SimpleNamespace(train=SimpleNamespace(max_minutes=None)))
    ContinualTrainTask._stop_at_time_cap(task, context)
    completed = []
    trainer.add_event_handler(Events.COMPLETED, lambda engine: completed.append(engine.state.epoch))
    trainer.run([0], max_epochs=50)
    assert completed == [3]  # after epoch 3 (0.6 s) a fourth would end at 0.8 s, past the 0.7 s cap
    assert time.time() - context.start_ts < 0.7
