"""A small HTTP client for the operator CLI: clear errors for unreachable APIs and HTTP failures."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx


class CliError(Exception):
    """A failure the CLI reports as one line; `exit_code` 2 = cannot proceed, 1 = the API said no."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ApiClient:
    """Calls the mcp-sentinel API with an API key."""

    base_url: str
    api_key: str
    timeout: float = 15.0

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """JSON in, JSON out; raises CliError with the URL and a hint on every failure.

        `timeout` overrides the client's for calls the API is known to hold open longer.
        """
        if not self.base_url:
            raise CliError("no API to talk to: pass --api-url or set SENTINEL_API_URL", exit_code=2)
        url = self.base_url.rstrip("/") + path
        headers = {"x-api-key": self.api_key, "accept": "application/json"}
        wait = self.timeout if timeout is None else timeout
        try:
            resp = httpx.request(method, url, params=dict(params or {}), json=body, headers=headers, timeout=wait)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(
                f"cannot reach the API at {self.base_url} ({exc.__class__.__name__}). Is the stack running? "
                "Start it with `sentinel up`, or point --api-url / SENTINEL_API_URL at a running API.",
                exit_code=2,
            ) from exc
        except httpx.TimeoutException as exc:
            # Connected but no answer in time: the call may still complete on the server.
            raise CliError(
                f"the API at {self.base_url} did not answer {method} {path} within {wait:g} s "
                f"({exc.__class__.__name__}); it may still complete. Raise --timeout / SENTINEL_TIMEOUT "
                "if the API is just slow.",
                exit_code=2,
            ) from exc
        except httpx.HTTPError as exc:
            raise CliError(f"request to {url} failed: {exc}", exit_code=2) from exc
        try:
            data = resp.json() if resp.content else {}
        except json.JSONDecodeError:
            data = {"error": resp.text[:200]}
        if resp.status_code >= 400:
            detail = data.get("message") or data.get("error") or data.get("detail") if isinstance(data, dict) else data
            hint = " (check --api-key / SENTINEL_API_KEY)" if resp.status_code in (401, 403) else ""
            raise CliError(f"{method} {path} -> HTTP {resp.status_code}: {detail}{hint}", exit_code=1)
        return data
