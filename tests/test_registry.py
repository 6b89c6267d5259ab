"""The dataset registry: names, and each dataset's stored ground truth -> target."""

import numpy as np
import pytest

from depthsense_jax.config import load_config
from depthsense_jax.data import registry
from depthsense_jax.data.synthetic import builder as synthetic_builder
from depthsense_jax.data.target import INVALID, SKY, VALID


@pytest.mark.parametrize("name, short, full", [
    ("synthetic", "synthetic", "synthetic_scenes/v2"),
    ("synthetic_scenes", "synthetic", "synthetic_scenes/v2"),
    ("synthetic_scenes/160", "synthetic", "synthetic_scenes/160"),
    ("synthetic_scenes/tiny", "synthetic", "synthetic_scenes/tiny"),
    ("redweb", "redweb", "redweb"),
])
def test_lookup_takes_every_form_of_a_name(name, short, full):
    spec, full_name = registry.lookup(name)
    assert (spec.name, full_name, spec.kind) == (short, full, "relative")


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown dataset 'nyu3'.*synthetic.*redweb.*nyu"):
        registry.lookup("nyu3")
    config = load_config("base")
    with pytest.raises(ValueError, match="unknown dataset"):
        registry.with_dataset(config, "nyu3")
    assert registry.with_dataset(config, "redweb", "/data").data.data_dir == "/data"


def test_synthetic_target_marks_sky_and_broken_pixels():
    stored = np.array([[0.5, 0.0], [np.nan, 1.0]], np.float32)
    depth, validity = (np.asarray(x) for x in synthetic_builder.decode_target(stored))
    np.testing.assert_array_equal(validity, [[VALID, SKY], [INVALID, VALID]])
    np.testing.assert_array_equal(depth, [[0.5, 0.0], [0.0, 1.0]])
    via_registry = registry.DATASETS["synthetic"].decode_target({"depth": stored})
    np.testing.assert_array_equal(np.asarray(via_registry[1]), validity)


def test_unbuilt_datasets_say_how_to_build_them(tmp_path):
    config = load_config("base", ["--config.data.name=nyu",
                                     f"--config.data.data_dir={tmp_path}"])
    with pytest.raises(ValueError, match="depthsense data build nyu --manual-dir"):
        registry.prepared_builder(config.data)
    config = load_config("base", ["--config.data.name=eth3d"])
    with pytest.raises(ValueError, match="no training build.*depthsense zero-shot eth3d"):
        registry.prepared_builder(config.data)
    config = load_config("base", ["--config.data.name=rgbd/mine",
                                     f"--config.data.data_dir={tmp_path}"])
    with pytest.raises(ValueError, match="data build folder --name mine"):
        registry.prepared_builder(config.data)
    with pytest.raises(ValueError, match="no benchmark dataset"):
        registry.benchmark("synthetic", None)
    with pytest.raises(ValueError, match="dataset name"):
        registry.lookup("rgbd/../etc")
