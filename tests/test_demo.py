"""`depthsense demo`: the request handler on good and bad input, the CLI, and the page in a
real browser (Debian's Chromium driven by Playwright)."""

import io
import os
import socket
import struct
import sys
import time
import urllib.request
import zlib

import cv2
import jax
import ml_collections
import numpy as np
import pytest

from depthsense_jax import cli, demo, inference
from depthsense_jax.models import variable_shapes

gr = pytest.importorskip("gradio")

TINY_MODEL = ml_collections.ConfigDict(
    {"encoder_depth": 18, "width": 8, "fusion_channels": 16, "dtype": "float32",
     "pretrained": ""})
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def tiny_model() -> inference.LoadedModel:
    """The tiny model with random variables, trained at 64 px. Filled in NumPy from the
    variables' shapes: compiling `model.init` takes ~20 s on two cores, this ~0.3 s. He-scaled
    kernels and non-trivial BatchNorm statistics, so the depth is far from constant."""
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            return rng.normal(0, np.sqrt(2 / fan_in), leaf.shape).astype(np.float32)
        if name in ("scale", "var"):
            return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
        return rng.normal(0, 0.05, leaf.shape).astype(np.float32)  # biases, means

    variables = jax.tree_util.tree_map_with_path(
        fill, variable_shapes(TINY_MODEL))
    return inference.LoadedModel(TINY_MODEL, variables, 64)


@pytest.fixture(scope="module")
def handler(tiny_model, tmp_path_factory) -> demo.DepthDemo:
    """One handler (one compiled predictor) for all the unit tests, as one app serves all
    requests: a bad request must not spoil the next."""
    return demo.DepthDemo(tiny_model, out_dir=str(tmp_path_factory.mktemp("results")))


def _structured_photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB: a vertical gradient with a few filled shapes."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(40, 220, height, dtype=np.float32)[:, None, None]
    image = np.broadcast_to(ramp * np.array([0.6, 0.8, 1.0]), (height, width, 3)).copy()
    image = image.astype(np.uint8)
    for _ in range(4):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(8, 30)), colour, -1)
    return image


def _write_rgb(path, rgb: np.ndarray) -> str:
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    return str(path)


@pytest.fixture
def photo_path(tmp_path) -> str:
    return _write_rgb(tmp_path / "street.png", _structured_photo(96, 128))


def _png_header(width: int, height: int) -> bytes:
    """A PNG file that claims `width` x `height` pixels but holds none."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"")
            + chunk(b"IEND", b""))


# The request handler ------------------------------------------------------------------------


def test_a_photo_gives_its_colour_map_and_both_downloads(handler, photo_path):
    photo, colour, png16, npy = handler.run(photo_path, "magma")
    np.testing.assert_array_equal(photo, cv2.imread(photo_path)[..., ::-1])
    assert colour.shape == (96, 128, 3) and colour.dtype == np.uint8
    assert colour.reshape(-1, 3).std(axis=0).max() > 10  # a picture, not one colour
    depth = np.load(npy)
    assert depth.shape == (96, 128) and depth.dtype == np.float32
    # Exactly what the library predicts for the photo, at the model's 64 px.
    expected = handler.predictor.predict([inference.read_photo(photo_path)], size=64,
                                         batch_size=1)[0]
    np.testing.assert_array_equal(depth, expected)
    stored = cv2.imread(png16, cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16 and stored.shape == (96, 128)
    assert stored.min() == 0 and stored.max() == 65535
    np.testing.assert_array_equal(stored, inference.to_png16(depth))
    assert os.path.basename(png16) == "street_depth.png"
    assert os.path.basename(npy) == "street_depth.npy"


def test_the_size_defaults_to_the_training_size(handler, tiny_model):
    assert handler.size == 64
    with pytest.raises(ValueError, match="multiple of the model's stride 32"):
        demo.DepthDemo(tiny_model, size=100)


def test_every_offered_colour_map_recolours_the_last_result(handler, photo_path):
    _, inferno, _, npy = handler.run(photo_path, "inferno")
    seen = set()
    for name in demo.COLORMAPS:
        colour = handler.recolor(npy, name)
        assert colour.shape == (96, 128, 3) and colour.dtype == np.uint8
        seen.add(colour.tobytes())
    assert len(seen) == len(demo.COLORMAPS)
    np.testing.assert_array_equal(handler.recolor(npy, "inferno"), inferno)
    grey = handler.recolor(npy, "gray")
    assert (grey == grey[..., :1]).all() and grey.min() == 0 and grey.max() == 255
    assert handler.recolor(None, "magma") is None  # no result yet: nothing to recolour
    with pytest.raises(gr.Error, match="not an OpenCV colour map"):
        handler.recolor(npy, "sepia")


@pytest.mark.parametrize("name, content", [
    ("notes.txt", b"not a photo at all\n"),
    ("fake.png", b"\x89PNG\r\n\x1a\n but then nothing of a PNG"),
    ("empty.jpg", b""),
])
def test_a_file_that_is_no_image_is_refused_with_a_message(handler, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(gr.Error) as error:
        handler.run(str(path), "inferno")
    assert error.value.message.startswith(f"{name} is not an image this demo can read")
    assert "Upload a JPEG, PNG" in error.value.message


def test_no_photo_is_refused_with_a_message(handler):
    for missing in (None, ""):
        with pytest.raises(gr.Error, match="No photo yet: upload an image file"):
            handler.run(missing, "inferno")


def test_a_huge_photo_is_refused_before_it_is_decoded(handler, tmp_path, monkeypatch):
    # 42 M pixels of zeros: a 52 KB PNG whose pixels would take 500 MB as float32.
    path = tmp_path / "huge.png"
    assert cv2.imwrite(str(path), np.zeros((7000, 6000), np.uint8))
    # Beyond PIL's own refusal (~179 M pixels): only the header exists.
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header(20000, 20000))

    def decode(path):
        raise AssertionError(f"{path} was decoded")

    monkeypatch.setattr(inference, "read_photo", decode)
    with pytest.raises(gr.Error) as error:
        handler.run(str(path), "inferno")
    assert error.value.message.startswith(
        "huge.png is too large: 6000 x 7000 = 42.0 million pixels; this demo takes photos of "
        "at most 40,000,000 pixels")
    with pytest.raises(gr.Error) as error:
        handler.run(str(bomb), "inferno")
    assert error.value.message.startswith(
        "bomb.png is too large: more than 179 million pixels; this demo takes photos of at "
        "most 40,000,000 pixels")


def test_the_limit_is_the_handlers(handler, photo_path, monkeypatch):
    monkeypatch.setattr(handler, "max_pixels", 96 * 128 - 1)
    with pytest.raises(gr.Error, match=r"128 x 96 = 0\.0 million pixels; .* at most 12,287"):
        handler.run(photo_path, "inferno")
    monkeypatch.setattr(handler, "max_pixels", 96 * 128)
    assert handler.run(photo_path, "inferno")[1].shape == (96, 128, 3)


def test_a_good_request_after_bad_ones(handler, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert cv2.imwrite(str(tmp_path / "huge.png"), np.zeros((7000, 6000), np.uint8))
    for bad in (str(tmp_path / "notes.txt"), str(tmp_path / "huge.png"), None):
        with pytest.raises(gr.Error):
            handler.run(bad, "inferno")
    portrait = _write_rgb(tmp_path / "portrait.jpg", _structured_photo(128, 96, seed=3))
    photo, colour, png16, npy = handler.run(portrait, "turbo")
    assert photo.shape == colour.shape == (128, 96, 3)
    assert np.load(npy).shape == (128, 96) and colour.std() > 0


def test_results_do_not_pile_up(tiny_model, photo_path, tmp_path):
    handler = demo.DepthDemo(tiny_model, out_dir=str(tmp_path / "results"))
    paths = [handler.run(photo_path, "inferno")[3] for _ in range(demo.KEEP_RESULTS + 3)]
    assert len(os.listdir(tmp_path / "results")) == demo.KEEP_RESULTS
    assert os.path.exists(paths[-1]) and not os.path.exists(paths[0])


def test_without_gradio_the_message_names_the_extra(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'depthsense-jax\[demo\]'"):
        demo.build_app(tiny_model)


# The app and the command line ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch) -> None:
    """Gradio's uploads and served results under tmp_path, not the machine's /tmp/gradio."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))


def test_launch_serves_the_page_and_prints_its_url(tiny_model, monkeypatch, gradio_tmp):
    lines = []

    def serve_once(app):
        # In place of waiting for Ctrl+C: the page must be there while it is served.
        with urllib.request.urlopen(lines[-1].split()[-3], timeout=10) as response:
            assert response.status == 200 and b"gradio" in response.read().lower()

    monkeypatch.setattr(gr.Blocks, "block_thread", serve_once)
    port = _free_port()
    demo.launch(tiny_model, port=port, log=lines.append)
    assert lines[-1] == f"depthsense demo: serving on http://127.0.0.1:{port}/ (Ctrl+C stops)"
    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"


def test_cli_demo_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["demo", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: depthsense demo")
    assert f"{demo.MAX_PIXELS:,}" in " ".join(out.split())  # the help states the default
    args = cli.build_parser().parse_args(
        ["demo", "--params", "export", "--port", "8000", "--host", "0.0.0.0", "--size", "96",
         "--examples", "a.jpg", "b.png", "--max-pixels", "1000"])
    assert (args.params, args.workdir, args.port, args.host, args.size, args.examples,
            args.max_pixels) == ("export", None, 8000, "0.0.0.0", 96, ["a.jpg", "b.png"], 1000)
    defaults = cli.build_parser().parse_args(["demo", "--workdir", "w"])
    assert (defaults.port, defaults.host, defaults.size, defaults.examples,
            defaults.max_pixels, defaults.checkpoint) == (7860, "127.0.0.1", None, None, None,
                                                          "latest")
    assert cli.main(["demo"]) == cli.EXIT_ERROR  # no model named
    assert "give exactly one of --workdir DIR or --params" in capsys.readouterr().err


# The page in a browser ----------------------------------------------------------------------


def _fetch(page, url: str) -> bytes:
    response = page.request.get(url)
    assert response.ok, (url, response.status)
    return response.body()


def _image_at(page, selector: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """The image the page shows at `selector` (an <img>), as the server sent it."""
    data = _fetch(page, page.get_attribute(selector, "src"))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    assert image is not None, selector
    return image


def _upload(page, path: str) -> None:
    """Upload `path` as the photo, clearing the one shown first (as a user would)."""
    clear = page.locator("#photo-file button[aria-label=Clear]")
    if clear.count():
        clear.click()
    page.set_input_files("#photo-file input[type=file]", path)


def _wait_for_new_result(page, old_src: str | None) -> str:
    page.wait_for_function(
        "old => { const img = document.querySelector('#depth img');"
        " return img && img.src && img.src !== old && img.complete; }", arg=old_src)
    return page.get_attribute("#depth img", "src")


# Gradio's queue uses pandas options that pandas 3 deprecates: not ours to fix.
@pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated")
@pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")
@pytest.mark.slow
def test_the_page_in_a_browser(tiny_model, tmp_path, gradio_tmp):
    """Upload a rendered scene, get its colour map and downloads, switch the colour map,
    upload a file that is no image (a message in the page), then a photo again (the server
    is still up). No request leaves the machine: others are refused, as offline."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    from depthsense_jax.data.synthetic import render_scene

    start = time.perf_counter()
    scene = _write_rgb(tmp_path / "scene.png", render_scene(0, 1, (96, 128))["image"])
    portrait = _write_rgb(tmp_path / "portrait.png", render_scene(0, 2, (128, 96))["image"])
    notes = tmp_path / "notes.txt"
    notes.write_text("a shopping list, not a photo\n")
    screenshot = os.environ.get("DEPTHSENSE_DEMO_SCREENSHOT") or str(tmp_path / "demo.png")

    app = demo.build_app(tiny_model, examples=[scene])
    _, url, _ = app.launch(server_name="127.0.0.1", server_port=_free_port(),
                           prevent_thread_lock=True, quiet=True, ssr_mode=False)
    outside, page_errors = [], []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            local = url.rstrip("/")

            def offline(route):
                if route.request.url.startswith(local):
                    return route.continue_()
                outside.append(route.request.url)
                return route.abort()

            page.route("**/*", offline)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(url)

            _upload(page, scene)
            src = _wait_for_new_result(page, None)
            colour = _image_at(page, "#depth img")
            assert colour.shape == (96, 128, 3)
            assert colour.reshape(-1, 3).std(axis=0).max() > 10
            np.testing.assert_array_equal(_image_at(page, "#photo img"), cv2.imread(scene))
            png16 = cv2.imdecode(np.frombuffer(
                _fetch(page, page.get_attribute("#png16 a[download]", "href")), np.uint8),
                cv2.IMREAD_UNCHANGED)
            assert png16.dtype == np.uint16 and png16.shape == (96, 128)
            depth = np.load(io.BytesIO(
                _fetch(page, page.get_attribute("#npy a[download]", "href"))))
            assert depth.dtype == np.float32 and depth.shape == (96, 128)
            np.testing.assert_array_equal(png16, inference.to_png16(depth))
            page.screenshot(path=screenshot, full_page=True)

            page.click("#colormap input")
            page.get_by_role("option", name="gray", exact=True).click()
            src = _wait_for_new_result(page, src)
            grey = _image_at(page, "#depth img")
            assert grey.shape == (96, 128, 3) and (grey == grey[..., :1]).all()

            _upload(page, str(notes))
            message = page.get_by_text("notes.txt is not an image this demo can read")
            message.wait_for(state="visible")

            _upload(page, portrait)
            _wait_for_new_result(page, src)
            colour = _image_at(page, "#depth img")
            assert colour.shape == (128, 96, 3) and colour.std() > 0
            browser.close()
    finally:
        app.close()
    assert not page_errors, page_errors
    print(f"browser test {time.perf_counter() - start:.1f} s; refused outside requests: "
          f"{outside}; screenshot {screenshot}")

