"""A small client for Sluice's own API, used by the CLI (`status`, `watch`, steering) and the demo."""

from __future__ import annotations

import os
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class ApiClientError(Exception):
    def __init__(self, status: int | None, message: str):
        super().__init__(message)
        self.status = status


class SluiceClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 10.0):
        self.url = (url or os.environ.get("SLUICE_URL") or "http://127.0.0.1:8000").rstrip("/")
        env = os.environ.get
        # Steering needs the API token; reads take a read token or the API token; deploy
        # notifications an intake token or the API token. An explicit `token` is used for all.
        # SLUICE_TOKEN: your own token (`sluice token create`), which names you on what you do.
        mine = env("SLUICE_TOKEN")
        self.token = token if token is not None else mine or env("SLUICE_API_TOKEN")
        self.read_token = token if token is not None else mine or env("SLUICE_READ_TOKEN") or env("SLUICE_API_TOKEN")
        self.intake_token = (
            token if token is not None else mine or env("SLUICE_API_TOKEN") or env("SLUICE_INTAKE_TOKEN")
        )
        self.timeout = timeout
        self.session = requests.Session()
        # Retries on connection errors and 502/503/504 for idempotent reads only.
        retry = Retry(total=3, backoff_factor=0.3, status_forcelist=(502, 503, 504), allowed_methods={"GET"})
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        token = self.read_token if method == "GET" else self.intake_token if path == "/hooks/deploy" else self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self.session.request(method, self.url + path, headers=headers, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ApiClientError(
                None,
                f"cannot reach Sluice at {self.url} ({type(exc).__name__}); is `sluice serve` running? set SLUICE_URL",
            ) from None
        try:
            body = resp.json()
        except ValueError:
            body = {"error": resp.text[:200]}
        if resp.status_code >= 400:
            message = body.get("error", resp.reason) if isinstance(body, dict) else resp.reason
            raise ApiClientError(resp.status_code, f"{resp.status_code}: {message}")
        return body

    def release(self, release_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/releases/{release_id}")

    def releases(self, **filters: Any) -> dict[str, Any]:
        return self._request("GET", "/api/v1/releases", params={k: v for k, v in filters.items() if v})

    def steer(self, release_id: str, action: str, reason: str = "") -> dict[str, Any]:
        return self._request(
            "POST", f"/api/v1/releases/{release_id}/{action}", json={"reason": reason} if reason else None
        )

    def approve(self, release_id: str, gate: str | None = None, by: str | None = None) -> dict[str, Any]:
        """Approve the manual gate the release waits for: {status, message, approved_by, release}."""
        body = {k: v for k, v in (("gate", gate), ("by", by)) if v}
        return self._request("POST", f"/api/v1/releases/{release_id}/approve", json=body or None)

    def deploy(self, service: str, version: str, **extra: Any) -> dict[str, Any]:
        return self._request("POST", "/hooks/deploy", json={"service": service, "version": version, **extra})

    def rollback(
        self, service: str, reason: str = "", by: str | None = None, force: bool = False, application: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"reason": reason or None, "by": by, "force": force, "application": application}
        return self._request(
            "POST",
            f"/api/v1/services/{service}/rollback",
            json={k: v for k, v in body.items() if v not in (None, False)},
        )

    def known_bad(self, service: str, application: str | None = None) -> dict[str, Any]:
        params = {"application": application} if application else None
        return self._request("GET", f"/api/v1/services/{service}/known-bad", params=params)

    def clear_known_bad(self, service: str, version: str, application: str | None = None) -> dict[str, Any]:
        params = {"application": application} if application else None
        return self._request("DELETE", f"/api/v1/services/{service}/known-bad/{version}", params=params)

    def fleets(self, service: str | None = None) -> dict[str, Any]:
        return self._request("GET", "/api/v1/fleets", params={"service": service} if service else None)

    def fleet(self, fleet_id: str) -> dict[str, Any]:
        return self._request("GET", f"/api/v1/fleets/{fleet_id}")

    def abort_fleet(self, fleet_id: str, reason: str = "") -> dict[str, Any]:
        return self._request("POST", f"/api/v1/fleets/{fleet_id}/abort", json={"reason": reason} if reason else None)

    def approve_fleet(self, fleet_id: str) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/fleets/{fleet_id}/approve")
