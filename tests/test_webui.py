"""The web page's files over HTTP: types, caching, CSP, versioned asset URLs."""

from __future__ import annotations

import gzip
import re

import pytest
import pytest_twisted
import treq
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from loopdash.server.webui import (
    ASSET_CACHE_CONTROL,
    INDEX_NAME,
    WebUI,
    accepts_gzip,
    asset_version,
    read_package_files,
)
from tests.support import RunningDaemon

ASSET_URL = re.compile(r'(?:src|href)="(assets/[0-9a-f]{12}/[^"]+)"')
IMPORT = re.compile(r"""^import\s[^'"]*['"](\./[^'"]+)['"];""", re.MULTILINE)


def asset_paths(index: bytes) -> list[str]:
    return ["/" + path for path in ASSET_URL.findall(index.decode("utf-8"))]


@pytest_twisted.ensureDeferred
async def test_the_page_is_html_with_a_strict_policy_and_revalidated_on_each_load(
    sample_daemon: RunningDaemon,
) -> None:
    answer = await sample_daemon.get("/", authenticated=False)
    assert answer.code == 200
    assert answer.header("Content-Type") == "text/html; charset=utf-8"
    assert answer.header("Cache-Control") == "no-cache"
    assert answer.header("X-Content-Type-Options") == "nosniff"
    policy = answer.header("Content-Security-Policy") or ""
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.header("ETag")
    assert f"/assets/{WebUI.from_package().version}/app.js" in asset_paths(answer.body)


def test_the_page_has_no_inline_script_or_style() -> None:
    index = read_package_files()[INDEX_NAME].decode("utf-8")
    scripts = re.findall(r"<script\b[^>]*>", index)
    assert scripts and all(" src=" in tag for tag in scripts)
    assert "<style" not in index
    assert " style=" not in index
    assert not re.search(r"\son[a-z]+=", index)  # no inline event handlers


@pytest_twisted.ensureDeferred
async def test_every_asset_is_served_with_its_type_and_cached_for_a_year(
    sample_daemon: RunningDaemon,
) -> None:
    index = (await sample_daemon.get("/", authenticated=False)).body
    paths = asset_paths(index)
    assert any(p.endswith(".css") for p in paths) and any(p.endswith(".svg") for p in paths)
    types = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
    }
    for path in paths:
        answer = await sample_daemon.get(path, authenticated=False)
        assert answer.code == 200, path
        assert answer.header("Content-Type") == types[path[path.rfind(".") :]], path
        assert answer.header("Cache-Control") == ASSET_CACHE_CONTROL.decode(), path


def test_every_module_import_names_a_shipped_file() -> None:
    files = read_package_files()
    modules = [name for name in files if name.endswith(".js")]
    assert "app.js" in modules
    for name in modules:
        for target in IMPORT.findall(files[name].decode("utf-8")):
            assert target[2:] in files, f"{name} imports {target}, which is not shipped"


@pytest_twisted.ensureDeferred
async def test_an_asset_under_another_version_is_not_found(sample_daemon: RunningDaemon) -> None:
    answer = await sample_daemon.get("/assets/000000000000/app.js", authenticated=False)
    assert answer.code == 404
    assert answer.header("Cache-Control") == "no-store"
    answer = await sample_daemon.get("/assets/", authenticated=False)
    assert answer.code == 404


@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_404_and_api_paths_still_answer_json(sample_daemon: RunningDaemon) -> None:
    page = await sample_daemon.get("/no-such-page", authenticated=False)
    assert page.code == 404
    assert page.header("Content-Type") == "text/plain; charset=utf-8"
    api = await sample_daemon.get("/api/no-such-thing")
    assert api.code == 404
    assert api.json() == {"error": "Not found"}


@pytest_twisted.ensureDeferred
async def test_a_matching_etag_answers_304_without_a_body(sample_daemon: RunningDaemon) -> None:
    first = await sample_daemon.get("/", authenticated=False)
    etag = first.header("ETag")
    assert etag is not None
    again = await sample_daemon.get("/", authenticated=False, headers={b"If-None-Match": [etag.encode()]})
    assert again.code == 304
    assert again.body == b""


async def raw_get(url: str, accept_encoding: bytes) -> tuple[Headers, bytes]:
    """GET with a bare Agent: treq would ask for gzip and decode it out of sight."""
    from twisted.internet import reactor

    response = await Agent(reactor).request(
        b"GET", url.encode("ascii"), Headers({b"Accept-Encoding": [accept_encoding]})
    )
    return response.headers, await treq.content(response)


@pytest_twisted.ensureDeferred
async def test_gzip_is_sent_only_to_clients_that_accept_it(sample_daemon: RunningDaemon) -> None:
    index = (await sample_daemon.get("/", authenticated=False)).body
    app_js = sample_daemon.url + next(p for p in asset_paths(index) if p.endswith("/app.js"))
    plain_headers, plain = await raw_get(app_js, b"identity")
    assert not plain_headers.hasHeader(b"Content-Encoding")
    packed_headers, packed = await raw_get(app_js, b"gzip, br")
    assert packed_headers.getRawHeaders(b"Content-Encoding") == [b"gzip"]
    assert packed_headers.getRawHeaders(b"Vary") == [b"Accept-Encoding"]
    assert gzip.decompress(packed) == plain
    assert len(packed) < len(plain)
    assert packed_headers.getRawHeaders(b"ETag") != plain_headers.getRawHeaders(b"ETag")


@pytest_twisted.ensureDeferred
async def test_head_answers_headers_only_and_other_methods_are_refused(sample_daemon: RunningDaemon) -> None:
    head = await sample_daemon.request("HEAD", "/", authenticated=False)
    assert head.code == 200
    assert head.body == b""
    post = await sample_daemon.request("POST", "/", authenticated=False)
    assert post.code == 405
    assert post.header("Allow") == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize(
    "header, accepted",
    [
        (None, False),
        (b"gzip", True),
        (b"deflate, gzip;q=0.5", True),
        (b"gzip;q=0", False),
        (b"gzip; q=0.0, br", False),
        (b"*", True),
        (b"br", False),
    ],
)
def test_accept_encoding_is_read_with_its_quality(header: bytes | None, accepted: bool) -> None:
    class Request:
        def getHeader(self, name: bytes) -> bytes | None:
            return header

    assert accepts_gzip(Request()) is accepted  # type: ignore[arg-type]


def test_the_asset_version_changes_with_any_asset_and_names_the_index_assets() -> None:
    files = {"index.html": b'<script src="assets/__ASSET_VERSION__/app.js"></script>', "app.js": b"1"}
    first = WebUI(files)
    second = WebUI(dict(files, **{"app.js": b"2"}))
    assert first.version != second.version
    assert first.version == asset_version({"app.js": b"1"})
    assert f"assets/{first.version}/app.js".encode() in first.index.body
    assert first.lookup(f"/assets/{first.version}/app.js".encode()) is not None
    assert first.lookup(f"/assets/{second.version}/app.js".encode()) is None
    with pytest.raises(ValueError):
        WebUI({"app.js": b"1"})
