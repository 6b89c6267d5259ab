"""Paths that may be local files or cloud URLs (gs://, s3://, az://, hf://): the one layer
through which the project reads and writes user paths.

Local paths go through the OS; URLs go through etils.epath, the layer orbax and TFDS use,
so a workdir or a data_dir in a bucket is read and written by the same client everywhere.
epath picks its backend: TensorFlow's GCS client when TF is installed (the default here),
or fsspec/gcsfs with EPATH_USE_TF=false (docs/tpu.md).

Object stores have no folders and no appends: `makedirs` only checks that the bucket
exists, `append_text` rewrites the object, `move_tree` copies then deletes. A missing bucket
or object is a FileNotFoundError naming the URL.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import posixpath
import re
import shutil
import tempfile
from collections.abc import Iterator

_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$")
_WILDCARDS = re.compile(r"[*?[]")


def is_url(path: str | os.PathLike) -> bool:
    """True for `scheme://...` (gs://bucket/run), False for a local path."""
    return _URL.match(os.fspath(path)) is not None


def bucket_of(url: str) -> str:
    """gs://bucket/a/b -> gs://bucket."""
    scheme, rest = _URL.match(url).groups()
    return f"{scheme}://{rest.split('/', 1)[0]}"


def normalize(path: str | os.PathLike) -> str:
    """A local path made absolute (with ~ expanded); a URL with its slashes tidied."""
    path = os.fspath(path)
    if is_url(path):
        scheme, rest = _URL.match(path).groups()
        return f"{scheme}://" + "/".join(part for part in rest.split("/") if part)
    return os.path.abspath(os.path.expanduser(path))


def expand(path: str | os.PathLike) -> str:
    """`~` expanded in a local path; a URL unchanged."""
    path = os.fspath(path)
    return path if is_url(path) else os.path.expanduser(path)


def join(base: str | os.PathLike, *parts: str) -> str:
    base = os.fspath(base)
    if is_url(base):
        return posixpath.join(base, *parts)
    return os.path.join(base, *parts)


def dirname(path: str) -> str:
    """The folder of a path; a bucket is its own folder."""
    if is_url(path):
        scheme, rest = _URL.match(path).groups()
        rest = rest.rstrip("/")
        return f"{scheme}://{rest.rsplit('/', 1)[0]}"
    return os.path.dirname(path)


def basename(path: str) -> str:
    return posixpath.basename(path.rstrip("/")) if is_url(path) else os.path.basename(path)


def relpath(path: str, start: str) -> str:
    """`path` relative to `start` ('/'-separated for URLs)."""
    if is_url(path):
        return posixpath.relpath(_URL.match(path).group(2), _URL.match(start).group(2))
    return os.path.relpath(path, start)


def _epath(url: str):
    from etils import epath

    return epath.Path(url)


def _not_found(err: BaseException) -> bool:
    # gcsfs raises FileNotFoundError; TF's client tf.errors.NotFoundError.
    return isinstance(err, FileNotFoundError) or type(err).__name__ == "NotFoundError"


def missing(url: str, what: str = "object") -> FileNotFoundError:
    """The error for a URL that is not there: says whether the bucket itself is missing."""
    if not bucket_exists(url):
        return FileNotFoundError(
            f"{url}: the bucket {bucket_of(url)} does not exist or these credentials cannot "
            "see it (create it first, e.g. `gcloud storage buckets create`)")
    return FileNotFoundError(f"{url}: no such {what}")


@contextlib.contextmanager
def _naming(path: str, what: str = "object") -> Iterator[None]:
    """Turns a backend's not-found error on a URL into one that names the URL."""
    try:
        yield
    except Exception as err:
        if is_url(path) and _not_found(err):
            raise missing(path, what) from err
        raise


def bucket_exists(url: str) -> bool:
    return _epath(bucket_of(url)).exists()


def require_bucket(path: str) -> None:
    """For a URL whose bucket is missing, the FileNotFoundError saying so (`missing`);
    nothing for a local path or a bucket that exists."""
    if is_url(path) and not bucket_exists(path):
        raise missing(path)


def exists(path: str) -> bool:
    return _epath(path).exists() if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    """A folder, or for a URL a prefix with objects under it."""
    return _epath(path).is_dir() if is_url(path) else os.path.isdir(path)


def isfile(path: str) -> bool:
    if is_url(path):
        p = _epath(path)
        return p.exists() and not p.is_dir()
    return os.path.isfile(path)


def listdir(path: str) -> list[str]:
    """Names (not paths) in a folder or under a URL prefix, sorted."""
    if is_url(path):
        with _naming(path, "folder"):
            return sorted(p.name for p in _epath(path).iterdir())
    return sorted(os.listdir(path))


def glob(pattern: str) -> list[str]:
    """Paths matching a shell pattern, sorted; `**` matches any number of folders."""
    if not is_url(pattern):
        import glob as glob_lib

        return sorted(glob_lib.glob(pattern, recursive=True))
    parts = pattern.split("/")
    first = next((i for i, part in enumerate(parts) if _WILDCARDS.search(part)), None)
    if first is None:
        return [pattern] if exists(pattern) else []
    base, wanted = "/".join(parts[:first]), parts[first:]
    if "**" not in wanted:
        return sorted(str(p) for p in _epath(base).glob("/".join(wanted)))
    # One recursive listing under base (epath refuses `**`), matched here.
    return [f for f in walk_files(base) if _matches(relpath(f, base).split("/"), wanted)]


def _matches(names: list[str], patterns: list[str]) -> bool:
    if not patterns:
        return not names
    if patterns[0] == "**":
        return any(_matches(names[i:], patterns[1:]) for i in range(len(names) + 1))
    return (bool(names) and fnmatch.fnmatchcase(names[0], patterns[0])
            and _matches(names[1:], patterns[1:]))


def walk_files(path: str) -> list[str]:
    """Every file under a folder or URL prefix (recursively), sorted."""
    if is_url(path):
        scheme = _URL.match(path).group(1)
        found = []
        for root, _, files in _epath(path).walk():
            root = str(root) if is_url(str(root)) else f"{scheme}://{root}"  # fsspec drops it
            found += [join(root, name) for name in files]
        return sorted(found)
    return sorted(os.path.join(root, name) for root, _, files in os.walk(path)
                  for name in files)


def getsize(path: str) -> int:
    """Bytes of a file, or of every file under a folder."""
    if isdir(path):
        return sum(getsize(f) for f in walk_files(path))
    if is_url(path):
        with _naming(path):
            return _epath(path).stat().length
    return os.path.getsize(path)


def makedirs(path: str) -> None:
    """A local folder (with parents); for a URL, a FileNotFoundError unless the bucket
    exists (object stores have no folders, and some clients would create the bucket). A
    local path that is, or lies under, an existing file is a ValueError naming the file."""
    if is_url(path):
        require_bucket(path)
        _epath(path).mkdir(parents=True, exist_ok=True)
        return
    parent = os.path.abspath(path)
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        where = "is" if parent == os.path.abspath(path) else f"lies under {parent!r}, which is"
        raise ValueError(f"{path!r} {where} a file, not a folder: give a folder")
    os.makedirs(path, exist_ok=True)


def read_bytes(path: str) -> bytes:
    if is_url(path):
        with _naming(path):
            return _epath(path).read_bytes()
    with open(path, "rb") as f:
        return f.read()


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_bytes(path: str, data: bytes) -> None:
    """Write a whole file (a local file's folder is made; an object appears whole)."""
    if is_url(path):
        with _naming(path):
            with _epath(path).open("wb") as f:
                f.write(data)
        return
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def append_text(path: str, text: str) -> None:
    """Append to a local file; an object is rewritten with `text` added (no appends)."""
    if is_url(path):
        old = read_text(path) if exists(path) else ""
        write_text(path, old + text)
        return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(text)


def remove(path: str) -> None:
    if is_url(path):
        with _naming(path):
            _epath(path).unlink()
    else:
        os.remove(path)


def rmtree(path: str) -> None:
    """Delete a folder or every object under a prefix; nothing when there is none."""
    if is_url(path):
        if exists(path):
            _epath(path).rmtree(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def copy_file(src: str, dst: str) -> None:
    """Copy one file between any two places (local or URL)."""
    if not is_url(src) and not is_url(dst):
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        shutil.copyfile(src, dst)
    else:
        write_bytes(dst, read_bytes(src))


def copy_tree(src: str, dst: str) -> list[str]:
    """Copy every file under `src` to the same place under `dst`; returns the new paths."""
    copied = []
    for file in walk_files(src):
        target = join(dst, *relpath(file, src).split(os.sep if not is_url(src) else "/"))
        copy_file(file, target)
        copied.append(target)
    return copied


def move_tree(src: str, dst: str) -> None:
    """Rename a folder; under a URL prefix, copy every object then delete the originals."""
    if is_url(src) or is_url(dst):
        copy_tree(src, dst)
        rmtree(src)
    else:
        os.replace(src, dst)


@contextlib.contextmanager
def local_file(path: str, suffix: str = "") -> Iterator[str]:
    """A local path with `path`'s content, for libraries that only open files (a video
    decoder): the path itself when local, else a temporary download of the same name."""
    if not is_url(path):
        yield path
        return
    if not isfile(path):
        raise missing(path)
    with tempfile.TemporaryDirectory(prefix="depthsense-") as tmp:
        local = os.path.join(tmp, basename(path) + suffix)
        with _naming(path), _epath(path).open("rb") as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, 16 << 20)  # streamed: a file may be gigabytes
        yield local


@contextlib.contextmanager
def local_folder(path: str) -> Iterator[str]:
    """A local folder with `path`'s files, for a library that only reads folders (a
    SavedModel): the folder itself when local, else a temporary download of the tree."""
    if not is_url(path):
        yield path
        return
    if not isdir(path):
        raise missing(path, "folder")
    with tempfile.TemporaryDirectory(prefix="depthsense-") as tmp:
        copy_tree(path, tmp)
        yield tmp


@contextlib.contextmanager
def staged_folder(path: str) -> Iterator[str]:
    """A local folder to write into for a library that only writes files (a SavedModel):
    `path` itself when local, else a temporary folder whose files are uploaded to `path`
    when the block ends without an error."""
    if not is_url(path):
        os.makedirs(path, exist_ok=True)
        yield path
        return
    makedirs(path)
    with tempfile.TemporaryDirectory(prefix="depthsense-") as tmp:
        yield tmp
        copy_tree(tmp, path)
