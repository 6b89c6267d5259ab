"""The storage layer on a local folder and on a bucket of a GCS API on localhost (the
emulator of conftest's `gcs` fixture), through both of epath's GCS clients: the same calls
give the same results everywhere, and a missing bucket or object is one error naming the
URL."""

import uuid

import pytest

from depthsense_jax import storage


@pytest.fixture(params=["local", "gs-gcsfs", "gs-tf"])
def root(request, tmp_path, monkeypatch):
    """A local folder, or a folder in a bucket reached by epath through gcsfs or through
    TensorFlow's GCS client (its default when TF is installed)."""
    if request.param == "local":
        return str(tmp_path / "root")
    gcs = request.getfixturevalue("gcs")
    from etils.epath import gpath

    monkeypatch.setenv("EPATH_USE_TF", "false" if request.param == "gs-gcsfs" else "true")
    gpath._is_tf_installed.cache_clear()  # epath caches its choice per process
    request.addfinalizer(gpath._is_tf_installed.cache_clear)
    return gcs.bucket(f"b-{uuid.uuid4().hex[:12]}") + "/root"


def test_paths_and_urls_are_told_apart():
    assert storage.is_url("gs://bucket/run") and storage.is_url("s3://b/k")
    assert not storage.is_url("/tmp/run") and not storage.is_url("runs/gs:/x")
    assert storage.normalize("gs://bucket//run/") == "gs://bucket/run"
    assert storage.join("gs://bucket/run", "a", "b.json") == "gs://bucket/run/a/b.json"
    assert storage.dirname("gs://bucket/run/a.json") == "gs://bucket/run"
    assert storage.dirname("gs://bucket") == "gs://bucket"
    assert storage.basename("gs://bucket/run/") == "run"
    assert storage.relpath("gs://bucket/run/a/b.png", "gs://bucket/run") == "a/b.png"
    assert storage.bucket_of("gs://bucket/run/x") == "gs://bucket"
    assert storage.expand("gs://bucket/~x") == "gs://bucket/~x"


def test_write_read_list_glob_walk(root):
    storage.makedirs(root)
    storage.write_text(storage.join(root, "config.json"), '{"a": 1}')
    storage.write_bytes(storage.join(root, "sub", "deep", "x.png"), b"\x89PNG")
    storage.write_bytes(storage.join(root, "sub", "y.jpg"), b"jpg")
    assert storage.read_text(storage.join(root, "config.json")) == '{"a": 1}'
    assert storage.read_bytes(storage.join(root, "sub", "deep", "x.png")) == b"\x89PNG"
    assert storage.exists(storage.join(root, "config.json"))
    assert storage.isfile(storage.join(root, "config.json"))
    assert not storage.isdir(storage.join(root, "config.json"))
    assert storage.isdir(storage.join(root, "sub")) and not storage.isfile(
        storage.join(root, "sub"))
    assert not storage.exists(storage.join(root, "nothing"))
    assert storage.listdir(root) == ["config.json", "sub"]
    assert storage.glob(storage.join(root, "sub", "*.jpg")) == [storage.join(root, "sub",
                                                                              "y.jpg")]
    assert storage.glob(storage.join(root, "**", "*.png")) == [
        storage.join(root, "sub", "deep", "x.png")]
    assert storage.glob(storage.join(root, "**", "*.*")) == sorted([
        storage.join(root, "config.json"), storage.join(root, "sub", "deep", "x.png"),
        storage.join(root, "sub", "y.jpg")])
    assert storage.walk_files(storage.join(root, "sub")) == [
        storage.join(root, "sub", "deep", "x.png"), storage.join(root, "sub", "y.jpg")]
    assert storage.getsize(storage.join(root, "sub")) == 7


def test_append_copy_move_and_delete(root, tmp_path):
    log = storage.join(root, "metrics.jsonl")
    storage.append_text(log, "1\n")
    storage.append_text(log, "2\n")
    assert storage.read_text(log) == "1\n2\n"
    storage.write_bytes(storage.join(root, "ckpt", "6", "a"), b"a")
    storage.write_bytes(storage.join(root, "ckpt", "6", "d", "b"), b"b")
    storage.move_tree(storage.join(root, "ckpt", "6"), storage.join(root, "ckpt", "6.bad"))
    assert not storage.exists(storage.join(root, "ckpt", "6"))
    assert storage.listdir(storage.join(root, "ckpt")) == ["6.bad"]
    assert storage.read_bytes(storage.join(root, "ckpt", "6.bad", "d", "b")) == b"b"
    local = str(tmp_path / "copy")
    storage.copy_tree(storage.join(root, "ckpt"), local)
    assert storage.walk_files(local) == [f"{local}/6.bad/a", f"{local}/6.bad/d/b"]
    with storage.local_file(storage.join(root, "ckpt", "6.bad", "a")) as path:
        assert open(path, "rb").read() == b"a"
    with storage.staged_folder(storage.join(root, "out")) as folder:
        with open(f"{folder}/model.bin", "wb") as f:
            f.write(b"weights")
    assert storage.read_bytes(storage.join(root, "out", "model.bin")) == b"weights"
    storage.remove(log)
    storage.rmtree(storage.join(root, "ckpt"))
    assert storage.listdir(root) == ["out"]
    storage.rmtree(storage.join(root, "never-there"))  # nothing to do is not an error


def test_missing_object_names_the_url(root):
    url = storage.join(root, "no", "such.png")
    with pytest.raises(FileNotFoundError, match=f"{url}"):
        storage.read_bytes(url)


def test_missing_bucket_is_one_clear_error(gcs):
    url = f"gs://no-such-bucket-{uuid.uuid4().hex[:8]}/run"
    for call in (lambda: storage.makedirs(url),
                 lambda: storage.read_bytes(url + "/config.json"),
                 lambda: storage.write_text(url + "/config.json", "{}"),
                 lambda: storage.listdir(url)):
        with pytest.raises(FileNotFoundError, match=f"{url}.*bucket .* does not exist"):
            call()
    # ... and nothing created it on the way (some clients make the bucket on mkdir).
    assert not storage.bucket_exists(url)
