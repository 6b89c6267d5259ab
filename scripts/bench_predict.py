"""Batch prediction over a folder of photos: images/s and peak memory of `predict_files` with
reading and writing in threads, against the plain loop (`--workers 0`: read, predict and
write one batch after another), on generated JPEGs (docs/benchmarks.md, "Batch prediction").

    python scripts/bench_predict.py --params exported/ --photos 500 --workers 0,4
    python scripts/bench_predict.py --config base --photos 200 --size 384   # random weights

The photos are rendered synthetic scenes (`--photo-size`, JPEG quality 90) in a temporary
folder, or `--photos-dir` (kept, and reused when it holds enough). Each `--workers` value
runs in a child process of its own: it loads the model, compiles it on one batch, then
predicts every photo into a fresh folder; images/s counts that run only, and the peak RSS
is the high-water mark of the timed run alone (Linux: VmHWM, reset after the warm-up
through /proc/self/clear_refs; elsewhere the process's), beside the RSS before it. Prints
a markdown table and the speed-up over the first `--workers` value.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _rss_mib(field: str) -> float | None:
    """This process's VmRSS (now) or VmHWM (peak) in MiB from /proc; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Start VmHWM again from the current RSS (Linux >= 4.0); False where it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    """The peak RSS: VmHWM, else getrusage's (since the process started)."""
    peak = _rss_mib("VmHWM")
    if peak is not None:
        return peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1 << 20 if sys.platform == "darwin" else 1 << 10)


def _model(args: argparse.Namespace):
    from depthsense_jax import inference

    if not args.config:
        return inference.load_model(args.workdir, args.params, args.checkpoint)
    import jax

    from depthsense_jax.config import load_config
    from depthsense_jax.models import registry

    config = load_config(args.config, [])
    _, variables = registry.create_variables(config.model, jax.random.PRNGKey(0))
    return inference.LoadedModel(config.model, variables, config.image_size)


def _write_photos(folder: str, count: int, height: int, width: int) -> list[str]:
    """`count` rendered scenes as JPEGs in `folder` (those already there are kept)."""
    import cv2
    import numpy as np

    from depthsense_jax.data.synthetic import render_scene

    os.makedirs(folder, exist_ok=True)
    paths = []
    for i in range(count):
        path = os.path.join(folder, f"photo_{i:05d}.jpg")
        if not os.path.exists(path):
            image = np.asarray(render_scene(0, i, size=(height, width))["image"])
            if image.dtype != np.uint8:
                image = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
            cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def _child(args: argparse.Namespace) -> None:
    """One run: warm up on one batch, then time every photo; prints one JSON line."""
    import depthsense_jax

    depthsense_jax.configure()
    from depthsense_jax import inference

    paths = sorted(os.path.join(args.photos_dir, n) for n in os.listdir(args.photos_dir)
                   if n.endswith(".jpg"))[:args.photos]
    model = _model(args)
    predictor = inference.Predictor(model)
    formats = args.formats.split(",")
    options = dict(size=args.size, formats=formats, batch_size=args.batch,
                   workers=args.workers[0], predictor=predictor,
                   log=lambda line: print(line, file=sys.stderr))
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as out:
        inference.predict_files(model, paths[:args.batch], os.path.join(out, "warm"),
                                **options)
        warm_peak, before = _peak_rss_mib(), _rss_mib("VmRSS")
        reset = _reset_peak()
        start = time.perf_counter()
        summary = inference.predict_files(model, paths, os.path.join(out, "run"), **options)
        seconds = time.perf_counter() - start
        run_peak = _peak_rss_mib()
    print(json.dumps({"workers": args.workers[0], "photos": len(paths),
                      "written": len(summary.written), "seconds": seconds,
                      "images_per_s": len(paths) / seconds,
                      "rss_before_run_mib": before, "peak_rss_warmup_mib": warm_peak,
                      "peak_rss_run_mib": run_peak, "peak_of_run_alone": reset}))


def _workers(text: str) -> list[int]:
    values = [int(v) for v in text.split(",")]
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"--workers: integers >= 0, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--params", help="an export folder or params file")
    source.add_argument("--workdir", help="a training workdir")
    source.add_argument("--config", help="a config name or file: its model, random weights")
    parser.add_argument("--checkpoint", default="latest", help="with --workdir")
    parser.add_argument("--photos", type=int, default=200, help="how many photos")
    parser.add_argument("--photo-size", default="240x320", help="HxW of the photos")
    parser.add_argument("--photos-dir", help="keep the photos here (default: a temp folder)")
    parser.add_argument("--size", type=int, help="short side the model sees (default: "
                        "the model's training size)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=_workers, default=[0, 4],
                        help="comma-separated; each a child process (default 0,4)")
    parser.add_argument("--formats", default="png16,color")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if args.photos < args.batch:
        parser.error(f"--photos must be at least --batch ({args.batch})")
    height, width = (int(v) for v in args.photo_size.split("x"))
    with tempfile.TemporaryDirectory(prefix="bench-photos-") as tmp:
        folder = args.photos_dir or tmp
        _write_photos(folder, args.photos, height, width)
        argv = sys.argv[1:]
        for flag in ("--workers", "--photos-dir", "--json"):
            argv = _without(argv, flag)
        results = []
        for workers in args.workers:
            command = [sys.executable, os.path.abspath(__file__), *argv, "--workers",
                       str(workers), "--photos-dir", folder, "--child"]
            done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = results[0]["images_per_s"]
    print(f"{args.photos} photos of {args.photo_size}, batch {args.batch}, formats "
          f"{args.formats}, size {args.size or 'the model default'}")
    alone = all(r["peak_of_run_alone"] for r in results)
    print(f"| workers | images/s | vs workers {results[0]['workers']} | RSS before the run "
          f"MiB | peak RSS {'during the run' if alone else 'of the process'} MiB |")
    print("|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['workers']} | {r['images_per_s']:.1f} | {r['images_per_s'] / base:.2f}x "
              f"| {r['rss_before_run_mib'] or float('nan'):.0f} | "
              f"{r['peak_rss_run_mib']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "results": results}, f, indent=1)


def _without(argv: list[str], flag: str) -> list[str]:
    """argv without `flag` and its value (as `--flag V` or `--flag=V`)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == flag:
            skip = True
        elif not item.startswith(flag + "="):
            out.append(item)
    return out


if __name__ == "__main__":
    main()
