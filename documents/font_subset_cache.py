"""A bounded cache of WeasyPrint's HarfBuzz font subsets, shared by every PDF of the process.

WeasyPrint subsets each embedded font on every render (`Font._harfbuzz_subset`); for the Noto
Sans CJK collection (about 20 MB) that is a large share of a render's CPU. A glyph set repeats
when the same text is rendered again (a retried activity, amended terms, the same people's
documents); documents that name other people have other glyph sets and miss (bench/README.md,
"Render CPU"). HarfBuzz's subset is deterministic:
the same face, glyph ids and flags give the same bytes, so a cached result leaves every PDF
byte-identical.

The key is the font's identity (WeasyPrint's description hash, the family, the face index, the
file's length and a SHA-256 of its first 64 KiB: the offset tables, whose per-table checksums
change with any table's content) and the subset's inputs (sorted glyph ids, hinting, and
whether a .notdef outline is kept). Each entry also keeps the Flate-compressed stream of its
subset once a PDF has embedded it (pydyf compresses it at level 9 on every write, which costs
as much again). At most `MAX_ENTRIES` entries and `MAX_BYTES` of them (subsets and compressed
streams; a Noto CJK subset of one of our documents is 0.6-0.8 MB and its stream 0.13 MB)
are kept, least recently used first out.

This patches a private WeasyPrint method and pydyf's `Stream.data`; `install()` does so only
when they have the attributes and signatures it was written against, and otherwise leaves
them alone.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

LOGGER = logging.getLogger(__name__)
MAX_ENTRIES = 64
MAX_BYTES = 64 * 1024 * 1024
IDENTITY_PREFIX_BYTES = 64 * 1024
_FONT_ATTRIBUTES = ("hb_face", "file_content", "index", "missing", "family", "hash")
_SUBSET_PARAMETERS = ["self", "to_unicode", "hinting"]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    entries: int = 0
    bytes: int = 0
    stream_hits: int = 0  # font streams written from a kept compressed payload


@dataclass
class _Entry:
    content: bytes  # the subset font program, as WeasyPrint embeds it
    compressed: bytes | None = None  # its Flate-compressed stream payload, once written

    @property
    def size(self) -> int:
        return len(self.content) + len(self.compressed or b"")


class SubsetCache:
    """A thread-safe LRU of subset fonts (and their compressed streams), bounded by entries
    and by total bytes."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.enabled = True
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._by_content: dict[int, _Entry] = {}  # id(entry.content): the stream's lookup
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._stream_hits = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.content

    def put(self, key: Hashable, content: bytes) -> None:
        if len(content) > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._forget(previous)
            entry = _Entry(content)
            self._entries[key] = entry
            self._by_content[id(content)] = entry
            self._bytes += entry.size
            self._evict()

    def compressed(self, content: object) -> bytes | None:
        """The compressed stream of `content` if it is (the very object of) a cached subset."""
        with self._lock:
            entry = self._by_content.get(id(content))
            if entry is None or entry.content is not content or entry.compressed is None:
                return None
            self._stream_hits += 1
            return entry.compressed

    def is_cached(self, content: object) -> bool:
        with self._lock:
            entry = self._by_content.get(id(content))
            return entry is not None and entry.content is content

    def set_compressed(self, content: bytes, compressed: bytes) -> None:
        with self._lock:
            entry = self._by_content.get(id(content))
            if entry is None or entry.content is not content or entry.compressed is not None:
                return
            entry.compressed = compressed
            self._bytes += len(compressed)
            self._evict()

    def _forget(self, entry: _Entry) -> None:
        self._bytes -= entry.size
        if self._by_content.get(id(entry.content)) is entry:
            del self._by_content[id(entry.content)]

    def _evict(self) -> None:
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._forget(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._by_content.clear()
            self._bytes = self._hits = self._misses = self._stream_hits = 0

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses,
                              entries=len(self._entries), bytes=self._bytes,
                              stream_hits=self._stream_hits)


CACHE = SubsetCache()
_install_lock = threading.Lock()
_installed: bool | None = None  # None: not tried yet


def _font_identity(font: Any) -> tuple[Hashable, ...]:
    content: bytes = font.file_content
    prefix = hashlib.sha256(content[:IDENTITY_PREFIX_BYTES]).hexdigest()
    return (font.hash, font.family, font.index, len(content), prefix)


def _cached(original: Callable[..., None]) -> Callable[..., None]:
    def _harfbuzz_subset(self: Any, to_unicode: dict[int, Any], hinting: Any) -> None:
        if not CACHE.enabled:
            return original(self, to_unicode, hinting)
        key = (_font_identity(self), tuple(sorted(to_unicode)), bool(hinting),
               bool(self.missing))
        content = CACHE.get(key)
        if content is not None:
            self.file_content = content
            return None
        before = self.file_content
        original(self, to_unicode, hinting)
        # An unchanged file_content means HarfBuzz failed (WeasyPrint logged it): not cached.
        if self.file_content is not before and isinstance(self.file_content, bytes):
            CACHE.put(key, self.file_content)
        return None

    _harfbuzz_subset.__wrapped__ = original  # type: ignore[attr-defined]
    _harfbuzz_subset.baton_subset_cache = True  # type: ignore[attr-defined]
    return _harfbuzz_subset


_STREAM_START, _STREAM_END = b"\nstream\n", b"\nendstream"


def _compressed_stream(original: property) -> Callable[[Any], bytes]:
    """pydyf's Stream.data, skipping the compression (zlib level 9) of a cached subset font,
    which is as costly as the subset: the compressed payload is kept with the subset. The
    first write of each subset compresses as pydyf does and checks that rebuilding the stream
    from the kept payload gives the same bytes; when not, the payload is not kept."""
    fget = original.fget
    assert fget is not None

    def from_payload(stream: Any, payload: bytes) -> bytes:
        rebuilt = type(stream)([payload], {**stream.extra, "Filter": "/FlateDecode"},
                               compress=False)
        return bytes(fget(rebuilt))

    def data(self: Any) -> bytes:
        parts = self.stream
        if not (CACHE.enabled and self.compress and len(parts) == 1
                and isinstance(parts[0], bytes) and "Filter" not in self.extra):
            return bytes(fget(self))
        content = parts[0]
        payload = CACHE.compressed(content)
        if payload is not None:
            return from_payload(self, payload)
        written = bytes(fget(self))
        if CACHE.is_cached(content) and written.endswith(_STREAM_END):
            start = written.find(_STREAM_START)
            payload = written[start + len(_STREAM_START):-len(_STREAM_END)]
            if start > 0 and from_payload(self, payload) == written:
                CACHE.set_compressed(content, payload)
        return written

    data.baton_subset_cache = True  # type: ignore[attr-defined]
    return data


def _stream_patchable(stream_class: Any) -> str | None:
    """Why pydyf's `stream_class` cannot be patched, or None when it can."""
    data = stream_class.__dict__.get("data")
    if not isinstance(data, property) or data.fget is None:
        return "pydyf.Stream.data is not a property"
    try:
        parameters = list(inspect.signature(stream_class.__init__).parameters)
    except (TypeError, ValueError):
        return "pydyf.Stream has no signature"
    if parameters[:4] != ["self", "stream", "extra", "compress"]:
        return f"pydyf.Stream takes {parameters}"
    return None


def _patchable(font_class: Any) -> str | None:
    """Why `font_class` cannot be patched, or None when it can."""
    method = getattr(font_class, "_harfbuzz_subset", None)
    if method is None or not callable(method):
        return "no Font._harfbuzz_subset"
    try:
        parameters = list(inspect.signature(method).parameters)
    except (TypeError, ValueError):
        return "Font._harfbuzz_subset has no signature"
    if parameters != _SUBSET_PARAMETERS:
        return f"Font._harfbuzz_subset takes {parameters}"
    init_source = ""
    try:
        init_source = inspect.getsource(font_class.__init__)
    except (OSError, TypeError):
        return "Font.__init__ has no source to check its attributes against"
    missing = [name for name in _FONT_ATTRIBUTES if f"self.{name} =" not in init_source]
    if missing:
        return f"Font.__init__ sets no {', '.join(missing)}"
    return None


def install() -> bool:
    """Patch WeasyPrint's `Font._harfbuzz_subset` once per process; False when it was not."""
    global _installed
    with _install_lock:
        if _installed is not None:
            return _installed
        try:
            from weasyprint.pdf.fonts import Font
        except ImportError as error:
            reason: str | None = f"weasyprint.pdf.fonts.Font not importable ({error})"
        else:
            reason = _patchable(Font)
        if reason is not None:
            LOGGER.debug("font subset cache not installed: %s", reason)
            _installed = False
            return False
        if not getattr(Font._harfbuzz_subset, "baton_subset_cache", False):
            Font._harfbuzz_subset = _cached(Font._harfbuzz_subset)
        import pydyf

        stream_reason = _stream_patchable(pydyf.Stream)
        if stream_reason is not None:  # the subsets are cached; their streams are compressed
            LOGGER.debug("compressed font streams not cached: %s", stream_reason)
        elif not getattr(pydyf.Stream.data.fget, "baton_subset_cache", False):
            pydyf.Stream.data = property(_compressed_stream(pydyf.Stream.data))
        _installed = True
        return True


@contextmanager
def disabled() -> Iterator[None]:
    """Render without the cache (tests, benchmarks); the cached entries stay."""
    previous = CACHE.enabled
    CACHE.enabled = False
    try:
        yield
    finally:
        CACHE.enabled = previous
