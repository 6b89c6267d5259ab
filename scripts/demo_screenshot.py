"""docs/demo.png: the `depthsense demo` page with a trained model and a rendered scene.

    python scripts/demo_screenshot.py [WORKDIR] [OUT_PNG]   # runs/quickstart, docs/demo.png

The browser test's steps (tests/test_demo.py: Debian's Chromium driven by Playwright) with
the trained model of WORKDIR in place of the test's random tiny one.
"""

import os
import socket
import sys
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import cv2  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from depthsense_jax import demo, inference  # noqa: E402
from depthsense_jax.data.synthetic import render_scene  # noqa: E402

workdir = sys.argv[1] if len(sys.argv) > 1 else "runs/quickstart"
out = sys.argv[2] if len(sys.argv) > 2 else "docs/demo.png"
folder = tempfile.mkdtemp(prefix="demo-shot-")
scene = os.path.join(folder, "scene.png")
cv2.imwrite(scene, render_scene(7, 1, (384, 512))["image"][..., ::-1])
example = os.path.join(folder, "another_scene.png")
cv2.imwrite(example, render_scene(7, 0, (384, 512))["image"][..., ::-1])

model = inference.load_model(workdir=workdir)
app = demo.build_app(model, examples=[scene, example])
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
_, url, _ = app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True,
                       quiet=True, ssr_mode=False)
try:
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(url)
        page.set_input_files("#photo-file input[type=file]", scene)
        page.wait_for_function("() => { const img = document.querySelector('#depth img');"
                               " return img && img.complete && img.naturalWidth > 0; }",
                               timeout=120_000)
        page.wait_for_timeout(500)  # let the status overlays fade
        page.screenshot(path=out, full_page=True)
        browser.close()
finally:
    app.close()
print(f"wrote {out} ({workdir}, short side {model.image_size})")
