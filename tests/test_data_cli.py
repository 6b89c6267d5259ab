"""`depthsense data build|show` and `bench input` on a fake ReDWeb folder."""

import cv2
import numpy as np
import pytest

from depthsense_jax import cli


@pytest.fixture(scope="module")
def fake_redweb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli_redweb")
    root = tmp / "manual" / "ReDWeb_V1"
    (root / "Imgs").mkdir(parents=True)
    (root / "RDs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        image = rng.integers(0, 256, (40, 56, 3), np.uint8)
        cv2.imwrite(str(root / "Imgs" / f"p{i:02d}.jpg"), image)
        rd = rng.integers(0, 255, (40, 56), np.uint8)
        rd[:5] = 255
        cv2.imwrite(str(root / "RDs" / f"p{i:02d}.png"), rd)
    (root / "Imgs" / "broken.jpg").write_bytes(b"not a jpeg")
    cv2.imwrite(str(root / "RDs" / "broken.png"), np.zeros((40, 56), np.uint8))
    return tmp


def test_build_show_and_bench_input(fake_redweb, capsys):
    data_dir = str(fake_redweb / "data")
    assert cli.main(["data", "build", "redweb", "--manual-dir", str(fake_redweb / "manual"),
                     "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out
    assert "redweb" in out and "train" in out
    grid = fake_redweb / "grid.png"
    assert cli.main(["data", "show", "redweb", "--num", "3", "--size", "32", "--out", str(grid),
                     "--data-dir", data_dir]) == 0
    picture = cv2.imread(str(grid))
    assert picture.shape == (3 * 34, 3 * 34, 3)
    assert cli.main(["bench", "input", "--name", "redweb", "--data-dir", data_dir,
                     "--batch", "2", "--batches", "3", "--warmup", "1",
                     "--config.image_size=32"]) == 0
    assert "batches/s" in capsys.readouterr().out


def test_build_redweb_without_folder_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["data", "build", "redweb", "--manual-dir", str(tmp_path / "none"),
                     "--data-dir", str(tmp_path / "data")])
    assert code == 2
    assert "ReDWeb" in capsys.readouterr().err


def test_show_unbuilt_redweb_says_how_to_build(tmp_path, capsys):
    code = cli.main(["data", "show", "redweb", "--data-dir", str(tmp_path / "nothing")])
    assert code == 2
    assert "depthsense data build redweb" in capsys.readouterr().err
