"""A file-backed object store with the guarantees tansu's S3 engine relies on.

Each object is a plain file `<root>/<bucket>/<key>` (keys with `/` become folders), so the data
folder stays inspectable. What s3rver 3.7.1 lacked, and tansu 0.6 needs to never overwrite a
partition (see docs/decisions.md, "Local broker"):

* conditional writes: `If-None-Match: *` fails when the key exists, `If-Match: <etag>` fails
  unless the current object has that ETag (both as PreconditionFailed, i.e. HTTP 412);
* atomic writes: content goes to a temporary file that is renamed over the key only when the
  whole body arrived, so a reader or a crash never sees a truncated object and an aborted upload
  changes nothing;
* one writer at a time: every method is synchronous and the server calls them from its single
  event-loop thread, so a precondition check and the rename that follows cannot interleave with
  another request.

ETags are the hex MD5 of the content (as S3 does for single-part uploads), cached per path and
re-validated against the file's (inode, mtime, size) so listing does not re-read every object.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

_UPLOADS = ".uploads"  # temporary files, beside (not inside) the buckets so listings never see them


class StoreError(Exception):
    """Base of the errors the HTTP layer maps to S3 error responses."""

    code = "InternalError"
    status = 500


class NoSuchBucket(StoreError):
    """The bucket was never configured."""

    code = "NoSuchBucket"
    status = 404


class NoSuchKey(StoreError):
    """No object under that key."""

    code = "NoSuchKey"
    status = 404


class PreconditionFailed(StoreError):
    """An If-Match / If-None-Match condition does not hold; nothing was written."""

    code = "PreconditionFailed"
    status = 412


class InvalidKey(StoreError):
    """A key this store cannot hold as a file (empty, `.`/`..` segments, a file/folder clash)."""

    code = "InvalidArgument"
    status = 400


@dataclass(frozen=True)
class ObjectInfo:
    """What a listing or a HEAD reports about one object."""

    key: str
    size: int
    etag: str  # quoted, as in HTTP
    mtime_ns: int


def _valid_bucket(name: str) -> bool:
    return bool(name) and name[0] not in "._" and all(c.isalnum() or c in "-." for c in name)


class FileStore:
    """Buckets as folders under `root`; see the module docstring for the guarantees."""

    def __init__(self, root: Path, buckets: Iterable[str] = ()) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._uploads = root / _UPLOADS
        self._uploads.mkdir(exist_ok=True)
        # Left behind only by a crash between write and rename: never part of any object.
        for stale in self._uploads.iterdir():
            with contextlib.suppress(OSError):
                stale.unlink()
        self._etags: dict[Path, tuple[tuple[int, int, int], str]] = {}
        for bucket in buckets:
            self.create_bucket(bucket)

    # -- buckets -----------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket folder (idempotent); raises InvalidKey for names S3 would refuse."""
        if not _valid_bucket(bucket):
            raise InvalidKey(f"invalid bucket name {bucket!r}")
        (self.root / bucket).mkdir(exist_ok=True)

    def has_bucket(self, bucket: str) -> bool:
        """True when the bucket exists."""
        return _valid_bucket(bucket) and (self.root / bucket).is_dir()

    def buckets(self) -> list[str]:
        """Every bucket, sorted."""
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _valid_bucket(p.name))

    def _bucket_dir(self, bucket: str) -> Path:
        if not self.has_bucket(bucket):
            raise NoSuchBucket(f"bucket {bucket!r} does not exist")
        return self.root / bucket

    def _path(self, bucket: str, key: str) -> Path:
        base = self._bucket_dir(bucket)
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise InvalidKey(f"key {key!r} cannot be stored (empty, '.', '..' or '//' segments)")
        return base.joinpath(*parts)

    # -- objects -----------------------------------------------------------------------------

    def _etag(self, path: Path, st: os.stat_result, content: bytes | None = None) -> str:
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self._etags.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        if content is None:
            content = path.read_bytes()
        etag = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        self._etags[path] = (stamp, etag)
        return etag

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Metadata of one object; raises NoSuchKey."""
        path = self._path(bucket, key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchKey(f"no object {key!r}") from None
        if not path.is_file():
            raise NoSuchKey(f"no object {key!r}")
        return ObjectInfo(key, st.st_size, self._etag(path, st), st.st_mtime_ns)

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        """Metadata and content of one object, read from one open file (so they always match)."""
        path = self._path(bucket, key)
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                content = f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NoSuchKey(f"no object {key!r}") from None
        return ObjectInfo(key, len(content), self._etag(path, st, content), st.st_mtime_ns), content

    def _current_etag(self, path: Path) -> str | None:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._etag(path, st) if path.is_file() else None

    def put(self, bucket: str, key: str, content: bytes, *, if_match: str | None = None,
            if_none_match: str | None = None) -> ObjectInfo:
        """Store `content` under `key` atomically, honouring the HTTP preconditions.

        `if_none_match="*"`: only when no object exists; `if_match=<etag>` (or `*`): only when the
        current object has that ETag (or exists). Raises PreconditionFailed and writes nothing otherwise.
        """
        path = self._path(bucket, key)
        current = self._current_etag(path)
        if if_none_match is not None and current is not None and etag_matches(if_none_match, current):
            raise PreconditionFailed(f"{key!r} already exists (If-None-Match: {if_none_match})")
        if if_match is not None and (current is None or not etag_matches(if_match, current)):
            raise PreconditionFailed(f"{key!r} is at {current or 'nothing'}, not {if_match} (If-Match)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise InvalidKey(f"key {key!r} would nest under an existing object") from None
        if path.is_dir():
            raise InvalidKey(f"key {key!r} is a prefix of other objects")
        fd, tmp = tempfile.mkstemp(dir=self._uploads, prefix="put-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(content)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        st = path.stat()
        etag = f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'
        self._etags[path] = ((st.st_ino, st.st_mtime_ns, st.st_size), etag)
        return ObjectInfo(key, len(content), etag, st.st_mtime_ns)

    def delete(self, bucket: str, key: str) -> None:
        """Remove one object (absent is fine, as in S3) and the folders it leaves empty."""
        path = self._path(bucket, key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._etags.pop(path, None)
        base = self.root / bucket
        parent = path.parent
        while parent != base:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` and sorts after `start_after`, in key order."""
        base = self._bucket_dir(bucket)
        # Walk only the deepest folder the prefix names, not the whole bucket.
        head, _, _ = prefix.rpartition("/")
        start = base.joinpath(*head.split("/")) if head else base
        if head and any(p in ("", ".", "..") for p in head.split("/")):
            return
        keys: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(base).as_posix()
            rel = "" if rel == "." else rel + "/"
            dirnames[:] = [d for d in dirnames if (rel + d + "/").startswith(prefix)
                           or prefix.startswith(rel + d + "/")]
            keys.extend((rel + name, Path(dirpath, name)) for name in filenames if (rel + name).startswith(prefix))
        for key, path in sorted(keys, key=lambda kp: kp[0].encode()):
            if key.encode() <= start_after.encode():
                continue
            try:
                st = path.stat()
                yield ObjectInfo(key, st.st_size, self._etag(path, st), st.st_mtime_ns)
            except FileNotFoundError:
                continue  # deleted while listing


_S3RVER_OBJECT = "._S3rver_object"
_S3RVER_SIDE_FILES = ("._S3rver_metadata.json", "._S3rver_object.md5")


def adopt_s3rver_layout(root: Path) -> int:
    """Convert a data folder written by npm s3rver (the previous local store) in place; returns objects moved.

    s3rver kept `<key>._S3rver_object` plus metadata/md5 side files; this store keeps `<key>` itself.
    An object that also exists in the new layout keeps the new one.
    """
    moved = 0
    if not root.is_dir():
        return 0
    for path in sorted(root.rglob("*" + _S3RVER_OBJECT)):
        target = path.with_name(path.name.removesuffix(_S3RVER_OBJECT))
        if not target.exists():
            path.rename(target)
            moved += 1
        else:
            path.unlink()
        for suffix in _S3RVER_SIDE_FILES:
            target.with_name(target.name + suffix).unlink(missing_ok=True)
    return moved


def etag_matches(condition: str, etag: str) -> bool:
    """RFC 9110 list of entity tags (or `*`); weak/strong and quoting differences are ignored."""
    wanted = {t.strip().removeprefix("W/").strip('"') for t in condition.split(",")}
    return "*" in wanted or etag.strip('"') in wanted
