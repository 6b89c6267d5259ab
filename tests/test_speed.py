"""Speed-benchmark bookkeeping: one MFU definition, and `speed train` on the tiny config."""

import json

import pytest

from depthsense_jax import cli
from depthsense_jax.speed import timing
from depthsense_jax.speed.model import ModelTiming
from depthsense_jax.speed.train import TrainLoopTiming

H200 = "NVIDIA H200"


def test_mfu_of_a_known_flop_count_and_time():
    # 1e12 FLOP per step in 0.1 s on one H200 (989 TFLOP/s bf16): 1e13 / 989e12.
    assert timing.mfu(1e12, 0.1, 1, H200) == pytest.approx(1e13 / 989e12)
    assert timing.mfu(1e12, 0.1, 4, H200) == pytest.approx(1e13 / (4 * 989e12))
    assert timing.mfu(1e12, 0.1, 1, "cpu") is None  # no known peak
    assert timing.mfu(None, 0.1, 1, H200) is None


def test_speed_model_and_speed_train_use_the_same_mfu():
    """A step of 8 images costing 1e12 FLOP, 100 ms a step (80 images/s): MFU 1.011%, for
    both records (bench train used to divide by the batch twice: 0.126%)."""
    model = ModelTiming(config="c", model="DepthNet(...)", dtype="bfloat16", batch=8, size=384,
                        params=1, compile_s=1.0, forward_ms=30.0, train_step_ms=100.0,
                        forward_flops=3e11, train_step_flops=1e12, device_kind=H200)
    loop = TrainLoopTiming(config="c", batch=8, size=384, devices=1, compile_s=1.0,
                           images_per_s=80.0, step_ms=100.0, input_wait_ms=1.0, host_ms=1.0,
                           device_ms=98.0, device_kind=H200, train_step_flops=1e12)
    want = 1e12 / 0.1 / 989e12
    assert model.mfu == pytest.approx(want)
    assert loop.mfu == pytest.approx(want)
    assert model.derived()["mfu"] == pytest.approx(want)


@pytest.mark.slow
def test_speed_train_reports_the_split_of_a_step(run_overrides, tmp_path, capsys):
    path = tmp_path / "speed.json"
    args = ["speed", "train", "--config", "base", *run_overrides, "--steps", "3",
            "--warmup", "1", "--json", str(path)]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "input wait" in out and "images/s" in out and "device" in out
    with open(path) as f:
        record = json.load(f)
    result = record["result"]
    assert record["settings"]["steps"] == 3 and "speed train" in record["settings"]["command"]
    assert result["images_per_s"] > 0 and 0 <= result["input_wait_fraction"] < 1
    for part in ("input_wait_ms", "host_ms", "device_ms"):
        assert 0 <= result[part] <= result["step_ms"] * 1.5
    # The step's FLOPs are of the whole batch: more than 4 images' forward passes at least.
    assert result["train_step_flops"] > 4 * 1e7
