"""HTTP content codings (RFC 9110 §8.4) the gateway decodes so that nothing it must inspect passes encoded.

Request bodies are decoded whole (bounded: a decompression bomb is a 413, not a memory spike);
response bodies the gateway filters are decoded incrementally (`Decoder`). gzip, deflate, br and
zstd are supported; anything else, or bytes that do not decode, is refused by the caller.
Stdlib plus Brotli and zstd bindings only: this is on the sidecar's import path.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

import brotli

from sidecar.errors import EncodingError as EncodingError  # re-exported: raised here

try:  # Python 3.14 ships zstd; before that the backport (what aiohttp uses too)
    from compression.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports.zstd import ZstdDecompressor, ZstdError  # type: ignore[import-not-found,no-redef,unused-ignore]

SUPPORTED = ("gzip", "x-gzip", "deflate", "br", "zstd")
_IDENTITY = ("", "identity")


def codings(header: str) -> list[str]:
    """The codings of a `Content-Encoding` value in the order applied (identity dropped)."""
    return [c for c in (part.strip().lower() for part in header.split(",")) if c not in _IDENTITY]


class _Step(Protocol):
    def feed(self, data: bytes, limit: int) -> bytes: ...

    def done(self) -> bool: ...


class _Zlib:
    def __init__(self, coding: str) -> None:
        # gzip: gzip wrapper; deflate: zlib wrapper, but some servers send raw deflate (tried on failure).
        self._wbits = 16 + zlib.MAX_WBITS if coding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._raw_fallback = coding == "deflate"
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._obj.decompress(data, limit + 1)
        except zlib.error:
            if self._raw_fallback and not self._started:
                self._raw_fallback = False
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
                return self.feed(data, limit)
            raise EncodingError("corrupt", "request body is not valid for its Content-Encoding") from None
        self._started = True
        if self._obj.unused_data:
            # Bytes after the end of the coded stream: a second payload nobody inspected.
            raise EncodingError("corrupt", "trailing bytes after the encoded body")
        if self._obj.unconsumed_tail:
            raise EncodingError("too_large", "decoded body exceeds the limit")
        return out

    def done(self) -> bool:
        return self._obj.eof


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            out: bytes = self._obj.process(data, output_buffer_limit=limit + 1)
        except brotli.error:
            raise EncodingError("corrupt", "body is not valid brotli") from None
        if len(out) > limit:
            raise EncodingError("too_large", "decoded body exceeds the limit")
        return out

    def done(self) -> bool:
        return bool(self._obj.is_finished())


class _Zstd:
    def __init__(self) -> None:
        self._obj = ZstdDecompressor()

    def feed(self, data: bytes, limit: int) -> bytes:
        try:
            out: bytes = self._obj.decompress(data, max_length=limit + 1)
        except ZstdError:
            raise EncodingError("corrupt", "body is not valid zstd") from None
        if self._obj.eof and self._obj.unused_data:
            raise EncodingError("corrupt", "trailing bytes after the encoded body")
        if len(out) > limit or not self._obj.needs_input and not self._obj.eof:
            raise EncodingError("too_large", "decoded body exceeds the limit")
        return out

    def done(self) -> bool:
        return bool(self._obj.eof)


def _step(coding: str) -> _Step:
    if coding in ("gzip", "x-gzip", "deflate"):
        return _Zlib(coding)
    if coding == "br":
        return _Brotli()
    if coding == "zstd":
        return _Zstd()
    raise EncodingError("unsupported", f"unsupported Content-Encoding {coding!r} (supported: {', '.join(SUPPORTED)})")


class Decoder:
    """Incremental decoder for a (possibly stacked) `Content-Encoding`; `limit` bounds the total output."""

    def __init__(self, header: str, limit: int) -> None:
        # Codings are listed in the order applied, so they are undone last-first.
        self._steps = [_step(c) for c in reversed(codings(header))]
        self._left = limit

    def feed(self, data: bytes) -> bytes:
        """Decoded bytes for the next chunk of input.

        Raises:
            EncodingError: corrupt input, or more than `limit` bytes decoded in total.
        """
        for step in self._steps:
            if not data:
                return b""
            data = step.feed(data, self._left)
        self._left -= len(data)
        if self._left < 0:
            raise EncodingError("too_large", "decoded body exceeds the limit")
        return data

    def finish(self) -> None:
        """Raise `EncodingError` unless every coding reached its end (a truncated body is corrupt)."""
        if not all(step.done() for step in self._steps):
            raise EncodingError("corrupt", "encoded body is truncated")


def decode_body(raw: bytes, header: str, limit: int) -> bytes:
    """`raw` with every coding of `header` undone; at most `limit` decoded bytes.

    Raises:
        EncodingError: unsupported coding (`unsupported`), bad bytes (`corrupt`), or over `limit` (`too_large`).
    """
    if not codings(header):
        return raw
    dec = Decoder(header, limit)
    out = dec.feed(raw)
    dec.finish()
    return out


async def decode_stream(chunks: AsyncIterable[bytes], header: str, limit: int) -> AsyncIterator[bytes]:
    """Decoded chunks of an encoded stream (raises `EncodingError` as `Decoder` does)."""
    dec = Decoder(header, limit)
    async for chunk in chunks:
        out = dec.feed(chunk)
        if out:
            yield out
    dec.finish()
