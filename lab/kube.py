"""A very small Kubernetes REST client (stdlib only) for the lab and the end-to-end tests.

It talks to one apiserver with the lab's admin client certificate. No kubectl is built here,
and the tests need only get/list/create/patch/delete on a handful of objects.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass


class ApiError(Exception):
    def __init__(self, status: int, body: str, url: str) -> None:
        super().__init__(f"{status} from {url}: {body[:300]}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class Client:
    server: str  # https://10.77.0.11:6443
    ca: str
    cert: str
    key: str
    timeout: float = 10.0

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx

    def request(self, method: str, path: str, body: object | None = None,
                content_type: str = "application/json", timeout: float | None = None) -> object:
        url = self.server + path
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout or self.timeout) as r:
                raw = r.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode(errors="replace"), url) from None
        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def get(self, path: str) -> object:
        return self.request("GET", path)

    def post(self, path: str, body: object) -> object:
        return self.request("POST", path, body)

    def put(self, path: str, body: object) -> object:
        return self.request("PUT", path, body)

    def merge_patch(self, path: str, body: object) -> object:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str) -> object:
        return self.request("DELETE", path)

    def ready(self, timeout: float = 2.0) -> bool:
        """True when /readyz answers 200 "ok" (anonymous-readable in a default cluster)."""
        try:
            return self.request("GET", "/readyz", timeout=timeout) == "ok"
        except (ApiError, OSError, ssl.SSLError):
            return False
