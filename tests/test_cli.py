"""The `depthsense` command line: help, version, and `bench losses` at a tiny size."""

import json
import subprocess
import sys

import pytest

from depthsense_jax import __version__, cli


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "bench" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert __version__ in capsys.readouterr().out


def test_missing_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2


@pytest.mark.parametrize("bad", [["--batch", "0"], ["--size", "x"], ["--repeats", "-1"]])
def test_bench_rejects_bad_numbers(bad, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["bench", "losses", *bad])
    assert exit_info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_bench_rejects_unknown_loss(capsys):
    assert cli.main(["bench", "losses", "--only", "ssim,nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_bench_losses_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli.main([
        "bench", "losses", "--batch", "2", "--size", "32", "--repeats", "2", "--warmup", "1",
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
    rows = {r["name"]: r for r in payload["results"]}
    assert set(rows) == {"ssim", "ranking", "combined"}
    for row in rows.values():
        assert row["forward_ms"] > 0 and row["forward_backward_ms"] > 0 and row["compile_s"] > 0


def test_bench_compare_times_pytorch(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("kornia")
    out = tmp_path / "bench.json"
    # The installed console script, as a user runs it.
    proc = subprocess.run(
        [sys.executable, "-m", "depthsense_jax.cli", "bench", "losses", "--batch", "1",
         "--size", "32", "--repeats", "2", "--warmup", "1", "--only", "ssim,smoothness",
         "--compare", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "kornia.losses.ssim_loss" in proc.stdout
    rows = {r["name"]: r for r in json.loads(out.read_text())["results"]}
    names = [ref["name"] for ref in rows["ssim"]["references"]]
    assert names == ["kornia.losses.ssim_loss", "pytorch-ssim formula"]
    assert all(ref["speedup"] > 0 for ref in rows["smoothness"]["references"])
