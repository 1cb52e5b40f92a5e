"""Helpers for tests that talk to a real daemon over a real socket with treq."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import treq
from twisted.internet.defer import Deferred

from loopdash.service import Dashboard, DashboardConfig, build_dashboard


@dataclass
class Answer:
    code: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


@dataclass
class RunningDaemon:
    dashboard: Dashboard
    url: str
    root: str

    @property
    def token(self) -> str:
        with open(self.dashboard.config.token_path) as f:
            return f.read().strip()

    def auth(self, token: str | None = None) -> dict[bytes, list[bytes]]:
        return {b"Authorization": [f"Bearer {token or self.token}".encode()]}

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        authenticated: bool = True,
        headers: dict[bytes, list[bytes]] | None = None,
        **kwargs: Any,
    ) -> Answer:
        all_headers = dict(self.auth(token) if authenticated else {})
        all_headers.update(headers or {})
        response = await treq.request(method, self.url + path, headers=all_headers, **kwargs)
        body = await treq.content(response)
        return Answer(response.code, response.headers, body)

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def stop(self) -> None:
        await self.dashboard.service.stopService()


async def start_daemon(reactor: Any, root: str, **config: Any) -> RunningDaemon:
    config.setdefault("listen", "tcp:0:interface=127.0.0.1")
    dashboard = build_dashboard(DashboardConfig(root=root, **config), reactor)
    dashboard.service.startService()
    port = await dashboard.web.when_listening()
    address = port.getHost()
    return RunningDaemon(dashboard, f"http://127.0.0.1:{address.port}", root)


def settle(reactor: Any, seconds: float = 0.0) -> Deferred[None]:
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)
