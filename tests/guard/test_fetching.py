"""The address policy and the bounded fetch: what a source may reach, and how much it may make us read.

Every server is a loopback stand-in. Loopback is itself forbidden by the policy, so each test says what it
allows: the stand-in's 127.0.0.1 for the bounds tests, an allowed host name (resolved to 127.0.0.1 by a
patched resolver) for the "public" first hop of redirect tests.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import subprocess
import sys
import textwrap
import time
import zlib
from collections.abc import Callable

import pytest

from core.errors import ErrorType
from guard import netpolicy
from guard.fetching import MAX_REDIRECTS, Fetcher
from guard.gather import fetch_feed, fetch_page
from guard.netpolicy import AddressPolicy, forbidden_because
from guard.types import DocumentError, SourceError
from tests.support.hostile_standins import Body, HostileSite, Redirect, Trickle, TrickleHeaders, gzip_bomb

RSS = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><link>https://example.org/</link>
<description>d</description><item><title>Patch notes</title><link>https://example.org/a</link>
<description>Twelve fixes.</description></item></channel></rss>"""
PAGE = b"<html><head><title>Policy</title></head><body><p>Hello.</p></body></html>"
MiB = 1024 * 1024


def fetcher(*allowed: str, max_bytes: int = MiB, deadline: float = 30.0) -> Fetcher:
    return Fetcher(
        AddressPolicy.allowing(allowed), max_bytes=max_bytes, deadline_seconds=deadline, timeout_seconds=5.0
    )


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], list[str]]:
    """Install fake DNS answers {name: [addresses]}; returns the list of names looked up, in order."""
    asked: list[str] = []

    def install(answers: dict[str, list[str]]) -> list[str]:
        def resolve(host: str, port: int) -> list[str]:
            asked.append(host)
            return list(answers[host])

        monkeypatch.setattr(netpolicy, "resolve", resolve)
        return asked

    return install


# --- the policy ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not globally routable"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("::7f00:1", "loopback"),  # IPv4-compatible
    ],
)
def test_addresses_a_source_must_not_reach(address: str, why: str) -> None:
    reason = forbidden_because(ipaddress.ip_address(address))
    assert reason is not None and why in reason


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:1.1.1.1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_because(ipaddress.ip_address(address)) is None


def test_allowed_hosts_take_names_addresses_and_networks() -> None:
    policy = AddressPolicy.allowing(["127.0.0.1", "10.0.0.0/8", " Intranet.Example. ", "[::1]"])
    assert policy.refusal("127.0.0.1", ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal("[::ffff:127.0.0.1]", ipaddress.ip_address("::ffff:127.0.0.1")) is None
    assert policy.refusal("::1", ipaddress.ip_address("::1")) is None
    assert policy.refusal("wiki", ipaddress.ip_address("10.20.30.40")) is None
    assert policy.refusal("intranet.example", ipaddress.ip_address("192.168.7.7")) is None
    refused = policy.refusal("db.example", ipaddress.ip_address("192.168.7.7"))
    assert refused is not None and "db.example resolves to 192.168.7.7" in refused
    assert "LOREGUARD_ALLOWED_HOSTS" in refused


# --- refusals a user sees ------------------------------------------------------------------------


def assert_refused(error: SourceError, *needles: str) -> None:
    assert error.kind == ErrorType.ADDRESS_REFUSED
    assert not error.retryable
    for needle in needles:
        assert needle in error.message


def test_a_loopback_url_is_refused_before_any_connection() -> None:
    with HostileSite({"/feed.xml": Body(RSS)}) as site, fetcher() as client:
        with pytest.raises(SourceError) as info:
            fetch_feed(site.url_for("/feed.xml"), client)
        assert site.requests == []
    assert_refused(info.value, "127.0.0.1", "loopback", "LOREGUARD_ALLOWED_HOSTS")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
        ("http://[::1]:9/", "loopback"),
        ("http://[::ffff:127.0.0.1]:9/", "loopback"),
        ("http://[::ffff:7f00:1]:9/", "loopback"),
        ("http://0.0.0.0:9/", "unspecified"),
        ("https://10.0.0.1/", "private"),
    ],
)
def test_internal_addresses_are_refused(url: str, why: str) -> None:
    with fetcher() as client, pytest.raises(SourceError) as info:
        fetch_page(url, client, max_bytes=MiB)
    assert_refused(info.value, why)


def test_a_name_that_resolves_to_a_private_address_is_refused(resolver: Callable[..., list[str]]) -> None:
    asked = resolver({"postgresql": ["10.0.0.7"], "mixed.example": ["93.184.215.14", "192.168.0.9"]})
    with fetcher() as client:
        with pytest.raises(SourceError) as info:
            fetch_feed("http://postgresql:5432/", client)
        assert_refused(info.value, "postgresql resolves to 10.0.0.7", "private")
        with pytest.raises(SourceError) as info:
            fetch_feed("https://mixed.example/feed.xml", client)
        assert_refused(info.value, "mixed.example resolves to 192.168.0.9")
    assert asked == ["postgresql", "mixed.example"]


def test_a_redirect_to_loopback_is_refused(resolver: Callable[..., list[str]]) -> None:
    """The first hop is an allowed host; its redirect to the worker's own loopback is not followed."""
    resolver({"news.example": ["127.0.0.1"]})
    with HostileSite({"/secret": Body(b"internal only")}) as internal:
        with HostileSite({"/feed.xml": Redirect(internal.url_for("/secret"))}) as site:
            with fetcher("news.example") as client, pytest.raises(SourceError) as info:
                fetch_feed(site.url_for("/feed.xml", host="news.example"), client)
            assert site.paths() == ["/feed.xml"]
        assert internal.requests == []
    assert_refused(info.value, "redirects to", "/secret", "127.0.0.1", "loopback")


@pytest.mark.parametrize(
    ("location", "kind", "needle"),
    [
        ("http://169.254.169.254/latest/meta-data/", ErrorType.ADDRESS_REFUSED, "link-local"),
        ("http://[::1]:80/admin", ErrorType.ADDRESS_REFUSED, "loopback"),
        ("file:///etc/passwd", ErrorType.INVALID_SOURCE, "not an http(s) URL"),
        ("gopher://example.org/", ErrorType.INVALID_SOURCE, "not an http(s) URL"),
    ],
)
def test_every_redirect_hop_is_checked(
    resolver: Callable[..., list[str]], location: str, kind: str, needle: str
) -> None:
    resolver({"news.example": ["127.0.0.1"]})
    site = HostileSite({"/go": Redirect(location)})
    with site, fetcher("news.example") as client, pytest.raises(SourceError) as info:
        fetch_page(site.url_for("/go", host="news.example"), client, max_bytes=MiB)
    assert info.value.kind == kind and needle in info.value.message and not info.value.retryable


def test_redirects_are_followed_at_most_five_times() -> None:
    five = {f"/five/{i}": Redirect(f"/five/{i + 1}", status=301 if i % 2 else 307) for i in range(5)}
    six = {f"/six/{i}": Redirect(f"/six/{i + 1}") for i in range(6)}
    routes = {**five, "/five/5": Body(RSS), **six, "/six/6": Body(RSS)}
    with HostileSite(routes) as site, fetcher("127.0.0.1") as client:
        assert len(fetch_feed(site.url_for("/five/0"), client)) == 1
        with pytest.raises(SourceError) as info:
            fetch_feed(site.url_for("/six/0"), client)
        assert "/six/6" not in site.paths()
    assert info.value.kind == ErrorType.INVALID_SOURCE
    assert f"redirects more than {MAX_REDIRECTS} times" in info.value.message


# --- what is allowed -----------------------------------------------------------------------------


def test_an_allowed_address_is_fetched() -> None:
    site = HostileSite({"/feed.xml": Body(RSS), "/page": Body(PAGE, "text/html")})
    with site, fetcher("127.0.0.1") as client:
        assert [d.hints["title"] for d in fetch_feed(site.url_for("/feed.xml"), client)] == ["Patch notes"]
        assert fetch_page(site.url_for("/page"), client, max_bytes=MiB).data == PAGE


def test_an_allowed_name_connects_to_the_address_checked_and_keeps_its_host_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One lookup per connection: a resolver that would answer differently the second time changes nothing."""
    answers = iter([["127.0.0.1"], ["10.66.66.66"], ["10.66.66.66"]])
    asked: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return next(answers)

    monkeypatch.setattr(netpolicy, "resolve", rebinding)
    with HostileSite({"/feed.xml": Body(RSS)}) as site, fetcher("127.0.0.1") as client:
        docs = fetch_feed(site.url_for("/feed.xml", host="rebind.example"), client)
    assert len(docs) == 1
    assert asked == ["rebind.example"]
    assert site.requests == [("/feed.xml", f"rebind.example:{site.port}")]


# --- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        Body(gzip_bomb(256 * MiB), headers={"Content-Encoding": "gzip"}),
        Body(b"<rss>" + b" " * (50 * MiB), declare_length=False),
        Body(b"<rss>" + b" " * (50 * MiB)),
    ],
    ids=["gzip-bomb-256MiB", "50MB-feed-without-length", "50MB-feed-with-length"],
)
def test_an_oversized_feed_fails_as_too_large(body: Body) -> None:
    site = HostileSite({"/feed.xml": body})
    with site, fetcher("127.0.0.1", max_bytes=MiB) as client, pytest.raises(SourceError) as info:
        fetch_feed(site.url_for("/feed.xml"), client)
    assert info.value.kind == ErrorType.SOURCE_TOO_LARGE and not info.value.retryable
    assert "too large" in info.value.message and str(MiB) in info.value.message


def test_an_oversized_page_fails_alone_as_too_large() -> None:
    site = HostileSite({"/p": Body(gzip_bomb(64 * MiB), "text/html", {"Content-Encoding": "gzip"})})
    with site, fetcher("127.0.0.1") as client, pytest.raises(DocumentError) as info:
        fetch_page(site.url_for("/p"), client, max_bytes=MiB)
    assert info.value.stage == "ingest" and "too large" in info.value.reason


@pytest.mark.parametrize(
    ("encoding", "data"),
    [("gzip", gzip.compress(RSS)), ("deflate", zlib.compress(RSS)), ("deflate", zlib.compress(RSS)[2:-4])],
    ids=["gzip", "deflate", "raw-deflate"],
)
def test_a_compressed_feed_is_decompressed(encoding: str, data: bytes) -> None:
    site = HostileSite({"/feed.xml": Body(data, headers={"Content-Encoding": encoding})})
    with site, fetcher("127.0.0.1") as client:
        assert len(fetch_feed(site.url_for("/feed.xml"), client)) == 1


def test_a_trickling_server_is_cut_off_at_the_deadline() -> None:
    with HostileSite({"/slow": Trickle(every=0.5)}) as site, fetcher("127.0.0.1", deadline=2.0) as client:
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            fetch_feed(site.url_for("/slow"), client)
        elapsed = time.monotonic() - started
    assert info.value.kind == ErrorType.FETCH_DEADLINE and not info.value.retryable
    assert "longer than 2 s" in info.value.message and "cut off" in info.value.message
    assert 2.0 <= elapsed < 4.0


def test_a_server_trickling_its_headers_is_cut_off_at_the_deadline_and_the_fetch_heartbeats() -> None:
    """Each byte of the head arrives well within the per-read timeout; only the overall deadline can end it."""
    beats: list[float] = []
    with (
        HostileSite({"/feed.xml": TrickleHeaders(every=0.3)}) as site,
        fetcher("127.0.0.1", deadline=2.0) as client,
    ):
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            client.get(site.url_for("/feed.xml"), heartbeat=lambda: beats.append(time.monotonic()))
        elapsed = time.monotonic() - started
    assert info.value.kind == ErrorType.FETCH_DEADLINE
    assert (
        "longer than 2 s" in info.value.message and "LOREGUARD_FETCH_DEADLINE_SECONDS" in info.value.message
    )
    assert 2.0 <= elapsed < 3.0
    # Heartbeats went on while the head trickled in: no gap of more than about a second.
    gaps = [b - a for a, b in zip([started, *beats], [*beats, started + elapsed], strict=True)]
    assert len(beats) >= 2 and max(gaps) < 1.6, gaps


def test_a_silent_server_is_cut_off_at_the_deadline_not_at_the_longer_read_timeout() -> None:
    beats: list[float] = []
    with (
        HostileSite({"/feed.xml": TrickleHeaders(every=30.0)}) as site,
        Fetcher(AddressPolicy.allowing(["127.0.0.1"]), deadline_seconds=2.0, timeout_seconds=20.0) as client,
    ):
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            client.get(site.url_for("/feed.xml"), heartbeat=lambda: beats.append(time.monotonic()))
        elapsed = time.monotonic() - started
    assert info.value.kind == ErrorType.FETCH_DEADLINE and 2.0 <= elapsed < 3.0
    assert len(beats) >= 2  # heartbeats while nothing arrives at all


def test_slow_redirect_hops_share_one_deadline() -> None:
    routes = {f"/hop{i}": Redirect(f"/hop{i + 1}") for i in range(3)}
    routes["/hop3"] = TrickleHeaders(every=0.4)
    with HostileSite(routes) as site, fetcher("127.0.0.1", deadline=2.0) as client:
        started = time.monotonic()
        with pytest.raises(SourceError) as info:
            client.get(site.url_for("/hop0"))
        elapsed = time.monotonic() - started
    assert info.value.kind == ErrorType.FETCH_DEADLINE and 2.0 <= elapsed < 3.0
    assert site.paths() == ["/hop0", "/hop1", "/hop2", "/hop3"]


FETCH_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    from guard.fetching import Fetcher
    from guard.gather import fetch_feed
    from guard.netpolicy import AddressPolicy
    from guard.types import SourceError

    def peak_rss_kib():
        # VmHWM is this process's own peak RSS since exec; ru_maxrss on Linux also counts the pre-exec image
        # forked from the (large) test process, which would hide any growth.
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    fetcher = Fetcher(AddressPolicy.allowing(["127.0.0.1"]), max_bytes=2 * 1024 * 1024)
    before = peak_rss_kib()
    try:
        fetch_feed(sys.argv[1], fetcher)
        outcome = "fetched"
    except SourceError as exc:
        outcome = exc.kind + ": " + exc.message
    print(json.dumps({"outcome": outcome, "growth_kib": peak_rss_kib() - before}))
    """
)


@pytest.mark.parametrize(
    "body",
    [
        Body(gzip_bomb(512 * MiB), headers={"Content-Encoding": "gzip"}),
        Body(b"<rss>" + b" " * (50 * MiB), declare_length=False),
    ],
    ids=["gzip-bomb-512MiB", "50MB-feed"],
)
def test_the_fetching_process_memory_stays_bounded(body: Body) -> None:
    """Peak RSS of a process fetching a hostile feed under a 2 MiB limit grows by a few MiB, not by the body."""
    with HostileSite({"/feed.xml": body}) as site:
        done = subprocess.run(
            [sys.executable, "-c", FETCH_IN_A_FRESH_PROCESS, site.url_for("/feed.xml")],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    report = json.loads(done.stdout)
    assert (
        report["outcome"].startswith(f"{ErrorType.SOURCE_TOO_LARGE}: ") and "too large" in report["outcome"]
    )
    assert report["growth_kib"] < 24 * 1024, report  # the limit is 2 MiB; the body is 50 or 512 MiB
