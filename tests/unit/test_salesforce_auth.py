"""The client-credentials flow over HTTP (respx): one token, shared by concurrent callers, asked
for again after a 401; refused credentials pause sync, an unavailable endpoint is waited out."""

import asyncio

import httpx
import pytest
import respx

from adapters.salesforce.auth import ClientCredentials
from application.errors import IntegrationAuthError, RetryableIntegrationError

INSTANCE = "https://acme.my.salesforce.com"
TOKEN_URL = f"{INSTANCE}/services/oauth2/token"


def granted(n: int = 1) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "access_token": f"00Dxx!token{n}",
            "instance_url": INSTANCE,
            "token_type": "Bearer",
            "issued_at": "1767225600000",
            "id": f"{INSTANCE}/id/00Dxx/005xx",
            "signature": "sig",
        },
    )


@respx.mock
async def test_one_token_is_asked_for_with_the_form_and_shared_by_concurrent_callers():
    route = respx.post(TOKEN_URL).mock(side_effect=[granted()])
    async with httpx.AsyncClient() as http:
        auth = ClientCredentials(http, INSTANCE + "/", "cid", "csecret")
        tokens = await asyncio.gather(*(auth.token() for _ in range(10)))
    assert {t.access_token for t in tokens} == {"00Dxx!token1"} and auth.requests == 1
    form = dict(httpx.QueryParams(route.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "csecret"}
    assert route.calls[0].request.headers["content-type"] == "application/x-www-form-urlencoded"


@respx.mock
async def test_an_expired_token_is_replaced_once_and_an_older_expiry_changes_nothing():
    respx.post(TOKEN_URL).mock(side_effect=[granted(1), granted(2)])
    async with httpx.AsyncClient() as http:
        auth = ClientCredentials(http, INSTANCE, "cid", "csecret")
        first = await auth.token()
        auth.expired(first)
        second = await auth.token()
        auth.expired(first)  # a late 401 of a call made with the old token
        assert await auth.token() == second
    assert (first.access_token, second.access_token, auth.requests) == ("00Dxx!token1", "00Dxx!token2", 2)


@respx.mock
@pytest.mark.parametrize(
    ("answer", "kind"),
    [
        (
            httpx.Response(400, json={"error": "invalid_client", "error_description": "invalid client credentials"}),
            IntegrationAuthError,
        ),
        (httpx.Response(401, text="Unauthorized"), IntegrationAuthError),
        (httpx.Response(503, text="maintenance"), RetryableIntegrationError),
        (httpx.ConnectError("refused"), RetryableIntegrationError),
        (httpx.Response(200, json={"unexpected": True}), RetryableIntegrationError),
    ],
)
async def test_a_failed_token_request_is_classified_and_never_cached(answer, kind):
    route = respx.post(TOKEN_URL).mock(side_effect=[answer, granted()])
    async with httpx.AsyncClient() as http:
        auth = ClientCredentials(http, INSTANCE, "cid", "csecret")
        with pytest.raises(kind) as caught:
            await auth.token()
        assert (await auth.token()).access_token == "00Dxx!token1"  # the next call asks again
    assert isinstance(caught.value, IntegrationAuthError) == (kind is IntegrationAuthError)  # auth pauses; the rest waits
    assert route.call_count == 2
    if kind is IntegrationAuthError and answer.status_code == 400:
        assert "invalid_client" in str(caught.value) and "csecret" not in str(caught.value)
