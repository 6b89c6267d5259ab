"""DIW, Depth in the Wild (Chen et al. 2016), test set: one human-labelled point pair per
image.

`DIW_test.csv` holds two lines per image: its path, then `yA,xA,yB,xB,rel,width,height`
with 1-based pixel coordinates on a width x height grid and rel `>` when point A is
farther than B, `<` when nearer (as the authors' loss and evaluation read it).
"""

from __future__ import annotations

import csv
import io
import os

from depthsense_jax import storage
from depthsense_jax.data.formats import FormatError, read_rgb
from depthsense_jax.data.samples import Item, Sample, Scoring, require_dir

CSV = "DIW_test.csv"
LAYOUT = f"""  DIR/{CSV}            (image path line, then yA,xA,yB,xB,rel,width,height)
  DIR/DIW_test/...       (the images, at the paths the CSV names, relative to DIR)"""
SCORING = Scoring(metric="ordinal")
RELATIONS = {">": 1, "<": -1}


def parse(path: str) -> list[tuple[str, tuple[int, int, int, int, int], tuple[int, int]]]:
    """(image path, (y_a, x_a, y_b, x_b, relation) 0-based, (height, width)) per image."""
    text = io.StringIO(storage.read_text(path), newline="")
    rows = [row for row in csv.reader(text) if row and any(cell.strip() for cell in row)]
    if len(rows) % 2:
        raise ValueError(f"{path}: expected two lines per image (path, then yA,xA,yB,xB,rel,"
                         f"width,height), got {len(rows)} lines")
    entries = []
    for i in range(0, len(rows), 2):
        image, fields = rows[i][0].strip(), [c.strip() for c in rows[i + 1]]
        try:
            ya, xa, yb, xb = (int(float(v)) - 1 for v in fields[:4])
            relation = RELATIONS[fields[4]]
            width, height = int(float(fields[5])), int(float(fields[6]))
        except (ValueError, KeyError, IndexError):
            raise ValueError(f"{path}:{i + 2}: expected yA,xA,yB,xB,>|<,width,height, got "
                             f"{','.join(fields)!r}") from None
        entries.append((image, (ya, xa, yb, xb, relation), (height, width)))
    return entries


def _image_path(root: str, listed: str) -> str:
    listed = listed.removeprefix("./")
    for candidate in (storage.join(root, listed),
                      storage.join(root, "DIW_test", os.path.basename(listed))):
        if storage.isfile(candidate):
            return candidate
    return storage.join(root, listed)


def _load(root: str, listed: str, pair, size) -> Sample:
    image = read_rgb(_image_path(root, listed))
    ya, xa, yb, xb, _ = pair
    height, width = size
    if not (0 <= ya < height and 0 <= yb < height and 0 <= xa < width and 0 <= xb < width):
        raise FormatError(f"{listed}: pair {pair[:4]} outside its {width}x{height} grid",
                          reason="bad annotation")
    name = os.path.splitext(listed.removeprefix("./"))[0]
    return Sample(name=name, image=image, kind="ordinal", pair=pair, size=size)


def items(data_dir: str, split_file: str | None = None) -> list[Item]:
    """The images of DIW_test.csv (or --split-file), named by their listed path."""
    root = require_dir(data_dir, "diw", LAYOUT)
    path = split_file or storage.join(root, CSV)
    if not storage.isfile(path):
        raise ValueError(f"diw: {path} does not exist; expected:\n{LAYOUT}")
    return [Item(os.path.splitext(image.removeprefix("./"))[0],
                 lambda image=image, pair=pair, size=size: _load(root, image, pair, size))
            for image, pair, size in parse(path)]
