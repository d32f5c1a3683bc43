"""The S3 HTTP subset tansu's object_store client uses, served from a `FileStore` (path-style URLs).

Supported: PutObject (with If-Match / If-None-Match and Content-MD5), GetObject and HeadObject
(with If-None-Match / If-Match and one byte range), DeleteObject, DeleteObjects, ListObjectsV2
(prefix, delimiter, continuation token, start-after, max-keys), Create/Head/List buckets.
Anything else (copy, multipart, ACLs, tagging, streaming signatures) is answered 501
NotImplemented and logged, so a client that needs more fails loudly rather than silently.
Request signatures are not checked: the server is a local embedded default bound to loopback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from urllib.parse import unquote
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape as _esc

from aiohttp import web

from localstack.s3_server.retention import RetentionPolicy, SweepResult, sweep
from localstack.s3_server.store import (
    FileStore,
    InvalidKey,
    ObjectInfo,
    PreconditionFailed,
    StoreError,
    etag_matches,
)

log = logging.getLogger("localstack.s3_server")

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
_STORE_KEY = web.AppKey("store", FileStore)
_MAX_KEYS = 1000
_UNSUPPORTED_QUERY = ("uploads", "uploadId", "acl", "tagging", "versioning", "policy", "lifecycle", "cors")


def _xml(root: ET.Element, status: int = 200) -> web.Response:
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")
    return web.Response(body=body, status=status, content_type="application/xml")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def error_response(status: int, code: str, message: str, resource: str = "") -> web.Response:
    """An S3 `<Error>` document."""
    root = ET.Element("Error")
    _sub(root, "Code", code)
    _sub(root, "Message", message)
    if resource:
        _sub(root, "Resource", resource)
    return _xml(root, status)


def _iso(mtime_ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mtime_ns / 1e9)) + f".{mtime_ns // 1_000_000 % 1000:03d}Z"


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": info.etag,
        "Last-Modified": formatdate(info.mtime_ns / 1e9, usegmt=True),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }


def _split(request: web.Request) -> tuple[str, str]:
    # raw_path keeps %2F inside a key segment apart from the separators.
    path = request.raw_path.split("?", 1)[0].lstrip("/")
    bucket, _, key = path.partition("/")
    return unquote(bucket), "/".join(unquote(part) for part in key.split("/")) if key else ""


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) for one `bytes=` range; raises ValueError when unsatisfiable or malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        raise ValueError(f"unsupported range {header!r}")
    first, _, last = spec.strip().partition("-")
    if not first:
        n = int(last)
        if n <= 0:
            raise ValueError(header)
        return max(size - n, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise ValueError(header)
    return start, end


async def _get_object(request: web.Request, store: FileStore, bucket: str, key: str) -> web.StreamResponse:
    head = request.method == "HEAD"
    if head:
        info, content = store.head(bucket, key), b""
    else:
        info, content = store.get(bucket, key)
    if_match = request.headers.get("If-Match")
    if if_match is not None and not etag_matches(if_match, info.etag):
        return error_response(412, "PreconditionFailed", "If-Match does not hold", key)
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None and etag_matches(if_none_match, info.etag):
        return web.Response(status=304, headers={"ETag": info.etag})
    headers = _object_headers(info)
    status = 200
    if "Range" in request.headers and info.size > 0:
        try:
            byte_range = _byte_range(request.headers["Range"], info.size)
        except ValueError:
            resp = error_response(416, "InvalidRange", "The requested range is not satisfiable", key)
            resp.headers["Content-Range"] = f"bytes */{info.size}"
            return resp
        if byte_range is not None:
            start, end = byte_range
            headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
            content = content[start:end + 1]
            status = 206
    if head:
        headers["Content-Length"] = str(info.size)
        return web.Response(status=status, headers=headers)
    return web.Response(body=content, status=status, headers=headers)


async def _put_object(request: web.Request, store: FileStore, bucket: str, key: str) -> web.Response:
    if "x-amz-copy-source" in request.headers or "aws-chunked" in request.headers.get("Content-Encoding", ""):
        return _not_implemented(request, "copy and aws-chunked uploads are not supported")
    # The whole body must arrive before anything is written: a client that dies mid-upload
    # (tansu SIGKILLed) raises here and leaves the stored object exactly as it was.
    content = await request.read()
    md5 = request.headers.get("Content-MD5")
    if md5 is not None:
        try:
            expected = base64.b64decode(md5, validate=True)
        except (binascii.Error, ValueError):
            return error_response(400, "InvalidDigest", "Content-MD5 is not base64", key)
        if hashlib.md5(content, usedforsecurity=False).digest() != expected:
            return error_response(400, "BadDigest", "Content-MD5 does not match the body", key)
    info = store.put(bucket, key, content, if_match=request.headers.get("If-Match"),
                     if_none_match=request.headers.get("If-None-Match"))
    return web.Response(status=200, headers={"ETag": info.etag})


def _contents_xml(info: ObjectInfo) -> str:
    return (f"<Contents><Key>{_esc(info.key)}</Key><LastModified>{_iso(info.mtime_ns)}</LastModified>"
            f"<ETag>{_esc(info.etag)}</ETag><Size>{info.size}</Size><StorageClass>STANDARD</StorageClass></Contents>")


def _list_objects(request: web.Request, store: FileStore, bucket: str) -> web.Response:
    q = request.query
    if q.get("list-type", "2") != "2":
        return _not_implemented(request, "only ListObjectsV2 (list-type=2) is supported")
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    token = q.get("continuation-token", "")
    start_after = q.get("start-after", "")
    try:
        max_keys = min(int(q.get("max-keys", str(_MAX_KEYS))), _MAX_KEYS)
    except ValueError:
        return error_response(400, "InvalidArgument", "max-keys must be an integer")
    after = base64.urlsafe_b64decode(token.encode()).decode() if token else start_after
    contents: list[ObjectInfo] = []
    rendered: list[str] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    if not delimiter:  # tansu's listing: entries rendered once and cached (FileStore.list_rendered)
        for key, xml in store.list_rendered(bucket, prefix, after, _contents_xml):
            if len(rendered) >= max_keys:
                truncated = True
                break
            rendered.append(xml)
            last = key
    for info in store.list(bucket, prefix, after) if delimiter else ():
        if delimiter and delimiter in info.key[len(prefix):]:
            common = info.key[:len(prefix) + info.key[len(prefix):].index(delimiter) + len(delimiter)]
            if prefixes and prefixes[-1] == common:
                continue
            entry_key = common
        else:
            entry_key = info.key
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        if entry_key == info.key:
            contents.append(info)
        else:
            prefixes.append(entry_key)
        last = entry_key
    # Built as text, not an ElementTree: a full page is 1,000 entries and tansu lists on every fetch.
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_NS}"><Name>{_esc(bucket)}</Name>'
           f"<Prefix>{_esc(prefix)}</Prefix>"]
    if delimiter:
        out.append(f"<Delimiter>{_esc(delimiter)}</Delimiter>")
    out.append(f"<MaxKeys>{max_keys}</MaxKeys><KeyCount>{len(rendered) + len(contents) + len(prefixes)}</KeyCount>"
               f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if token:
        out.append(f"<ContinuationToken>{_esc(token)}</ContinuationToken>")
    if start_after:
        out.append(f"<StartAfter>{_esc(start_after)}</StartAfter>")
    if truncated:
        # After a common prefix, skip every key under it: resume past the prefix's last possible key.
        resume = last + "\U0010ffff" if last.endswith(delimiter) and delimiter else last
        out.append(f"<NextContinuationToken>{base64.urlsafe_b64encode(resume.encode()).decode()}</NextContinuationToken>")
    out.extend(rendered)
    out.extend(_contents_xml(info) for info in contents)
    out.extend(f"<CommonPrefixes><Prefix>{_esc(p)}</Prefix></CommonPrefixes>" for p in prefixes)
    out.append("</ListBucketResult>")
    return web.Response(body="".join(out).encode(), content_type="application/xml")


async def _delete_objects(request: web.Request, store: FileStore, bucket: str) -> web.Response:
    body = await request.read()
    try:
        doc = ET.fromstring(body)  # expat does not expand external entities
    except ET.ParseError as exc:
        return error_response(400, "MalformedXML", f"DeleteObjects body is not XML: {exc}")
    keys = [el.text or "" for el in doc.iter() if el.tag.rsplit("}", 1)[-1] == "Key"]
    quiet = any(el.tag.rsplit("}", 1)[-1] == "Quiet" and (el.text or "").strip() == "true" for el in doc.iter())
    root = ET.Element("DeleteResult", xmlns=_NS)
    for key in keys:
        try:
            store.delete(bucket, key)
        except InvalidKey as exc:
            err = _sub(root, "Error")
            _sub(err, "Key", key)
            _sub(err, "Code", exc.code)
            _sub(err, "Message", str(exc))
            continue
        if not quiet:
            _sub(_sub(root, "Deleted"), "Key", key)
    return _xml(root)


def _list_buckets(store: FileStore) -> web.Response:
    root = ET.Element("ListAllMyBucketsResult", xmlns=_NS)
    owner = _sub(root, "Owner")
    _sub(owner, "ID", "local")
    buckets = _sub(root, "Buckets")
    for name in store.buckets():
        b = _sub(buckets, "Bucket")
        _sub(b, "Name", name)
        _sub(b, "CreationDate", _iso(time.time_ns()))
    return _xml(root)


def _not_implemented(request: web.Request, why: str) -> web.Response:
    log.warning("s3 server: %s %s not implemented (%s)", request.method, request.path_qs, why)
    return error_response(501, "NotImplemented", why, request.path)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    store = request.app[_STORE_KEY]
    bucket, key = _split(request)
    method = request.method
    if any(q in request.query for q in _UNSUPPORTED_QUERY):
        return _not_implemented(request, "sub-resource not supported")
    try:
        if not bucket:
            if method in ("GET", "HEAD"):
                return _list_buckets(store)
        elif not key:
            if method == "PUT":
                store.create_bucket(bucket)
                return web.Response(status=200)
            if not store.has_bucket(bucket):
                return error_response(404, "NoSuchBucket", f"bucket {bucket!r} does not exist", bucket)
            if method == "HEAD":
                return web.Response(status=200)
            if method == "GET":
                return _list_objects(request, store, bucket)
            if method == "POST" and "delete" in request.query:
                return await _delete_objects(request, store, bucket)
        else:
            if method in ("GET", "HEAD"):
                return await _get_object(request, store, bucket, key)
            if method == "PUT":
                return await _put_object(request, store, bucket, key)
            if method == "DELETE":
                store.delete(bucket, key)
                return web.Response(status=204)
    except PreconditionFailed as exc:
        return error_response(exc.status, exc.code, str(exc), key)
    except StoreError as exc:
        if method == "HEAD":  # HEAD answers carry no body
            return web.Response(status=exc.status)
        return error_response(exc.status, exc.code, str(exc), key or bucket)
    return _not_implemented(request, "operation not supported")


async def _stats(request: web.Request) -> web.Response:
    """`GET /_sentinel/stats`: per bucket objects, bytes and the most keys one LIST visited; the last sweep.

    `_sentinel` can never be a bucket (S3 names cannot start with `_`), so this cannot shadow data.
    """
    store = request.app[_STORE_KEY]
    janitor = request.app[_JANITOR_KEY]
    return web.json_response({"buckets": {b: store.stats(b) for b in store.buckets()}, "retention": janitor.report()})


class Janitor:
    """Runs `retention.sweep` every `policy.interval` seconds on the server's loop (so it never races a PUT)."""

    def __init__(self, store: FileStore, policy: RetentionPolicy, buckets: tuple[str, ...]) -> None:
        self.store, self.policy, self.buckets = store, policy, buckets
        self.sweeps = 0
        self.deleted_batches = 0
        self.deleted_bytes = 0
        self.last: SweepResult | None = None

    def run_once(self) -> None:
        for bucket in self.buckets:
            result = sweep(self.store, bucket, self.policy)
            self.sweeps += 1
            self.deleted_batches += result.deleted_batches
            self.deleted_bytes += result.deleted_bytes
            self.last = result
            if result.deleted_batches:
                log.info("retention: deleted %d batches (%d bytes) in %s; %d past retention held by consumers",
                         result.deleted_batches, result.deleted_bytes, bucket, result.held_by_consumers)

    async def loop(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval)
            try:
                self.run_once()
            except Exception:  # a sweep must never take the store down; the next one retries
                log.exception("retention sweep failed")

    def report(self) -> dict[str, object]:
        last = self.last
        return {"enabled": self.policy.enabled, "retention_ms": self.policy.retention_ms,
                "retention_bytes": self.policy.retention_bytes, "sweeps": self.sweeps,
                "deleted_batches": self.deleted_batches, "deleted_bytes": self.deleted_bytes,
                "held_by_consumers": last.held_by_consumers if last else 0,
                "unconsumed_partitions": last.unconsumed_partitions if last else []}


_JANITOR_KEY = web.AppKey("janitor", Janitor)


def create_app(store: FileStore, retention: RetentionPolicy | None = None,
               retention_buckets: tuple[str, ...] = ("tansu",)) -> web.Application:
    """The aiohttp application serving `store` (every path and method goes through one dispatcher)."""
    app = web.Application(client_max_size=1 << 30)
    app[_STORE_KEY] = store
    janitor = app[_JANITOR_KEY] = Janitor(store, retention or RetentionPolicy(), retention_buckets)
    app.router.add_get("/_sentinel/stats", _stats)
    app.router.add_route("*", "/{tail:.*}", _dispatch)

    async def janitor_task(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(janitor.loop()) if janitor.policy.enabled else None
        yield
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app.cleanup_ctx.append(janitor_task)
    return app
