import pytest

from medlabel.errors import ConfigError
from medlabel.spec import AppSettings, CTWindow, ModelSpec, parse_specs


def spec(**kw):
    return ModelSpec(**{"name": "liver_ct", "labels": {"liver": 1, "tumour": 2}, **kw})


def test_conf_is_typed_once():
    s = AppSettings.from_conf({"models": "a, b", "max_epochs": "7", "device": "cpu", "server_mode": "true"})
    assert s.models == ("a", "b") and s.max_epochs == 7 and s.device == "cpu" and s.server_mode is True


@pytest.mark.parametrize(
    "conf, words",
    [({"max_epoch": "3"}, "did you mean 'max_epochs'"), ({"max_epochs": "zero"}, "'max_epochs'"),
     ({"device": "tpu"}, "'device'"), ({"uncertainty_samples": "1"}, "'uncertainty_samples'")],
)
def test_bad_conf_names_the_key(conf, words):
    with pytest.raises(ConfigError, match=words):
        AppSettings.from_conf(conf)


def test_spec_rules():
    s = spec()
    assert s.num_classes == 3 and s.label_names == ["liver", "tumour"]
    with pytest.raises(ValueError, match="without gaps"):
        spec(labels={"liver": 1, "tumour": 3})
    with pytest.raises(ValueError, match="multiples of 16"):
        spec(roi_size=(50, 64, 64))
    with pytest.raises(ValueError, match="hu_min"):
        CTWindow(hu_min=100, hu_max=0)
    with pytest.raises(ValueError):
        spec(name="../evil")


def test_parse_specs_selects_and_rejects():
    a, b = spec(name="a"), spec(name="b")
    assert [s.name for s in parse_specs([a, b], ("b",))] == ["b"]
    with pytest.raises(ConfigError, match="repeated"):
        parse_specs([a, a], ())
    with pytest.raises(ConfigError, match="unknown model"):
        parse_specs([a], ("c",))
