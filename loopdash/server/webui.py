"""The web dashboard's files: package data from ``loopdash/webui/``, served at ``/``.

Assets live under a versioned path, ``/assets/<version>/<name>``, where the
version is a hash of every asset's bytes: a changed file gets a new URL, so
assets are cached for a year while ``index.html`` (which names the version) is
revalidated on every load. ES modules import each other by relative path, so
they need no rewriting. Every page carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

from twisted.web import http
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

#: The placeholder in index.html that becomes the asset version.
VERSION_PLACEHOLDER = "__ASSET_VERSION__"
INDEX_NAME = "index.html"
ASSET_PREFIX = b"/assets/"
#: Every asset's requests under one label: the version and name never make a series of their own.
ASSET_ROUTE = "/assets/<version>/<name>"

CONTENT_TYPES: Mapping[str, bytes] = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".json": b"application/json; charset=utf-8",
    ".png": b"image/png",
    ".txt": b"text/plain; charset=utf-8",
}

#: No inline script or style, nothing from elsewhere, DOM sinks only through
#: Trusted Types (the page builds its DOM with createElement/textContent).
CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    b"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    b"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
)
ASSET_CACHE_CONTROL = b"public, max-age=31536000, immutable"
INDEX_CACHE_CONTROL = b"no-cache"


@dataclass(frozen=True)
class StaticFile:
    """One file ready to send: its bytes, their gzip form when smaller, its type and digest."""

    body: bytes
    gzipped: bytes | None
    content_type: bytes
    digest: str

    def etag(self, gzipped: bool) -> bytes:
        """A strong ETag per representation: the gzip form is a different entity."""
        return f'"{self.digest}{"-gz" if gzipped else ""}"'.encode("ascii")

    @classmethod
    def of(cls, name: str, body: bytes) -> StaticFile:
        suffix = name[name.rfind(".") :] if "." in name else ""
        content_type = CONTENT_TYPES.get(suffix, b"application/octet-stream")
        packed = gzip.compress(body, compresslevel=9, mtime=0)
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, packed if len(packed) < len(body) else None, content_type, digest)


def asset_version(assets: Mapping[str, bytes]) -> str:
    """A short hash over every asset's name and bytes."""
    digest = hashlib.sha256()
    for name in sorted(assets):
        digest.update(name.encode("utf-8") + b"\0" + assets[name] + b"\0")
    return digest.hexdigest()[:12]


def read_package_files() -> dict[str, bytes]:
    """Every file in the ``loopdash/webui`` package directory, by name, and those of
    its ``vendor/`` folder (libraries kept as published) as ``vendor/<name>``."""
    folder = resources.files("loopdash").joinpath("webui")
    files = {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}
    vendor = folder.joinpath("vendor")
    if vendor.is_dir():
        files.update({f"vendor/{e.name}": e.read_bytes() for e in vendor.iterdir() if e.is_file()})
    return files


def accepts_gzip(request: IRequest) -> bool:
    """Whether Accept-Encoding allows gzip (an explicit ``q=0`` refuses it)."""
    header = request.getHeader(b"accept-encoding")
    if header is None:
        return False
    for part in header.decode("latin-1").lower().split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip() in ("gzip", "*"):
            quality = params.strip()
            return not (quality.startswith("q=") and float_or_zero(quality[2:]) == 0.0)
    return False


def float_or_zero(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 0.0


class WebUI:
    """The page and its assets, loaded once and held in memory (they are small)."""

    def __init__(self, files: Mapping[str, bytes]) -> None:
        if INDEX_NAME not in files:
            raise ValueError(f"the web UI has no {INDEX_NAME}")
        assets = {name: body for name, body in files.items() if name != INDEX_NAME}
        self.version = asset_version(assets)
        index = files[INDEX_NAME].decode("utf-8").replace(VERSION_PLACEHOLDER, self.version)
        self.index = StaticFile.of(INDEX_NAME, index.encode("utf-8"))
        self.assets = {name: StaticFile.of(name, body) for name, body in assets.items()}

    @classmethod
    def from_package(cls) -> WebUI:
        return cls(read_package_files())

    def route_label(self, path: bytes) -> str | None:
        """The metrics label of a page path: ``/`` or ``/assets/<version>/<name>``; None if not served."""
        if self.lookup(path) is None:
            return None
        return "/" if path in (b"/", b"/index.html") else ASSET_ROUTE

    def lookup(self, path: bytes) -> tuple[StaticFile, bytes] | None:
        """The file at a request path and its Cache-Control, or None."""
        if path in (b"/", b"/index.html"):
            return self.index, INDEX_CACHE_CONTROL
        if not path.startswith(ASSET_PREFIX):
            return None
        version, _, name = path[len(ASSET_PREFIX) :].partition(b"/")
        if version.decode("ascii", "replace") != self.version:
            return None  # an old page's asset: never serve today's bytes under an immutable URL
        found = self.assets.get(name.decode("utf-8", "replace"))
        return (found, ASSET_CACHE_CONTROL) if found is not None else None


class PagesResource(Resource):
    """Serves :class:`WebUI` files for GET and HEAD, with ETags and gzip."""

    isLeaf = True

    def __init__(self, webui: WebUI) -> None:
        Resource.__init__(self)
        self.webui = webui

    def render(self, request: IRequest) -> bytes:
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"X-Frame-Options", b"DENY")
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"Allow", b"GET, HEAD, OPTIONS")
            return self._plain(request, http.NOT_ALLOWED, b"Method not allowed\n")
        found = self.webui.lookup(request.path)
        if found is None:
            return self._plain(request, http.NOT_FOUND, b"Not found\n")
        file, cache_control = found
        request.setHeader(b"Content-Type", file.content_type)
        request.setHeader(b"Cache-Control", cache_control)
        if file.gzipped is not None:
            request.setHeader(b"Vary", b"Accept-Encoding")
        use_gzip = file.gzipped is not None and accepts_gzip(request)
        if request.setETag(file.etag(use_gzip)) == http.CACHED:
            return b""
        if use_gzip and file.gzipped is not None:
            request.setHeader(b"Content-Encoding", b"gzip")
            return file.gzipped
        return file.body

    @staticmethod
    def _plain(request: IRequest, code: int, message: bytes) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return message


def web_pages() -> PagesResource:
    """The dashboard page and assets as shipped in the package."""
    return PagesResource(WebUI.from_package())
