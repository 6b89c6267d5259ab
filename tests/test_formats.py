"""File-format readers against hand-written files: byte orders, row order, headers, and the
errors that name the file."""

import struct

import cv2
import numpy as np
import pytest

from depthsense_jax.data import formats


def test_pfm_both_byte_orders_and_bottom_up_rows(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    for scale, dtype in (("-1.0", "<f4"), ("1.0", ">f4")):
        path = tmp_path / f"m{scale}.pfm"
        path.write_bytes(f"Pf\n4 3\n{scale}\n".encode()
                         + np.ascontiguousarray(array[::-1], dtype).tobytes())
        np.testing.assert_array_equal(formats.read_pfm(str(path)), array)
    (tmp_path / "colour.pfm").write_bytes(b"PF\n1 1\n-1\n" + bytes(12))
    with pytest.raises(formats.FormatError, match="colour PFM"):
        formats.read_pfm(str(tmp_path / "colour.pfm"))
    (tmp_path / "short.pfm").write_bytes(b"Pf\n4 3\n-1\n" + bytes(8))
    with pytest.raises(formats.FormatError, match="needs 48 bytes"):
        formats.read_pfm(str(tmp_path / "short.pfm"))


def test_dpt_and_raw_float32(tmp_path):
    depth = np.random.default_rng(0).uniform(1, 9, (5, 7)).astype(np.float32)
    (tmp_path / "d.dpt").write_bytes(struct.pack("<fii", 202021.25, 7, 5) + depth.tobytes())
    np.testing.assert_array_equal(formats.read_dpt(str(tmp_path / "d.dpt")), depth)
    (tmp_path / "bad.dpt").write_bytes(struct.pack("<fii", 1.0, 7, 5) + depth.tobytes())
    with pytest.raises(formats.FormatError, match="not a Sintel .dpt"):
        formats.read_dpt(str(tmp_path / "bad.dpt"))
    depth.astype("<f4").tofile(tmp_path / "raw.JPG")
    np.testing.assert_array_equal(formats.read_raw_float32(str(tmp_path / "raw.JPG"), 5, 7),
                                  depth)
    with pytest.raises(formats.FormatError, match="6x5"):
        formats.read_raw_float32(str(tmp_path / "raw.JPG"), 5, 6)


def test_maps_by_extension_and_clear_errors(tmp_path):
    png = (np.arange(12).reshape(3, 4) * 5000).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "p.png"), png)
    np.testing.assert_array_equal(formats.read_map(str(tmp_path / "p.png")), png)
    cv2.imwrite(str(tmp_path / "c.png"), np.zeros((3, 4, 3), np.uint8))
    with pytest.raises(formats.FormatError, match="single-channel"):
        formats.read_map(str(tmp_path / "c.png"))
    np.save(tmp_path / "m.npy", np.ones((1, 3, 4, 1)))
    assert formats.read_map(str(tmp_path / "m.npy")).shape == (3, 4)
    with pytest.raises(formats.FormatError, match="unknown map format"):
        formats.read_map(str(tmp_path / "m.bmp"))
    with pytest.raises(formats.FormatError, match="no such file") as info:
        formats.read_map(str(tmp_path / "missing.npy"))
    assert info.value.reason == "missing file"
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(formats.FormatError, match="empty file"):
        formats.read_rgb(str(tmp_path / "empty.png"))
