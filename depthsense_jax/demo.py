"""`depthsense demo`: a Gradio web app that shows a photo's relative depth.

Upload a photo (or pick an example): the page shows it next to its depth colour map (bright =
near) and offers the depth as a 16-bit PNG (normalised to 0..65535) and as the raw float32
`.npy`. One `inference.Predictor` is compiled at start and serves every request.

Under load: Gradio's queue runs the depth requests one at a time (one prediction keeps the
cores or the accelerator busy, and each running at once would hold its own activations),
each from its own upload into its own result folder; at most `queue_size` requests wait, and
the next is refused at once with Gradio's "Queue is full" (HTTP 503) rather than held in
memory. Uploads larger than any photo of `max_pixels` could be are cut off while they arrive
(HTTP 413); Gradio's copies of uploads and results are deleted about CACHE_SECONDS after
they were last handed out. Bad input (no photo, a file that is no image, a photo above
`max_pixels`) is reported in the page as a `gradio.Error`; the server keeps serving.

Needs the `[demo]` extra (gradio), imported only when an app is built.
"""

from __future__ import annotations

import collections
import os
import shutil
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from depthsense_jax import inference, viz

if TYPE_CHECKING:
    import gradio

# The colour maps offered: perceptually ordered ones first; "gray" is plain grey levels (no
# OpenCV map), every other name is an OpenCV colour map (viz.colormap_id).
COLORMAPS = ("inferno", "magma", "plasma", "viridis", "cividis", "turbo", "jet", "bone", "gray")
MAX_PIXELS = 40_000_000  # ~ a 7700 x 5200 photo: its float32 copy alone is 480 MB
IMAGE_HEIGHT = 420  # px of the page the photo and its colour map are shown in
KEEP_RESULTS = 16  # result folders kept on disk; older ones are removed
QUEUE_SIZE = 32  # requests that may wait for the model; one more is told the queue is full
CACHE_SECONDS = 3600  # Gradio's copies of uploads and results are deleted this much later
# An upload may hold the pixels at 16 bytes each (float32 RGBA, the most a photo format
# OpenCV reads stores) and this much besides (EXIF, ICC profiles, XMP).
METADATA_BYTES = 16 * 2**20


def _gradio():
    """The gradio module, imported on first use (it is an optional dependency)."""
    # No usage reports or version checks from a tool that may run offline: every Blocks
    # reads this when built (ours also say so); the variable covers any built inside.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError:
        raise ValueError("depthsense demo needs the [demo] extra: "
                         "pip install 'depthsense-jax[demo]'") from None
    return gradio


def colorize(depth: np.ndarray, colormap: str) -> np.ndarray:
    """(H, W) relative depth -> (H, W, 3) uint8 RGB in `colormap` (one of COLORMAPS, or any
    OpenCV colour map name), normalised over the image, bright = near."""
    if colormap == "gray":
        grey = (inference.to_png16(depth) // 257).astype(np.uint8)  # 65535 // 257 == 255
        return np.repeat(grey[..., None], 3, axis=2)
    return viz.colorize(depth, colormap=colormap)


def _header_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file's header without decoding the pixels; None when PIL
    does not know the format (OpenCV may still read it). Above PIL's own limit (twice
    PIL.Image.MAX_IMAGE_PIXELS, ~179 M pixels) the size is unknown: (0, 0) stands for it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # PIL warns above ~89 M pixels; the caller compares with its own limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return image.size
    except Image.DecompressionBombError:
        return (0, 0)
    except Exception:  # any header PIL cannot parse: OpenCV decides
        return None


class DepthDemo:
    """The app's request handlers, usable without a browser and from several threads: one
    compiled predictor for all requests (one prediction at a time), each request's files in
    a folder of its own under `out_dir` (a temporary folder by default, removed with the
    object), the last KEEP_RESULTS folders kept.

    size: the short side the model sees (default: the model's training size, else its
    family's default). max_pixels: larger photos are refused before they are decoded.
    """

    def __init__(self, model: inference.LoadedModel, size: int | None = None,
                 max_pixels: int = MAX_PIXELS, out_dir: str | None = None):
        self.gr = _gradio()
        self.predictor = inference.Predictor(model)
        self.size = size or self.predictor.default_size
        self.predictor.model_size(1, 1, self.size)  # a bad size fails now, not per request
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        self.max_pixels = max_pixels
        if out_dir is None:
            out_dir = tempfile.mkdtemp(prefix="depthsense-demo-")
            weakref.finalize(self, shutil.rmtree, out_dir, True)
        self.out_dir = out_dir
        # Gradio's queue already runs one depth request at a time; the lock keeps it so for
        # callers from several threads. The files lock: one folder made at a time.
        self._lock = threading.Lock()
        self._files = threading.Lock()
        self._count = 0
        self._folders: collections.deque[str] = collections.deque()  # oldest first
        self.warm_up()

    def warm_up(self) -> None:
        """Compile the model for a landscape 3:4 photo, the commonest shape: the first
        request of that shape then takes the predict time only."""
        self.depth(np.zeros((3, 4, 3), np.float32))

    def depth(self, photo: np.ndarray) -> np.ndarray:
        """(H, W, 3) float32 RGB in [0, 1] -> (H, W) float32 relative inverse depth."""
        with self._lock:
            return self.predictor.predict([photo], size=self.size, batch_size=1)[0]

    def _error(self, message: str, title: str = "Error") -> Exception:
        """The in-page message for bad input (no traceback in the server's log: the input,
        not the server, is at fault)."""
        return self.gr.Error(message, title=title, print_exception=False)

    def _too_large(self, name: str, width: int, height: int) -> Exception:
        from PIL import Image

        shown = (f"{width} x {height} = {width * height / 1e6:.1f} million pixels" if width
                 else f"more than {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} million pixels")
        return self._error(
            f"{name} is too large: {shown}; this demo takes photos of at most "
            f"{self.max_pixels:,} pixels ({self.max_pixels / 1e6:g} million, the limit "
            "--max-pixels sets). Scale it down and upload it again.", title="Photo too large")

    def read(self, path: str | None) -> np.ndarray:
        """The photo of an uploaded file: (H, W, 3) float32 RGB in [0, 1]. gradio.Error
        when there is none, it is no image, or it has more than max_pixels pixels."""
        if not path:
            raise self._error("No photo yet: upload an image file (JPEG, PNG, BMP, TIFF or "
                              "WebP) or pick an example.", title="No photo")
        name = os.path.basename(path)
        if not os.path.isfile(path):
            raise self._error(f"{name}: the uploaded file is gone; upload it again.")
        header = _header_size(path)
        if header == (0, 0):
            from PIL import Image

            if self.max_pixels < 2 * Image.MAX_IMAGE_PIXELS:
                raise self._too_large(name, 0, 0)
        elif header is not None and header[0] * header[1] > self.max_pixels:
            raise self._too_large(name, *header)
        try:
            photo = inference.read_photo(path)
        except (ValueError, cv2.error, MemoryError) as err:
            reason = str(err).removeprefix(f"{path}: ")
            detail = "" if reason == "not a readable image" else f" ({reason})"
            raise self._error(
                f"{name} is not an image this demo can read{detail}. Upload a JPEG, PNG, BMP, "
                "TIFF or WebP photo.", title="Not an image") from None
        height, width = photo.shape[:2]
        if height * width > self.max_pixels:  # a format whose header PIL could not read
            raise self._too_large(name, width, height)
        return photo

    @property
    def max_upload_bytes(self) -> int:
        """Uploads above this many bytes cannot hold a photo of max_pixels pixels: Gradio
        cuts them off while they arrive."""
        return 16 * self.max_pixels + METADATA_BYTES

    def _folder(self) -> str:
        """A new folder for one request's files (under the files lock), the oldest of this
        object's folders removed so that KEEP_RESULTS remain. A folder is written whole under
        the lock and removed when the KEEP_RESULTS-th after it is made: long after Gradio
        copied its files (its queue copies a request's files before the next request of the
        same event starts; the depth and the recolour events run beside each other)."""
        while self._folders and len(self._folders) >= KEEP_RESULTS:
            shutil.rmtree(self._folders.popleft(), ignore_errors=True)
        self._count += 1
        folder = os.path.join(self.out_dir, f"{self._count:06d}")
        os.makedirs(folder)
        self._folders.append(folder)
        return folder

    def _write_png(self, path: str, image: np.ndarray) -> str:
        """image: (H, W, 3) uint8 RGB or (H, W) uint16 -> `path`, a PNG file."""
        if not cv2.imwrite(path, image[..., ::-1] if image.ndim == 3 else image):
            raise self.gr.Error(f"could not write {path}")
        return path

    def run(self, path: str | None, colormap: str = "inferno",
            ) -> tuple[np.ndarray, np.ndarray, str, str]:
        """One request: photo file -> (photo (H, W, 3) uint8, colour map (H, W, 3) uint8,
        path of the 16-bit PNG (H, W), path of the float32 .npy (H, W)). The photo and the
        colour map are written beside them too: `page_files`."""
        photo = self.read(path)
        name = os.path.splitext(os.path.basename(path))[0] or "photo"
        depth = self.depth(photo)
        shown, colour = viz.to_uint8(photo), self.recolor(None, colormap, depth)
        with self._files:
            stem = os.path.join(self._folder(), name)
            self._write_png(stem + "_photo.png", shown)
            self._write_png(stem + "_colour.png", colour)
            png16 = self._write_png(stem + "_depth.png", inference.to_png16(depth))
            np.save(stem + "_depth.npy", depth.astype(np.float32))
        return shown, colour, png16, stem + "_depth.npy"

    @staticmethod
    def page_files(npy: str) -> tuple[str, str]:
        """The photo and colour map PNG files `run` wrote beside its .npy file."""
        stem = npy.removesuffix("_depth.npy")
        return stem + "_photo.png", stem + "_colour.png"

    def run_page(self, path: str | None, colormap: str) -> tuple[str, str, str, str]:
        """`run` as the page's event: the paths of its four files. Files, not arrays:
        Gradio writes an array into a file named by its content, in place, so a concurrent
        download of the same picture (an example many open) can read it half written; a
        file it copies under a temporary name and renames."""
        _, _, png16, npy = self.run(path, colormap)
        return *self.page_files(npy), png16, npy

    def recolor_page(self, npy: str | None, colormap: str) -> str | None:
        """`recolor` as the page's event: the colour map as a PNG file in a new folder."""
        colour = self.recolor(npy, colormap)
        if colour is None:
            return None
        name = os.path.basename(npy).removesuffix(".npy")
        with self._files:
            return self._write_png(os.path.join(self._folder(), f"{name}_{colormap}.png"),
                                   colour)

    def recolor(self, npy: str | None, colormap: str,
                depth: np.ndarray | None = None) -> np.ndarray | None:
        """The colour map of the last result (its .npy file, or `depth` when given) in
        another colour map; None before any result."""
        if depth is None:
            if not npy:
                return None
            try:
                depth = np.load(npy)
            except (OSError, ValueError):  # deleted from Gradio's cache, or no .npy
                raise self._error(f"{os.path.basename(npy)}: the depth to recolour is gone; "
                                  "estimate the depth again.", title="No depth") from None
        try:
            return colorize(depth, colormap)
        except ValueError as err:
            raise self._error(str(err), title="Unknown colour map") from None

    def build(self, examples: Sequence[str] | None = None,
              queue_size: int = QUEUE_SIZE) -> gradio.Blocks:
        """The page: a gradio.Blocks (not launched) whose queue holds at most `queue_size`
        waiting requests. Its API: /depth (photo file, colour map name) -> (photo PNG,
        colour map PNG, 16-bit depth PNG, .npy), files; /recolor (.npy file, colour map
        name) -> colour map PNG."""
        if queue_size < 1:
            raise ValueError(f"queue_size must be positive, got {queue_size}")
        gr = self.gr
        every = max(1, CACHE_SECONDS // 10)  # how often Gradio looks for expired copies, s
        with gr.Blocks(title="depthsense demo", analytics_enabled=False,
                       delete_cache=(every, CACHE_SECONDS)) as app:
            gr.Markdown(
                "## depthsense: relative depth of a photo\n"
                "Upload a photo to see its relative depth: **bright = near**. The model sees "
                f"the photo with its short side at {self.size} px; the result is resized back "
                "to the photo's size. Download the depth as a 16-bit PNG (normalised to "
                "0..65535 over the photo) or as the raw float32 `.npy` (arbitrary scale and "
                f"shift). Photos up to {self.max_pixels / 1e6:g} million pixels.")
            with gr.Row():
                with gr.Column(scale=1, min_width=260):
                    photo_file = gr.File(label="Photo (JPEG, PNG, BMP, TIFF, WebP)",
                                         file_count="single", type="filepath",
                                         elem_id="photo-file")
                    colormap = gr.Dropdown(list(COLORMAPS), value=COLORMAPS[0],
                                           label="Colour map", elem_id="colormap")
                    button = gr.Button("Estimate depth", variant="primary", elem_id="run")
                    png16 = gr.File(label="Depth, 16-bit PNG", interactive=False,
                                    elem_id="png16")
                    npy = gr.File(label="Depth, float32 .npy", interactive=False,
                                  elem_id="npy")
                with gr.Column(scale=3):
                    with gr.Row():
                        photo = gr.Image(label="Photo", interactive=False,
                                         height=IMAGE_HEIGHT, elem_id="photo")
                        color = gr.Image(label="Relative depth (bright = near)",
                                         interactive=False, height=IMAGE_HEIGHT,
                                         elem_id="depth")
            outputs = [photo, color, png16, npy]
            # The file component passes a non-image upload on unchanged (gr.Image would fail
            # inside Gradio's own decoding), so `read` can say what is wrong with it. One
            # concurrency group of one for every way a depth request comes: the queue runs
            # them one at a time, pre- and post-processing (the copy of its files) included,
            # and the others wait in the queue, not in threads.
            run = dict(fn=self.run_page, inputs=[photo_file, colormap], outputs=outputs,
                       concurrency_id="model", concurrency_limit=1)
            gr.on([button.click, photo_file.upload], api_name="depth", **run)
            if examples:
                shown = gr.Examples([[p] for p in examples], inputs=[photo_file],
                                    label="Example photos")
                shown.load_input_event.then(api_visibility="private", **run)
            colormap.change(self.recolor_page, inputs=[npy, colormap], outputs=color,
                            api_name="recolor")
        return app.queue(max_size=queue_size)

    def serve(self, examples: Sequence[str] | None = None, host: str = "127.0.0.1",
              port: int = 7860, queue_size: int = QUEUE_SIZE) -> tuple[gradio.Blocks, str]:
        """Build the page and serve it at http://host:port in the background: (the app, its
        URL); `app.close()` stops it."""
        app = self.build(examples, queue_size)
        # ssr_mode=False: server-side rendering would start a Node server, which the page
        # does not need. quiet: the caller says where to go. No allowed_paths: Gradio copies
        # the examples into its cache, and allowing their folders would serve every file
        # there.
        _, url, _ = app.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                               quiet=True, ssr_mode=False, max_file_size=self.max_upload_bytes)
        return app, url


def build_app(model: inference.LoadedModel, size: int | None = None,
              examples: list[str] | None = None, max_pixels: int = MAX_PIXELS,
              ) -> gradio.Blocks:
    """The demo page for `model` as a gradio.Blocks (compiled and warmed up, not launched).
    size: the short side the model sees (default: its training size, else its family's
    default); examples:
    photo files offered as examples; max_pixels: larger uploads are refused."""
    return DepthDemo(model, size, max_pixels).build(examples)


def launch(model: inference.LoadedModel, size: int | None = None,
           examples: list[str] | None = None, max_pixels: int = MAX_PIXELS,
           host: str = "127.0.0.1", port: int = 7860,
           log: Callable[[str], None] = print, queue_size: int = QUEUE_SIZE) -> None:
    """Serve the demo at http://host:port until interrupted (Ctrl+C); at most `queue_size`
    requests wait for the model."""
    log("compiling the model")
    app, url = DepthDemo(model, size, max_pixels).serve(examples, host, port, queue_size)
    log(f"depthsense demo: serving on {url} (Ctrl+C stops)")
    try:
        app.block_thread()
    finally:
        app.close()
