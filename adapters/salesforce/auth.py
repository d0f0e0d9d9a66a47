"""Salesforce's OAuth 2.0 client-credentials flow: one access token per process, asked for when
first needed and again when a call says it expired (401 ``INVALID_SESSION_ID``: the flow has no
refresh token). Concurrent callers share one token request."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from application.errors import IntegrationAuthError, RetryableIntegrationError


class Token(msgspec.Struct, frozen=True):
    access_token: str
    instance_url: str
    token_type: str = "Bearer"
    id: str = ""  # https://login.salesforce.com/id/<organization id>/<user id>: who the token is for


class ClientCredentials:
    """``POST <instance>/services/oauth2/token`` with ``grant_type=client_credentials``."""

    def __init__(self, http: httpx.AsyncClient, instance_url: str, client_id: str, client_secret: str) -> None:
        self._http, self._url = http, f"{instance_url.rstrip('/')}/services/oauth2/token"
        self._form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.requests = 0  # token requests made (for tests and the limit figures)

    async def token(self) -> Token:
        if self._token is not None:
            return self._token
        async with self._lock:  # one request, however many callers wait for it
            if self._token is None:
                self._token = await self._request()
            return self._token

    def expired(self, token: Token) -> None:
        """A call made with ``token`` answered 401: the next ``token()`` asks again (unless another
        caller already has a newer one)."""
        if self._token == token:
            self._token = None

    async def _request(self) -> Token:
        self.requests += 1
        try:
            response = await self._http.post(self._url, data=self._form)
        except httpx.HTTPError as exc:
            raise RetryableIntegrationError(f"salesforce: the token request failed: {type(exc).__name__} {exc}".rstrip()) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise RetryableIntegrationError(f"salesforce: the token endpoint answered {response.status_code}")
        if response.status_code != 200:
            # 400 invalid_client / invalid_grant, 401: the connected app's credentials are refused.
            raise IntegrationAuthError(f"salesforce: credentials refused ({response.status_code}): {_reason(response)}")
        try:
            return msgspec.json.decode(response.content, type=Token)
        except msgspec.ValidationError as exc:
            raise RetryableIntegrationError(f"salesforce: unreadable token answer: {exc}") from exc


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return f"{body.get('error', '?')}: {body.get('error_description', '')}".strip()
    return str(body)[:200]
