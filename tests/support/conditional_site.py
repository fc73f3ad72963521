"""A loopback web server that honours conditional requests (RFC 9110 13.1) and counts the body bytes it sends.

    with ConditionalSite({"/feed.xml": ("application/rss+xml", RSS)}) as site:
        ...                        # GET with If-None-Match / If-Modified-Since matching -> 304, no body
        site.update("/feed.xml", NEW_RSS)   # a new version: new ETag and Last-Modified
        site.body_bytes            # body bytes of each reply, in order
        site.requests[-1].headers  # what the client sent (lower-case names)

`etag=False` / `last_modified=False` leave that validator out of the replies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from tests.support.http_standins import LoopbackServer, RecordedRequest, Reply


class ConditionalSite(LoopbackServer):
    def __init__(
        self,
        routes: Mapping[str, tuple[str, bytes | str]],
        *,
        etag: bool = True,
        last_modified: bool = True,
        **failures: Any,
    ) -> None:
        super().__init__(**failures)
        self.send_etag = etag
        self.send_last_modified = last_modified
        self._versions: dict[str, tuple[str, bytes, str, str]] = {}
        self._clock = 1_700_000_000.0
        for path, (content_type, body) in routes.items():
            self.update(path, body, content_type)
        self.body_bytes: list[int] = []
        self.statuses: list[int] = []

    def update(self, path: str, body: bytes | str, content_type: str | None = None) -> None:
        """Serve a new version of `path` (a new ETag, a Last-Modified a minute later)."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        kind = content_type or self._versions[path][0]
        self._clock += 60
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        self._versions[path] = (kind, data, etag, formatdate(self._clock, usegmt=True))

    def respond(self, request: RecordedRequest) -> Reply:
        version = self._versions.get(request.path)
        if version is None:
            return self._sent(Reply(404, b"not found", "text/plain"))
        content_type, data, etag, modified = version
        headers: dict[str, str] = {}
        if self.send_etag:
            headers["ETag"] = etag
        if self.send_last_modified:
            headers["Last-Modified"] = modified
        match = request.headers.get("if-none-match")
        since = request.headers.get("if-modified-since")
        if match is not None:
            fresh = self.send_etag and etag in [t.strip() for t in match.split(",")]
        else:
            fresh = self.send_last_modified and since == modified
        if fresh:
            return self._sent(Reply(304, b"", content_type, headers))
        return self._sent(Reply(200, data, content_type, headers))

    def _sent(self, reply: Reply) -> Reply:
        self.body_bytes.append(len(reply.body))
        self.statuses.append(reply.status)
        return reply
