"""A file-backed object store with the guarantees tansu's S3 engine relies on.

Each object is a plain file `<root>/<bucket>/<key>` (keys with `/` become folders), so the data
folder stays inspectable. What s3rver 3.7.1 lacked, and tansu 0.6 needs to never overwrite a
partition (see docs/decisions/localstack.md, "Local broker"):

* conditional writes: `If-None-Match: *` fails when the key exists, `If-Match: <etag>` fails
  unless the current object has that ETag (both as PreconditionFailed, i.e. HTTP 412);
* atomic writes: content goes to a temporary file that is renamed over the key only when the
  whole body arrived, so a reader or a crash never sees a truncated object and an aborted upload
  changes nothing;
* one writer at a time: every method is synchronous and the server calls them from its single
  event-loop thread, so a precondition check and the rename that follows cannot interleave with
  another request.

ETags are the hex MD5 of the content (as S3 does for single-part uploads).

Listing cost does not grow with the number of stored objects: each bucket keeps an in-memory,
sorted index of its keys (built by one walk at start-up, then maintained by every put and delete,
the only writers of the folder). A ListObjectsV2 page is a binary search plus one step per key
returned, where it used to be an `os.walk` and sort of every key under the prefix plus a `stat`
each (tansu lists a partition's `records/` on every fetch; with ~3,200 batches that kept this
process at ~90 % CPU: docs/decisions/localstack.md, "Broker store"). The folder must not be changed behind
a running server's back (a restart re-reads it).
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
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


def _md5_etag(content: bytes) -> str:
    return f'"{hashlib.md5(content, usedforsecurity=False).hexdigest()}"'


@dataclass
class _Entry:
    """What the index knows about one object (the ETag is read lazily: start-up reads no content)."""

    size: int
    mtime_ns: int
    etag: str | None = None
    rendered: str | None = None  # the listing entry as the HTTP layer renders it (see `list_rendered`)


@dataclass
class _BucketIndex:
    """Sorted keys plus their entries. Python orders `str` by code point, which is UTF-8 byte order (S3's)."""

    keys: list[str] = field(default_factory=list)
    entries: dict[str, _Entry] = field(default_factory=dict)
    total_bytes: int = 0
    scanned_max: int = 0

    def add(self, key: str, entry: _Entry) -> None:
        old = self.entries.get(key)
        if old is None:
            bisect.insort(self.keys, key)
        else:
            self.total_bytes -= old.size
        self.entries[key] = entry
        self.total_bytes += entry.size

    def remove(self, key: str) -> None:
        old = self.entries.pop(key, None)
        if old is None:
            return
        self.total_bytes -= old.size
        i = bisect.bisect_left(self.keys, key)
        del self.keys[i]

    def range(self, prefix: str, start_after: str, *, record: bool = False) -> Iterator[str]:
        """Keys starting with `prefix` and sorting after `start_after`, in order (O(log n) to the first).

        With `record`, `scanned_max` keeps the most keys one listing visited (a check that the work
        per LIST request follows the page size, not the number of stored objects).
        """
        keys = self.keys
        i = bisect.bisect_right(keys, start_after) if start_after >= prefix else bisect.bisect_left(keys, prefix)
        scanned = 0
        try:
            while i < len(keys):
                key = keys[i]
                scanned += 1
                if not key.startswith(prefix):
                    return
                yield key
                i += 1
        finally:
            if record:
                self.scanned_max = max(self.scanned_max, scanned)


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
        self._index: dict[str, _BucketIndex] = {}
        for existing in self.root.iterdir():
            if existing.is_dir() and _valid_bucket(existing.name):
                self._index[existing.name] = self._scan(existing)
        for bucket in buckets:
            self.create_bucket(bucket)

    @staticmethod
    def _scan(base: Path) -> _BucketIndex:
        """One walk of a bucket folder at start-up (sizes and mtimes only)."""
        index = _BucketIndex()
        pairs: list[tuple[str, _Entry]] = []
        for dirpath, _dirnames, filenames in os.walk(base):
            rel = Path(dirpath).relative_to(base).as_posix()
            rel = "" if rel == "." else rel + "/"
            for name in filenames:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(os.path.join(dirpath, name))
                    pairs.append((rel + name, _Entry(st.st_size, st.st_mtime_ns)))
        pairs.sort(key=lambda kv: kv[0])
        index.keys = [k for k, _ in pairs]
        index.entries = dict(pairs)
        index.total_bytes = sum(e.size for _, e in pairs)
        return index

    # -- buckets -----------------------------------------------------------------------------

    def create_bucket(self, bucket: str) -> None:
        """Create the bucket folder (idempotent); raises InvalidKey for names S3 would refuse."""
        if not _valid_bucket(bucket):
            raise InvalidKey(f"invalid bucket name {bucket!r}")
        (self.root / bucket).mkdir(exist_ok=True)
        self._index.setdefault(bucket, _BucketIndex())

    def has_bucket(self, bucket: str) -> bool:
        """True when the bucket exists."""
        return bucket in self._index

    def buckets(self) -> list[str]:
        """Every bucket, sorted."""
        return sorted(self._index)

    def stats(self, bucket: str) -> dict[str, int]:
        """Objects and bytes held in a bucket (from the index) and the most keys one listing visited."""
        index = self._bucket(bucket)
        return {"objects": len(index.keys), "bytes": index.total_bytes, "list_scanned_max": index.scanned_max}

    def _bucket(self, bucket: str) -> _BucketIndex:
        index = self._index.get(bucket)
        if index is None:
            raise NoSuchBucket(f"bucket {bucket!r} does not exist")
        return index

    def _path(self, bucket: str, key: str) -> Path:
        self._bucket(bucket)
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts) or "\0" in key:
            raise InvalidKey(f"key {key!r} cannot be stored (empty, '.', '..' or '//' segments)")
        return self.root.joinpath(bucket, *parts)

    # -- objects -----------------------------------------------------------------------------

    def _info(self, bucket: str, key: str, entry: _Entry) -> ObjectInfo:
        if entry.etag is None:
            try:
                entry.etag = _md5_etag(self.root.joinpath(bucket, *key.split("/")).read_bytes())
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                raise NoSuchKey(f"no object {key!r}") from None
        return ObjectInfo(key, entry.size, entry.etag, entry.mtime_ns)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        """Metadata of one object; raises NoSuchKey."""
        self._path(bucket, key)  # validates the key
        entry = self._index[bucket].entries.get(key)
        if entry is None:
            raise NoSuchKey(f"no object {key!r}")
        return self._info(bucket, key, entry)

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, bytes]:
        """Metadata and content of one object, read from one open file (so they always match)."""
        path = self._path(bucket, key)
        entry = self._index[bucket].entries.get(key)
        if entry is None:
            raise NoSuchKey(f"no object {key!r}")
        try:
            content = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NoSuchKey(f"no object {key!r}") from None
        if entry.etag is None:
            entry.etag = _md5_etag(content)
        return ObjectInfo(key, len(content), entry.etag, entry.mtime_ns), content

    def put(self, bucket: str, key: str, content: bytes, *, if_match: str | None = None,
            if_none_match: str | None = None) -> ObjectInfo:
        """Store `content` under `key` atomically, honouring the HTTP preconditions.

        `if_none_match="*"`: only when no object exists; `if_match=<etag>` (or `*`): only when the
        current object has that ETag (or exists). Raises PreconditionFailed and writes nothing otherwise.
        """
        path = self._path(bucket, key)
        index = self._index[bucket]
        entry = index.entries.get(key)
        current = self._info(bucket, key, entry).etag if entry is not None else None
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
        etag = _md5_etag(content)
        index.add(key, _Entry(len(content), st.st_mtime_ns, etag))
        return ObjectInfo(key, len(content), etag, st.st_mtime_ns)

    def delete(self, bucket: str, key: str) -> None:
        """Remove one object (absent is fine, as in S3) and the folders it leaves empty."""
        path = self._path(bucket, key)
        index = self._index[bucket]
        if key not in index.entries:
            return
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()
        index.remove(key)
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
        index = self._bucket(bucket)
        for key in index.range(prefix, start_after, record=True):
            entry = index.entries.get(key)
            if entry is not None:
                with contextlib.suppress(NoSuchKey):  # its file vanished behind the server's back
                    yield self._info(bucket, key, entry)

    def list_rendered(self, bucket: str, prefix: str, start_after: str,
                      render: Callable[[ObjectInfo], str]) -> Iterator[tuple[str, str]]:
        """Like `list`, as (key, render(info)) with the rendering kept on the entry until it changes.

        tansu lists a partition's whole `records/` folder on every fetch and reads one batch per
        fetch, so the same entries are listed again and again: rendering each once keeps a page
        a join of cached strings.
        """
        index = self._bucket(bucket)
        for key in index.range(prefix, start_after, record=True):
            entry = index.entries.get(key)
            if entry is None:
                continue
            if entry.rendered is None:
                try:
                    entry.rendered = render(self._info(bucket, key, entry))
                except NoSuchKey:  # its file vanished behind the server's back
                    continue
            yield key, entry.rendered

    def scan(self, bucket: str, prefix: str = "") -> Iterator[tuple[str, int, int]]:
        """(key, size, mtime_ns) in key order without reading any content (no ETag)."""
        index = self._bucket(bucket)
        for key in index.range(prefix, ""):
            entry = index.entries.get(key)
            if entry is not None:
                yield key, entry.size, entry.mtime_ns

    def keys(self, bucket: str, prefix: str = "", start_after: str = "") -> Iterator[str]:
        """Keys only (no ETag read), in key order; for callers that do not need metadata."""
        return self._bucket(bucket).range(prefix, start_after)


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
