"""The planner's rules on hand-made fingerprints, and once on the real demo images."""

from medlabel.planning import Fingerprint, fingerprint, plan, spec_source
from medlabel.spec import CTWindow, ModelSpec, NetworkSpec, TrainSpec, ZScore  # noqa: F401  (spec_source eval)


def fp(spacing, shape, extent=None, low=0.0):
    return Fingerprint(spacing, shape, extent, low, 1000.0)


def test_isotropic_small_images_keep_their_spacing_and_fit_one_patch():
    spec = plan("organ", {"organ": 1}, [fp((1.0, 1.0, 1.0), (60, 60, 60))] * 4)
    assert spec.spacing_mm == (1.0, 1.0, 1.0) and spec.roi_size == (64, 64, 64)
    assert isinstance(spec.intensity, ZScore) and spec.network.channels == (16, 32, 64, 128)


def test_large_images_are_coarsened_to_the_voxel_budget_isotropically():
    spec = plan("organ", {"organ": 1}, [fp((0.7, 0.7, 0.7), (512, 512, 400), low=-1024)] * 3, max_voxels=96**3)
    ratio = [s / 0.7 for s in spec.spacing_mm]
    assert max(ratio) - min(ratio) < 0.02 and spec.spacing_mm[0] > 2.5
    assert spec.roi_size == (64, 64, 64) and isinstance(spec.intensity, CTWindow)


def test_anisotropic_coarse_axis_takes_the_tenth_percentile():
    prints = [fp((0.8, 0.8, 5.0), (100, 100, 20))] * 9 + [fp((0.8, 0.8, 2.5), (100, 100, 40))]
    spec = plan("organ", {"organ": 1}, prints, max_voxels=10**9)
    assert spec.spacing_mm[2] < 5.0 and spec.spacing_mm[:2] == (0.8, 0.8)


def test_structure_extent_sets_the_smallest_patch_and_budget_sets_epochs():
    spec = plan("organ", {"organ": 1}, [fp((1.0, 1.0, 1.0), (40, 40, 40), extent=(50.0, 20.0, 20.0))] * 4,
                budget_minutes=10, seconds_per_batch=0.5)
    assert spec.roi_size[0] == 64 and spec.roi_size[1] == 48
    assert spec.train.max_epochs == int(600 * 0.85 / (20 * 0.5))


def test_demo_brain_plan_is_a_valid_spec_and_prints_as_python(demo_data):
    images = sorted((demo_data / "studies" / "brain-mr").glob("*.nii.gz"))[:4]
    truth = demo_data / "groundtruth" / "brain-mr"
    prints = [fingerprint(i, truth / i.name) for i in images]
    spec = plan("my_brain", {"brain": 1}, prints)
    assert isinstance(spec.intensity, ZScore) and all(p.foreground_extent_mm for p in prints)
    assert eval(spec_source(spec)) == spec


def test_a_timed_plan_caps_training_at_the_budget_and_prints_the_cap():
    spec = plan("organ", {"organ": 1}, [fp((1.0, 1.0, 1.0), (60, 60, 60))] * 4, budget_minutes=7, seconds_per_batch=1.0)
    assert spec.train.max_minutes == 7 and spec.train.max_epochs == int(7 * 60 * 0.85 / 20)
    assert eval(spec_source(spec)) == spec
