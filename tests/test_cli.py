"""The `depthsense` command line: help, version, aliases, parsing without heavy imports, and
`speed losses` at a tiny size."""

import json
import re
import subprocess
import sys

import pytest

from depthsense_jax import __version__, cli

TOP_LEVEL = ["data", "train", "validate", "predict", "export", "zero-shot", "speed",
             "model-summary", "convert-weights", "demo"]
ALIASES = {"bench": "speed", "benchmark": "zero-shot", "eval": "validate"}


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_every_command_once_by_its_name(capsys):
    """The command list of `depthsense --help` names each command (whole words: "bench"
    no longer hides inside "benchmark"), with its old name beside it."""
    out = _help([], capsys)
    listed = re.findall(r"^    (\S+)(?: \((\S+)\))?", out, re.M)
    assert [name for name, _ in listed] == TOP_LEVEL
    assert {old: name for name, old in listed if old} == ALIASES


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_old_spellings_run_the_renamed_commands(alias, capsys):
    """An alias parses to the same command and its help names the old name."""
    parser = cli.build_parser()
    argv = {"bench": ["losses"], "benchmark": ["nyu"], "eval": ["--workdir", "w"]}[alias]
    old = parser.parse_known_args([alias, *argv])[0]
    new = parser.parse_known_args([ALIASES[alias], *argv])[0]
    assert old.func is new.func
    out = _help([alias], capsys)
    assert f"`depthsense {alias}` is this command's old name" in " ".join(out.split())


COMMANDS = [["speed", "losses"], ["speed", "model"], ["speed", "train"], ["speed", "input"],
            ["speed", "render"], ["data", "build"], ["data", "show"], ["train"], ["validate"],
            ["predict"], ["export"], ["zero-shot"], ["model-summary"], ["convert-weights"],
            ["demo"]]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    assert _help(command, capsys).startswith("usage: depthsense " + " ".join(command))


@pytest.mark.parametrize("argv", [["--help"], ["predict", "--help"],
                                  ["predict", "x.jpg", "--out", "o", "--batch", "0"],
                                  ["zero-shot", "--help"], ["speed", "model", "--help"]],
                         ids=" ".join)
def test_parsing_imports_neither_jax_nor_tensorflow(argv):
    """Help and argument errors answer without importing the heavy libraries (they took
    5.4 s when the CLI imported TensorFlow and JAX before parsing)."""
    code = ("import sys\nfrom depthsense_jax import cli\n"
            f"try:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('jax', 'tensorflow', 'flax', 'optax', 'orbax', 'cv2') "
            "if m in sys.modules]\nprint(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


def test_the_zero_shot_dataset_list_is_the_registrys():
    from depthsense_jax.cli import zero_shot
    from depthsense_jax.data import registry

    assert set(zero_shot.DATASETS) == set(registry.BENCHMARKS)


def test_each_command_keeps_its_own_default_config():
    """argparse shares a parent parser's actions: one shared --config parent once gave every
    command the last command's default (`train` ran configs/base.py, not synthetic)."""
    parser = cli.build_parser()
    defaults = {
        ("train", "--workdir", "w"): "synthetic", ("speed", "train"): "synthetic",
        ("speed", "model"): "base", ("speed", "input"): "base",
        ("data", "show", "synthetic"): "base", ("model-summary",): "base",
        ("predict", "x.jpg", "--out", "o"): None,
    }
    for argv, want in defaults.items():
        assert parser.parse_known_args(list(argv))[0].config == want, argv


@pytest.mark.parametrize("extra, message", [
    ("--config.batch_size=2", "validate takes no config overrides"),
    ("--frobnicate", "unrecognised arguments: --frobnicate"),
])
def test_overrides_only_where_a_config_is_read(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "--workdir", "w", extra])
    assert exit_info.value.code == 2  # argparse's usage error
    assert message in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_missing_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--size", "x"], ["--repeats", "-1"]])
def test_speed_rejects_bad_numbers(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["speed", "losses", *bad])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_speed_rejects_unknown_loss(capsys):
    assert cli.main(["speed", "losses", "--only", "ssim,nope"]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.cost(15)
@pytest.mark.slow
def test_speed_losses_table_and_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    code = cli.main([
        "speed", "losses", "--batch", "2", "--size", "32", "--repeats", "2", "--warmup", "1",
        "--num-pairs", "8", "--num-anchors", "4", "--only", "ssim,ranking,combined",
        "--json", str(out),
    ])
    assert code == 0
    table = capsys.readouterr().out
    for name in ("ssim", "ranking", "combined"):
        assert name in table
    payload = json.loads(out.read_text())
    assert payload["settings"]["batch"] == 2 and payload["settings"]["size"] == 32
    assert payload["machine"]["backend"] == "cpu"
    rows = {r["name"]: r for r in payload["result"]}
    assert set(rows) == {"ssim", "ranking", "combined"}
    for row in rows.values():
        assert row["forward_ms"] > 0 and row["forward_backward_ms"] > 0 and row["compile_s"] > 0


def test_speed_compare_times_pytorch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("kornia")
    out = tmp_path / "speed.json"
    # The module's entry point, as the installed console script runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "depthsense_jax.cli", "speed", "losses", "--batch", "1",
         "--size", "32", "--repeats", "2", "--warmup", "1", "--only", "ssim,smoothness",
         "--compare", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kornia.losses.ssim_loss" in proc.stdout
    rows = {r["name"]: r for r in json.loads(out.read_text())["result"]}
    names = [ref["name"] for ref in rows["ssim"]["references"]]
    assert names == ["kornia.losses.ssim_loss", "pytorch-ssim formula"]
    assert all(ref["speedup"] > 0 for ref in rows["smoothness"]["references"])


def test_model_summary_counts(capsys):
    assert cli.main(["model-summary", "--config", "configs/base.py"]) == 0
    out = capsys.readouterr().out
    assert "52,126,529" in out and "(52.1M parameters)" in out
    assert cli.main(["model-summary", "--config", "configs/base.py",
                     "--config.model.encoder_depth=18"]) == 0
    assert "(29.6M parameters)" in capsys.readouterr().out


@pytest.mark.parametrize("override", ["--config.model.widht=3", "--config.model.width=abc"])
def test_model_summary_rejects_bad_overrides(override, capsys):
    assert cli.main(["model-summary", "--config", "configs/base.py", override]) == 2
    assert "override" in capsys.readouterr().err


def test_convert_weights_round_trip(tmp_path, capsys):
    import flax.serialization
    import jax
    import jax.numpy as jnp
    import numpy as np

    from depthsense_jax.models import ResNet

    # A torchvision-named .npz made from a Flax encoder's own variables, transposed back.
    variables = ResNet(depth=18, width=8).init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))
    state = {}
    for path, value in jax.tree_util.tree_leaves_with_path(variables):
        names = [p.key for p in path]
        collection, *module, field = names
        # layer1_0 -> layer1.0
        key = ".".join(m.replace("_", ".", 1) if m.startswith("layer") else m for m in module)
        key = key.replace("downsample_conv", "downsample.0").replace("downsample_bn",
                                                                      "downsample.1")
        torch_field = {"kernel": "weight", "scale": "weight", "bias": "bias",
                       "mean": "running_mean", "var": "running_var"}[field]
        array = np.asarray(value)
        state[f"{key}.{torch_field}"] = array.transpose(3, 2, 0, 1) if array.ndim == 4 else array
    src = tmp_path / "r18.npz"
    np.savez(src, **state)
    out = tmp_path / "enc.msgpack"
    assert cli.main(["convert-weights", str(src), str(out), "--depth", "18", "--width", "8"]) == 0
    restored = flax.serialization.msgpack_restore(out.read_bytes())
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(dict(variables)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert cli.main(["convert-weights", str(src), str(out), "--depth", "34",
                     "--width", "8"]) == cli.EXIT_ERROR
    assert "not in the file" in capsys.readouterr().err


@pytest.mark.slow
def test_speed_model_tiny(run_overrides, tmp_path, capsys):
    out = tmp_path / "model.json"
    code = cli.main(["speed", "model", "--config", "base", *run_overrides, "--batch", "4",
                     "--size", "64", "--repeats", "1", "--warmup", "1", "--json", str(out)])
    assert code == 0
    assert "images/s" in capsys.readouterr().out
    result = json.loads(out.read_text())["result"]
    assert result["model"].startswith("DepthNet(encoder_depth=18")
    assert result["batch"] == 4 and result["size"] == 64
    assert result["train_images_per_s"] > 0 and result["forward_images_per_s"] > 0
    # Lowered-HLO FLOPs: a training step (forward, backward ~2x, update) costs well over
    # twice a forward pass, and both are far above 0.
    assert result["forward_flops"] > 1e7
    assert result["train_step_flops"] > 2 * result["forward_flops"]


def test_speed_model_rejects_bad_size(capsys):
    assert cli.main(["speed", "model", "--size", "100"]) == 2
    assert "multiple of the model's stride 32" in capsys.readouterr().err
