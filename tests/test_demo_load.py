"""`depthsense demo` under load: clients on threads against a server on localhost, through
Gradio's API (gradio_client, as a script or another app would call it), every answer
checked against the library's own prediction of the same photo; the queue's bound; the
result folders on disk; the server's memory; and the handler called from threads directly.
"""

import concurrent.futures
import contextlib
import os
import socket
import statistics
import threading
import time

import cv2
import numpy as np
import pytest

from depthsense_jax import cli, demo, inference
from depthsense_jax.data.synthetic import render_scene

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")
psutil = pytest.importorskip("psutil")
httpx = pytest.importorskip("httpx")
from gradio_client.exceptions import AppError  # noqa: E402

# Gradio's queue uses pandas options that pandas 3 deprecates: not ours to fix.
pytestmark = [pytest.mark.filterwarnings("ignore:'future.no_silent_downcasting' is deprecated"),
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated")]

DEADLINE = 60.0  # s: every request is answered within it, however long the queue before it
MAX_PIXELS = 100 * 100  # the servers' limit here: a 120 x 120 photo is too large
# Photo sizes of each family: different photos, one model shape (64 x 96 for DepthNet at 64
# px, 56 x 70 for Depth Anything at 56: the warm-up's), so that no request compiles.
SIZES = {"depthnet": [(60, 90), (64, 88), (56, 80), (72, 100), (66, 96)],
         "depth_anything": [(60, 80), (48, 64), (66, 88), (57, 76), (63, 84)]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gradio_tmp(tmp_path, monkeypatch) -> str:
    """Gradio's uploads and served results under tmp_path, not the machine's /tmp/gradio."""
    folder = str(tmp_path / "gradio")
    monkeypatch.setenv("GRADIO_TEMP_DIR", folder)
    return folder


@contextlib.contextmanager
def _serving(handler: demo.DepthDemo, **options):
    """The handler's page served on a free port: yields its URL."""
    app, url = handler.serve(port=_free_port(), **options)
    try:
        yield url
    finally:
        app.close()


def _client(url: str, folder) -> "gradio_client.Client":
    """One user: its own session, its downloads in `folder`, no telemetry."""
    return gradio_client.Client(url, download_files=str(folder), verbose=False,
                                analytics_enabled=False)


def _photo(folder, name: str, seed: int, index: int, size: tuple[int, int]) -> str:
    path = os.path.join(folder, name)
    assert cv2.imwrite(path, render_scene(seed, index, size)["image"][..., ::-1])
    return path


def _ask(client, path: str, colormap: str = "inferno"):
    """One upload to /depth: (the four files | the error raised, seconds to the answer)."""
    start = time.perf_counter()
    job = client.submit(gradio_client.handle_file(path), colormap, api_name="/depth")
    try:
        answer = job.result(timeout=DEADLINE)
    except concurrent.futures.TimeoutError:
        raise AssertionError(f"{path}: no answer within {DEADLINE} s") from None
    except AppError as error:  # the server's message for this upload
        answer = error
    return answer, time.perf_counter() - start


def _post(url: str, path: str):
    """A plain HTTP upload of `path` to Gradio's upload route (the browser's first step; the
    Python client refuses a file over the limit itself): (the response, seconds)."""
    start = time.perf_counter()
    with open(path, "rb") as f:
        response = httpx.post(f"{url}gradio_api/upload", files={"files": f}, timeout=DEADLINE)
    return response, time.perf_counter() - start


def _check(answer, photo: str, reference: inference.Predictor, size: int,
           colormap: str = "inferno") -> None:
    """The answer is the photo's own: its name, and the depth the library predicts for it."""
    assert isinstance(answer, tuple), f"{photo}: {answer!r}"
    shown, colour, png16, npy = answer
    stem = os.path.splitext(os.path.basename(photo))[0]
    assert os.path.basename(npy) == f"{stem}_depth.npy"
    expected = reference.predict([inference.read_photo(photo)], size=size, batch_size=1)[0]
    depth = np.load(npy)
    np.testing.assert_array_equal(depth, expected, err_msg=photo)
    np.testing.assert_array_equal(cv2.imread(png16, cv2.IMREAD_UNCHANGED),
                                  inference.to_png16(expected), err_msg=photo)
    np.testing.assert_array_equal(cv2.imread(colour)[..., ::-1],
                                  demo.colorize(expected, colormap), err_msg=photo)
    np.testing.assert_array_equal(cv2.imread(shown), cv2.imread(photo), err_msg=photo)


class _FolderWatch:
    """The most folders seen at once in `folder`, sampled every 5 ms in a thread."""

    def __init__(self, folder: str):
        self.folder, self.most = folder, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(FileNotFoundError):
                self.most = max(self.most, len(os.listdir(self.folder)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _bad_files(folder) -> dict[str, str]:
    """Uploads that must fail alone -> the start of each one's error."""
    notes = os.path.join(folder, "notes.png")
    with open(notes, "w") as f:
        f.write("a shopping list, not a photo\n")
    large = _photo(folder, "large.png", 9, 0, (120, 120))
    return {notes: "notes.png is not an image this demo can read",
            large: "large.png is too large: 120 x 120"}


# The handler from threads, without Gradio --------------------------------------------------


def test_threads_calling_the_handler_get_their_own_results(tiny_models, tmp_path):
    """8 threads at once, 2 photos each (16 = KEEP_RESULTS: every folder stays): each gets
    its photo's depth, in a folder of its own."""
    model = tiny_models.loaded("depthnet")
    handler = demo.DepthDemo(model, out_dir=str(tmp_path / "results"))
    photos = [_photo(tmp_path, f"t{i}.png", 20 + i, i, SIZES["depthnet"][i % 5])
              for i in range(demo.KEEP_RESULTS)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda p: handler.run(p, "magma"), photos))
    reference = inference.Predictor(model)
    for photo, (_, colour, png16, npy) in zip(photos, answers, strict=True):
        _check((*handler.page_files(npy), png16, npy), photo, reference, 64, "magma")
        np.testing.assert_array_equal(colour, cv2.imread(handler.page_files(npy)[1])[..., ::-1])
    folders = {os.path.dirname(answer[3]) for answer in answers}
    assert len(folders) == demo.KEEP_RESULTS
    assert len(os.listdir(tmp_path / "results")) == demo.KEEP_RESULTS


# Clients through Gradio's API ----------------------------------------------------------------


@pytest.mark.parametrize("family", ["depthnet", "depth_anything"])
def test_concurrent_clients_each_get_their_own_depth(tiny_models, tmp_path, gradio_tmp,
                                                     family):
    """One round: 8 clients upload at once, each its own photo (different scenes and
    sizes), one a text file and one a photo over the pixel limit: those two get their
    errors, the other six the depth of their own photo."""
    model = tiny_models.loaded(family)
    handler = demo.DepthDemo(model, max_pixels=MAX_PIXELS, out_dir=str(tmp_path / "results"))
    photos = [_photo(tmp_path, f"{family}{i}.png", i, 0, SIZES[family][i % 5])
              for i in range(6)]
    bad = _bad_files(tmp_path)
    uploads = photos[:3] + list(bad) + photos[3:]
    with _serving(handler) as url:
        clients = [_client(url, tmp_path / f"client{i}") for i in range(len(uploads))]
        with concurrent.futures.ThreadPoolExecutor(len(uploads)) as pool:
            answers = list(pool.map(lambda c, p: _ask(c, p)[0], clients, uploads))
    reference = inference.Predictor(model)
    for upload, answer in zip(uploads, answers, strict=True):
        if upload in bad:
            assert isinstance(answer, AppError), (upload, answer)
            assert answer.message.startswith(bad[upload]), answer.message
        else:
            _check(answer, upload, reference, handler.size)


@pytest.mark.cost(27)
@pytest.mark.slow
def test_8_clients_5_uploads_each(tiny_models, tmp_path, gradio_tmp, monkeypatch):
    """The load: 8 clients, each first one request (its session, the warm-up), then 5
    uploads in a row and a recolour of its last depth, all 8 at once. Every one of the 40
    uploads gets its answer within DEADLINE: its own depth, or for the three bad ones (a
    text file, a photo over the pixel limit, a file larger than any photo of that limit
    could be) the error; the first upload of every client is the same example photo, as
    when many pick it. The result folders stay at KEEP_RESULTS (4 here, so that old ones
    are removed all along); the process's memory grows by less than 64 MiB."""
    monkeypatch.setattr(demo, "KEEP_RESULTS", 4)
    model = tiny_models.loaded("depthnet")
    results = str(tmp_path / "results")
    handler = demo.DepthDemo(model, max_pixels=MAX_PIXELS, out_dir=results)
    sizes = SIZES["depthnet"]
    example = _photo(tmp_path, "example.png", 0, 0, sizes[0])
    bad = _bad_files(tmp_path)
    huge = str(tmp_path / "huge.jpg")
    with open(huge, "wb") as f:  # just over the upload limit: cut off while it arrives
        f.write(os.urandom(handler.max_upload_bytes + 1))
    bad[huge] = f"exceeded maximum allowed size of {handler.max_upload_bytes} bytes"
    plans = []  # per client: the warm-up photo, then its 5 uploads
    for c in range(8):
        folder = tmp_path / f"client{c}"
        folder.mkdir()
        uploads = [str(folder / "example.png")]
        os.link(example, uploads[0])
        uploads += [_photo(folder, f"c{c}u{u}.png", 100 + c, u, sizes[(c + u) % 5])
                    for u in range(1, 5)]
        plans.append([_photo(folder, f"warm{c}.png", 200 + c, 0, sizes[c % 5]), *uploads])
    for (c, u), path in zip([(1, 2), (4, 3), (6, 1)], bad, strict=True):
        plans[c][1 + u] = path

    def user(c: int, start: threading.Barrier):
        try:
            client = _client(url, tmp_path / f"client{c}" / "answers")
            warm = _ask(client, plans[c][0])[0]
        except BaseException:
            start.abort()  # the others stop waiting; the main thread shows this error
            raise
        start.wait()  # the memory is measured here, after every client's first answer
        start.wait()
        asked = [_post(url, path) if path == huge else _ask(client, path)
                 for path in plans[c][1:]]
        good = [a for a, _ in asked if isinstance(a, tuple)]
        recolour = client.predict(gradio_client.handle_file(good[-1][3]), "gray",
                                  api_name="/recolor")
        return warm, asked, recolour

    process = psutil.Process()
    with _serving(handler) as url, _FolderWatch(results) as watch:
        start = threading.Barrier(9)
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            users = [pool.submit(user, c, start) for c in range(8)]
            try:
                start.wait(timeout=DEADLINE)
            except threading.BrokenBarrierError:  # a client failed: show its error
                for error in (u.exception(timeout=DEADLINE) for u in users):
                    if not isinstance(error, threading.BrokenBarrierError | None):
                        raise error from None
                raise
            rss_before = process.memory_info().rss
            began = time.perf_counter()
            start.wait()
            done = [u.result(timeout=5 * DEADLINE) for u in users]
            wall = time.perf_counter() - began
        rss_after = process.memory_info().rss

    reference = inference.Predictor(model)
    latencies, answered, refused = [], 0, 0
    for plan, (warm, asked, recolour) in zip(plans, done, strict=True):
        _check(warm, plan[0], reference, 64)
        for path, (answer, seconds) in zip(plan[1:], asked, strict=True):
            latencies.append(seconds)
            answered += 1
            if path in bad:
                refused += 1
                if path == huge:
                    assert answer.status_code == 413 and bad[path] in answer.text, answer.text
                else:
                    assert isinstance(answer, AppError), (path, answer)
                    assert answer.message.startswith(bad[path]), answer.message
            else:
                _check(answer, path, reference, 64)
        last = [a for a, _ in asked if isinstance(a, tuple)][-1]
        np.testing.assert_array_equal(cv2.imread(recolour)[..., ::-1],
                                      demo.colorize(np.load(last[3]), "gray"))
    assert (answered, refused) == (40, 3)
    assert max(latencies) < DEADLINE
    assert 0 < watch.most <= demo.KEEP_RESULTS
    assert len(os.listdir(results)) == demo.KEEP_RESULTS
    growth = (rss_after - rss_before) / 2**20
    assert growth < 64, f"the process grew by {growth:.0f} MiB over the load"
    p50, p95 = statistics.median(latencies), np.percentile(latencies, 95)
    print(f"demo load: {answered} uploads ({refused} refused) + 8 recolours from 8 clients in "
          f"{wall:.1f} s; latency p50 {p50:.2f} s, p95 {p95:.2f} s, max {max(latencies):.2f} "
          f"s; RSS {rss_before / 2**20:.0f} -> {rss_after / 2**20:.0f} MiB; result folders at "
          f"most {watch.most}")


# The queue's bound and Gradio's cache -------------------------------------------------------


def test_a_full_queue_refuses_at_once_and_the_others_are_served(tiny_models, tmp_path,
                                                               gradio_tmp, monkeypatch):
    """queue_size 1: while one request runs (held inside the model) and one waits, a third
    is refused with "Queue is full" at once; the two are then answered, and so is the
    next."""
    model = tiny_models.loaded("depthnet")
    handler = demo.DepthDemo(model, out_dir=str(tmp_path / "results"))
    entered, release = threading.Event(), threading.Event()
    depth = handler.depth

    def held(photo):
        entered.set()
        assert release.wait(DEADLINE)
        return depth(photo)

    monkeypatch.setattr(handler, "depth", held)
    photos = [_photo(tmp_path, f"q{i}.png", 30 + i, i, SIZES["depthnet"][i]) for i in range(4)]
    with _serving(handler, queue_size=1) as url:
        clients = [_client(url, tmp_path / f"client{i}") for i in range(4)]
        running = clients[0].submit(gradio_client.handle_file(photos[0]), "inferno",
                                    api_name="/depth")
        assert entered.wait(DEADLINE)
        waiting = clients[1].submit(gradio_client.handle_file(photos[1]), "inferno",
                                    api_name="/depth")
        deadline = time.monotonic() + DEADLINE
        while waiting.status().code != gradio_client.utils.Status.IN_QUEUE:
            assert time.monotonic() < deadline, waiting.status()
            time.sleep(0.01)
        start = time.perf_counter()
        with pytest.raises(gradio_client.utils.QueueError, match="Queue is full"):
            clients[2].predict(gradio_client.handle_file(photos[2]), "inferno",
                               api_name="/depth")
        refused_in = time.perf_counter() - start
        release.set()
        answers = [running.result(timeout=DEADLINE), waiting.result(timeout=DEADLINE),
                   _ask(clients[3], photos[3])[0]]
    assert refused_in < 10  # told at once, not after the queue
    with pytest.raises(ValueError, match="queue_size must be positive, got 0"):
        handler.build(queue_size=0)
    reference = inference.Predictor(model)
    for photo, answer in zip([photos[0], photos[1], photos[3]], answers, strict=True):
        _check(answer, photo, reference, 64)


def test_gradio_deletes_its_copies_after_cache_seconds(tiny_models, tmp_path, gradio_tmp,
                                                       monkeypatch):
    """Gradio's copies of an upload and its results are deleted CACHE_SECONDS later (3 s
    here), so its cache does not grow without end; a recolour of a deleted depth is told to
    estimate again. (Gradio's file input also leaves an empty file in the cache for each
    request, which it never deletes: 0 bytes, and not ours to fix.)"""
    monkeypatch.setattr(demo, "CACHE_SECONDS", 3)
    model = tiny_models.loaded("depthnet")
    handler = demo.DepthDemo(model, out_dir=str(tmp_path / "results"))
    photo = _photo(tmp_path, "cached.png", 40, 0, SIZES["depthnet"][0])

    def cached() -> list[str]:
        """The names of the files with content in Gradio's cache."""
        return [name for folder, _, files in os.walk(gradio_tmp) for name in files
                if os.path.getsize(os.path.join(folder, name))]

    with _serving(handler) as url:
        answer = _ask(_client(url, tmp_path / "client"), photo)[0]
        _check(answer, photo, inference.Predictor(model), 64)
        assert {"cached.png", "cached_depth.npy", "cached_colour.png"} <= set(cached())
        deadline = time.monotonic() + 30
        while cached():
            assert time.monotonic() < deadline, cached()
            time.sleep(0.2)
    with pytest.raises(gr.Error, match="cached_depth.npy: the depth to recolour is gone"):
        handler.recolor_page(os.path.join(gradio_tmp, "cached_depth.npy"), "gray")


def test_cli_queue_size_flag(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"is full (default {demo.QUEUE_SIZE})" in out  # the help states the default
    args = cli.build_parser().parse_args(["demo", "--params", "export", "--queue-size", "3"])
    assert args.queue_size == 3
    assert cli.build_parser().parse_args(["demo", "--params", "export"]).queue_size is None
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["demo", "--params", "export", "--queue-size", "0"])
