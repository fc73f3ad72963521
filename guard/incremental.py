"""What an incremental refresh compares: HTTP validators, a file's sighting, the hash of the bytes gathered.

Pure functions and small value types; the ingest step loads the last successful refresh's record from the
store and decides, with these, what to gather and what to recognise as unchanged before any stage runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_from_bytes

from guard.types import RawDocument

# A server's validators are untrusted input: longer values are not kept (nor sent back).
MAX_ETAG_CHARS = 500
MAX_LAST_MODIFIED_CHARS = 100
# A file modified this recently may change again within the file system's time resolution without its
# size or time changing (git's "racily clean" problem): its sighting keeps the time UNTRUSTED_MTIME, which
# matches no file, so it is read again next time (and recognised by its hash if it did not change).
RACY_SECONDS = 1.0
UNTRUSTED_MTIME = 0


@dataclass(frozen=True)
class Validators:
    """ETag and Last-Modified of a response, as the server sent them (None: not sent, or too long)."""

    etag: str | None = None
    last_modified: str | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Validators:
        etag = (headers.get("etag") or "").strip()
        modified = (headers.get("last-modified") or "").strip()
        return cls(
            etag=etag if 0 < len(etag) <= MAX_ETAG_CHARS and etag.isprintable() else None,
            last_modified=modified
            if 0 < len(modified) <= MAX_LAST_MODIFIED_CHARS and modified.isprintable()
            else None,
        )

    def request_headers(self) -> dict[str, str]:
        """The conditional request's headers (RFC 9110 13.1): If-None-Match wins when both are known."""
        headers: dict[str, str] = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    def or_else(self, earlier: Validators) -> Validators:
        """These, or for what the server did not repeat (a 304 may omit them) the earlier ones."""
        return Validators(self.etag or earlier.etag, self.last_modified or earlier.last_modified)


@dataclass(frozen=True)
class Gathered:
    """A feed's or page's documents, the validators of the version they came from, or 304: nothing new."""

    documents: list[RawDocument]
    validators: Validators
    not_modified: bool = False


def raw_hash(doc: RawDocument) -> str:
    """SHA-256 of what a document was gathered as: its bytes, media type and hints (a feed item's title,
    author and date live in its hints), so equal hashes mean every stage would produce the same result."""
    digest = hashlib.sha256()
    digest.update(doc.content_type.encode("utf-8"))
    digest.update(b"\0")
    digest.update(json.dumps(doc.hints or {}, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    digest.update(b"\0")
    digest.update(doc.data)
    return digest.hexdigest()


def uri_key(uri: str) -> str:
    """A sighting's key: SHA-256 of the document's URI (bounded length, whatever the path)."""
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int
    inode: int


NO_STAT = -1  # in FolderPlan.stats: the file could not be stat'ed (vanished, unreadable since listing)


@dataclass(frozen=True)
class FolderPlan:
    """Which listed files to read, how many match their last sighting, and which sightings were not listed.

    The files to read are kept compactly, as relative names and three numbers each in an array (no Path or
    object per file), so the plan of a 100,000-file folder is a few megabytes."""

    folder: Path
    names: list[str]  # relative POSIX names of the files to read, in listing order
    stats: array[int]  # size, mtime_ns, inode of each (NO_STAT: could not be stat'ed)
    recognised: int
    missing: list[str]  # URIs of files the last successful refresh saw that are gone

    def __len__(self) -> int:
        return len(self.names)

    def path(self, index: int) -> Path:
        return self.folder / self.names[index]

    def stat(self, index: int) -> FileStat | None:
        size, mtime, inode = self.stats[3 * index : 3 * index + 3]
        return None if size == NO_STAT else FileStat(size, mtime, inode)


def plan_folder(
    folder: Path,
    names: Sequence[str],
    sightings: Mapping[str, tuple[int, int, int]],
    *,
    trust: bool = True,
    now: float | None = None,
) -> FolderPlan:
    """A file whose size, mtime and inode (symbolic links followed, as a read does) match its sighting is not
    read (unless not `trust`ed: a full refresh); every other one is. Sightings of files no longer listed are
    `missing` either way. `names` are relative to `folder`, as gather.folder_names gives them."""
    racy_after = int(((time.time() if now is None else now) - RACY_SECONDS) * 1e9)
    base = str(folder.absolute())
    to_read: list[str] = []
    stats = array("q")
    recognised = 0
    unseen = set(sightings)
    for name in names:
        full = f"{base}/{name}"
        # what Path.absolute().as_uri() gives (the URI read_file records), without pathlib's cost per file
        uri = "file://" + quote_from_bytes(os.fsencode(full))
        unseen.discard(uri)
        try:
            info = os.stat(full)
        except OSError:
            to_read.append(name)
            stats.extend((NO_STAT, NO_STAT, NO_STAT))
            continue
        mtime = UNTRUSTED_MTIME if info.st_mtime_ns >= racy_after else info.st_mtime_ns
        seen = (info.st_size, mtime, info.st_ino)
        if trust and mtime != UNTRUSTED_MTIME and sightings.get(uri) == seen:
            recognised += 1
        else:
            to_read.append(name)
            stats.extend(seen)
    return FolderPlan(folder, to_read, stats, recognised, sorted(unseen))
