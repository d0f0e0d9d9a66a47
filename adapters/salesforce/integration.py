"""``SalesforceIntegration``: the integration port over Salesforce's REST API (Contacts).

A plain async HTTP client (httpx) over the documented REST API rather than ``simple-salesforce``:
that library is synchronous (requests), so every call would hold a thread, and its retries,
sessions and errors would sit between our classification (``errors.classify``) and the wire.
The REST surface used here is small and stable: the OAuth token endpoint, ``sobjects/Contact``
(read, upsert by External ID, update, delete) and ``query``/``queryAll``.

**Which Contact is whose.** Two custom fields on Contact (names configurable):

- ``Custsync_Id__c`` (Text, External ID, Unique): ``<installation id>-<catalog id>``. A create is
  an upsert on it, so repeating a create can never make a second Contact, and two custsync
  installations writing to one org never touch each other's Contacts. It is what a record says
  about its catalog twin: a claim (``domain.ownership``), read as such.
- ``Custsync_Create__c`` (Text 255): the key of the create that wrote it, which proves our create
  made it (``domain.ownership.proves_own_create``), as Stripe's ``custsync_create`` metadata does.

**Changes**: there are no webhooks; catch-up polls ``queryAll`` on ``SystemModstamp`` (deleted
rows included) every ``CATCHUP_INTERVAL``. A change's event id is ``<Id>@<SystemModstamp>``, so
overlapping polls list the same change under the same id and the inbox drops the repeat.

**Deletions**: a 404 is never a deletion by itself (``domain.safety``). Only ``queryAll`` showing
the row with ``IsDeleted = true`` is -- unless the row was merged into another Contact
(``MasterRecordId`` set): the person lives on in the survivor, so that is read as "unknown here"
(the link breaks, nothing is deleted), never as a deletion.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx
import msgspec

from adapters.budget import RateBudget
from adapters.salesforce.auth import ClientCredentials, Token
from adapters.salesforce.contacts import contact_fields, customer_data, field_errors, split_name
from adapters.salesforce.errors import api_usage, classify
from application.errors import (
    ExternalCustomerMissing,
    PermanentIntegrationError,
    RetryableIntegrationError,
)
from application.ports import ChangePage, Page
from domain.binding import ExternalAccount
from domain.customer import CustomerData
from domain.errors import FieldError
from domain.messages import ChangeKind, ExternalChange, ExternalCustomer
from domain.ownership import Claim, OwnershipTag

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_CATALOG_ID = re.compile(r"[1-9][0-9]{0,18}")
_INSTALLATION = re.compile(r"[0-9a-f]{32}")
_ORG = re.compile(r"/id/(00D[A-Za-z0-9]{12,15})/")
_USER = re.compile(r"/id/00D[A-Za-z0-9]{12,15}/(005[A-Za-z0-9]{12}(?:[A-Za-z0-9]{3})?)$")
_BIGINT_MAX = 2**63 - 1
_TOKEN_MAX = 255


class CallMetrics(Protocol):
    def external_request(self, system: str, method: str, status: int | None, seconds: float) -> None: ...

    def rate_limit_waited(self, system: str, seconds: float) -> None: ...

    def api_usage(self, system: str, used: int, limit: int) -> None: ...


def external_value(tag: OwnershipTag) -> str:
    """What the External ID field holds for a catalog customer of this installation."""
    return f"{tag.installation}-{tag.internal_id}"


def read_claim(value: Any, key: Any) -> Claim:
    """What a Contact's two custsync fields say about its catalog twin (a claim, never a proof).
    A bare catalog id (typed by a person, or another tool) claims an id without an installation."""
    installation, internal = None, value
    if isinstance(value, str) and "-" in value:
        installation, _, internal = value.rpartition("-")
        installation = installation if _INSTALLATION.fullmatch(installation) else None
    internal_id = None
    if isinstance(internal, str) and _CATALOG_ID.fullmatch(internal) and int(internal) <= _BIGINT_MAX:
        internal_id = int(internal)
    create_key = key if isinstance(key, str) and 0 < len(key) <= _TOKEN_MAX and key.isprintable() else None
    return Claim(internal_id=internal_id, installation=installation, create_key=create_key)


def org_mode(instance_url: str) -> str:
    """``sandbox`` for a sandbox or scratch org's My Domain, ``production`` otherwise."""
    host = urlsplit(instance_url).hostname or ""
    return "sandbox" if any(part in host for part in (".sandbox.", ".scratch.", "test.salesforce.com")) else "production"


class SalesforceIntegration:
    def __init__(
        self,
        http: httpx.AsyncClient,
        credentials: ClientCredentials,
        *,
        api_version: str = "62.0",
        external_id_field: str = "Custsync_Id__c",
        create_key_field: str = "Custsync_Create__c",
        budget: RateBudget | None = None,
        metrics: CallMetrics | None = None,
        system: str = "salesforce",
        page_size: int = 200,
    ) -> None:
        self.system = system
        self._http, self._credentials, self._budget, self._metrics = http, credentials, budget, metrics
        self._base = f"/services/data/v{api_version}"
        self._id_field, self._key_field = external_id_field, create_key_field
        self._fields = ",".join(
            [
                "Id",
                "FirstName",
                "LastName",
                "Email",
                external_id_field,
                create_key_field,
                "IsDeleted",
                "MasterRecordId",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
                "LastModifiedById",
            ]
        )
        self._page_size = max(200, min(page_size, 2000))  # Salesforce's batchSize bounds

    # -- the port -----------------------------------------------------------------------------------
    async def account(self) -> ExternalAccount:
        token = await self._credentials.token()
        match = _ORG.search(token.id)
        if match is None:
            raise PermanentIntegrationError("salesforce: the token answer names no organization (its id URL)")
        return ExternalAccount(match.group(1)[:15], org_mode(token.instance_url))

    async def create_customer(self, data: CustomerData, *, tag: OwnershipTag, idempotency_key: str) -> ExternalCustomer:
        value = external_value(tag)
        claim = Claim(internal_id=tag.internal_id, installation=tag.installation, create_key=tag.create_key)
        # A Contact our create made and a person deleted before we stored its link is in the
        # Recycle Bin, which an upsert never matches: it would make a second one. So look first.
        rows = await self._query(f"SELECT {self._fields} FROM Contact WHERE {self._id_field} = {_quoted(value)}", everything=True)
        live = [row for row in rows if row.get("IsDeleted") is not True]
        if live:
            # An upsert would write over it. Ours (this create's key): an earlier attempt landed, and
            # what a person changed since is kept -- it is returned as it is, nothing is written.
            # Anyone else's (a catalog restored from a backup that reissues ids, a copied org, a
            # person who set the field): a claim, never a proof -- left for a person.
            ours = [row for row in live if row.get(self._key_field) == tag.create_key]
            if ours:
                return self._customer(ours[0])
            raise PermanentIntegrationError(
                f"salesforce: Contact {live[0].get('Id')} already holds {self._id_field} = {value} but not this create's "
                f"key (a restored catalog, a copied org, or set by hand): nothing was written; clear the field on it, or "
                f"link it by hand, then replay"
            )
        ours = [row for row in rows if row.get(self._key_field) == tag.create_key]
        if ours and ours[0].get("MasterRecordId"):
            # Made by our create, then merged by a person into another Contact: the person lives
            # on there. Another upsert would make the duplicate the merge removed.
            raise PermanentIntegrationError(
                f"salesforce: the Contact our create made ({ours[0].get('Id')}) was merged into "
                f"{ours[0]['MasterRecordId']}: nothing was written; link the customer to it by hand (custsync reconcile)"
            )
        if ours:
            return self._customer(ours[0])  # deleted by a person before its link was stored: carried
        body: dict[str, Any] = contact_fields(data)
        body[self._key_field] = tag.create_key
        response = await self._send(
            "PATCH",
            f"/sobjects/Contact/{self._id_field}/{quote(value, safe='')}",
            "contacts.upsert",
            json=body,
            accept={200, 201, 300},
        )
        if response.status_code == 300:
            raise PermanentIntegrationError(
                f"salesforce: several Contacts hold {self._id_field} = {value}: a person must keep one (nothing was written)"
            )
        contact_id = _json(response).get("id")
        if not isinstance(contact_id, str) or not _ID.fullmatch(contact_id):
            raise PermanentIntegrationError("salesforce: the upsert answered without a record id")
        return ExternalCustomer(external_id=contact_id, data=data, claim=claim)

    def field_errors(self, changes: Mapping[str, str | None]) -> list[FieldError]:
        return field_errors(changes)

    async def update_customer(
        self, external_id: str, changes: Mapping[str, str | None], *, idempotency_key: str | None = None
    ) -> None:
        # Salesforce has no idempotency keys; an update sets values, so repeating it is harmless.
        body: dict[str, str | None] = {}
        if "name" in changes:
            first, last = split_name(changes["name"])
            body.update(FirstName=first, LastName=last)
        if "email" in changes:
            body["Email"] = changes["email"]
        if body:
            await self._send("PATCH", f"/sobjects/Contact/{self._checked(external_id)}", "contacts.update", json=body)

    async def link_customer(self, external_id: str, tag: OwnershipTag, *, idempotency_key: str | None = None) -> None:
        body = {self._id_field: external_value(tag)}
        await self._send("PATCH", f"/sobjects/Contact/{self._checked(external_id)}", "contacts.link", json=body)

    async def delete_customer(self, external_id: str) -> None:
        await self._send("DELETE", f"/sobjects/Contact/{self._checked(external_id)}", "contacts.delete")

    async def retrieve_customer(self, external_id: str) -> ExternalCustomer:
        contact_id = self._checked(external_id)
        try:
            response = await self._send(
                "GET", f"/sobjects/Contact/{contact_id}", "contacts.retrieve", params={"fields": self._fields}
            )
        except ExternalCustomerMissing:
            # Gone, or never here? Only the Recycle Bin (queryAll) can say it was deleted.
            rows = await self._query(f"SELECT {self._fields} FROM Contact WHERE Id = {_quoted(contact_id)}", everything=True)
            deleted = [row for row in rows if row.get("IsDeleted") is True]
            if not deleted:
                raise
            if deleted[0].get("MasterRecordId"):
                raise ExternalCustomerMissing(
                    f"salesforce: {contact_id} was merged into {deleted[0]['MasterRecordId']}: not a deletion, the link breaks"
                ) from None
            return self._customer(deleted[0])
        return self._customer(_json(response))

    async def list_customers(
        self, *, limit: int, cursor: str | None = None, email: str | None = None, created_since: datetime | None = None
    ) -> Page:
        conditions = []
        if created_since is not None:
            conditions.append(f"CreatedDate >= {_literal(created_since)}")
        if email is not None:
            conditions.append(f"Email = {_quoted(email)}")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        rows, next_cursor = await self._page(
            f"SELECT {self._fields} FROM Contact{where} ORDER BY CreatedDate DESC, Id DESC", cursor, everything=False
        )
        customers = [self._customer(row) for row in rows if _readable(row)]
        if email is not None:  # SOQL compares text without regard to case; the port means exactly
            customers = [c for c in customers if c.data.email == email]
        return Page(customers, next_cursor)

    async def created_customers(self, *, created_since: datetime, cursor: str | None = None) -> Page:
        rows, next_cursor = await self._page(
            f"SELECT {self._fields} FROM Contact WHERE CreatedDate >= {_literal(created_since)} "
            "ORDER BY CreatedDate DESC, Id DESC",
            cursor,
            everything=True,
        )
        return Page([self._customer(row) for row in rows if _readable(row)], next_cursor)

    async def recent_changes(self, *, since: datetime, cursor: str | None = None) -> ChangePage:
        """Every Contact whose ``SystemModstamp`` is at or after ``since`` (deleted ones included),
        newest first: what changed since, each as the change it is now."""
        rows, next_cursor = await self._page(
            f"SELECT {self._fields} FROM Contact WHERE SystemModstamp >= {_literal(since)} ORDER BY SystemModstamp DESC, Id DESC",
            cursor,
            everything=True,
            quiet=True,
        )
        user = _USER.search((await self._credentials.token()).id)
        ours = user.group(1)[:15] if user is not None else None
        changes = [change for row in rows if _readable(row) and (change := self._change(row, ours)) is not None]
        return ChangePage(changes, next_cursor)

    # -- records ------------------------------------------------------------------------------------
    def _customer(self, row: Mapping[str, Any]) -> ExternalCustomer:
        if not _readable(row):
            raise PermanentIntegrationError("salesforce: unreadable Contact record")
        merged = bool(row.get("MasterRecordId"))
        return ExternalCustomer(
            external_id=row["Id"],
            data=_data(row),
            claim=read_claim(row.get(self._id_field), row.get(self._key_field)),
            deleted=row.get("IsDeleted") is True and not merged,
        )

    def _change(self, row: Mapping[str, Any], integration_user: str | None) -> ExternalChange | None:
        modstamp = _time(row.get("SystemModstamp"))
        changed = _time(row.get("LastModifiedDate")) or modstamp
        if modstamp is None or changed is None:
            return None
        customer = self._customer(row)
        if row.get("IsDeleted") is True:
            # A hint that says "deleted", never a final deletion event, so it is re-fetched
            # (domain.safety): a deletion in Salesforce can be undone (the Recycle Bin gives a Contact
            # back for 15 days), and a Contact merged away is no deletion at all -- the re-fetch
            # answers "deleted" only while it is still in the Recycle Bin, "merged" (a broken link,
            # never a deletion) for a merge, and the Contact itself once it was restored.
            customer = msgspec.structs.replace(customer, deleted=True)
            kind = ChangeKind.UPDATED
        else:
            kind = ChangeKind.CREATED if _time(row.get("CreatedDate")) == changed else ChangeKind.UPDATED
        modified_by = row.get("LastModifiedById")
        return ExternalChange(
            # Two states of one Contact may share a stamp: the state's digest tells them apart,
            # while a state polled twice (overlapping polls) keeps its one id.
            event_id=change_event_id(row, self._id_field, self._key_field),
            system=self.system,
            kind=kind,
            external_id=row["Id"],
            occurred_at=changed,
            customer=customer,
            # Written last by this integration's own user: the echo of a write of ours, never a
            # person's change (each installation has its own integration user: docs/tutorials/adding-salesforce.md).
            by_us=integration_user is not None and isinstance(modified_by, str) and modified_by[:15] == integration_user,
        )

    # -- the wire -----------------------------------------------------------------------------------
    async def _query(self, soql: str, *, everything: bool) -> list[dict[str, Any]]:
        rows, cursor = await self._page(soql, None, everything=everything)
        for _ in range(50):  # a look-up by a unique field or an id: one page; bounded all the same
            if cursor is None:
                break
            more, cursor = await self._page(soql, cursor, everything=everything)
            rows.extend(more)
        return rows

    async def _page(
        self,
        soql: str,
        cursor: str | None,
        *,
        everything: bool,
        quiet: bool = False,
    ) -> tuple[list[dict[str, Any]], str | None]:
        headers = {"Sforce-Query-Options": f"batchSize={self._page_size}"}
        if cursor is not None:
            if not re.fullmatch(rf"{re.escape(self._base)}/query/[A-Za-z0-9]+-[0-9]+", cursor):
                raise PermanentIntegrationError("salesforce: not a query cursor of ours")
            response = await self._send("GET", cursor.removeprefix(self._base), "query.more", headers=headers, quiet=quiet)
        else:
            response = await self._send(
                "GET",
                "/queryAll" if everything else "/query",
                "queryAll" if everything else "query",
                params={"q": soql},
                headers=headers,
                quiet=quiet,
            )
        body = _json(response)
        rows = [row for row in body.get("records") or [] if isinstance(row, dict)]
        next_url = body.get("nextRecordsUrl")
        return rows, next_url if isinstance(next_url, str) and not body.get("done", True) else None

    async def _send(
        self,
        method: str,
        path: str,
        label: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        accept: set[int] | None = None,
        quiet: bool = False,
    ) -> httpx.Response:
        """One call, with a token; a 401 asks for a new token once (the flow has no refresh token).
        ``quiet``: a poll's page, logged at DEBUG when it succeeds."""
        token = await self._credentials.token()
        response = await self._once(method, token, path, label, json=json, params=params, headers=headers, quiet=quiet)
        if response.status_code == 401:
            self._credentials.expired(token)
            token = await self._credentials.token()
            response = await self._once(method, token, path, label, json=json, params=params, headers=headers, quiet=quiet)
        if response.status_code < 300 or (accept is not None and response.status_code in accept):
            return response
        raise classify(response)  # a second 401: IntegrationAuthError

    async def _once(
        self,
        method: str,
        token: Token,
        path: str,
        label: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
        quiet: bool,
    ) -> httpx.Response:
        if self._budget is not None:
            waited = await self._budget.acquire()
            if self._metrics is not None:
                self._metrics.rate_limit_waited(self.system, waited)
        url = f"{token.instance_url.rstrip('/')}{self._base}{path}"
        if params:
            url = f"{url}?{urlencode(params)}"
        start, status = time.perf_counter(), None
        try:
            response = await self._http.request(
                method, url, json=json, headers={"Authorization": f"Bearer {token.access_token}", **(headers or {})}
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            # No answer: a write may have landed all the same; an update or an upsert repeated is harmless.
            raise RetryableIntegrationError(
                f"salesforce: {method} {path.split('?')[0]}: {type(exc).__name__} {exc}".rstrip()
            ) from exc
        finally:
            seconds = time.perf_counter() - start
            if self._metrics is not None:
                self._metrics.external_request(self.system, label, status, seconds)
            # A poll's page that succeeds: at DEBUG, or an idle org would fill the log with one line per
            # poll (the poll itself says what it found). Every other call, look-ups included: INFO.
            level = logging.DEBUG if quiet and status is not None and status < 400 else logging.INFO
            log.log(
                level, "salesforce %s -> %s in %.0f ms", label, status or "no answer", seconds * 1000, extra={"status": status}
            )
        usage = api_usage(response)
        if usage is not None and self._metrics is not None:
            self._metrics.api_usage(self.system, *usage)
        return response

    @staticmethod
    def _checked(external_id: str) -> str:
        """A record id goes into URLs and SOQL only if it is one (15 or 18 letters and digits):
        anything else is no record of this org."""
        if not _ID.fullmatch(external_id):
            raise ExternalCustomerMissing(f"salesforce: {external_id[:40]!r} is not a record id")
        return external_id


def change_event_id(row: Mapping[str, Any], external_id_field: str, create_key_field: str) -> str:
    """``<Id>@<SystemModstamp>#<digest of the state>``: two states of one Contact may share a stamp."""
    fields = ("FirstName", "LastName", "Email", "IsDeleted", "MasterRecordId", external_id_field, create_key_field)
    state = [value if isinstance(value := row.get(f), str | bool) else None for f in fields]
    return f"{row['Id']}@{row['SystemModstamp']}#{hashlib.sha256(msgspec.json.encode(state)).hexdigest()[:12]}"


def _readable(row: Mapping[str, Any]) -> bool:
    return isinstance(row.get("Id"), str) and bool(_ID.fullmatch(row["Id"])) and isinstance(row.get("SystemModstamp", ""), str)


def _data(row: Mapping[str, Any]) -> CustomerData:
    fields = {k: row.get(k) for k in ("FirstName", "LastName", "Email")}
    clean = {k: (v.replace("\x00", "") if isinstance(v, str) else None) for k, v in fields.items()}
    return customer_data(clean)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    except ValueError:
        return None


def _literal(at: datetime) -> str:
    """A SOQL dateTime literal: whole seconds, UTC (the documented formats have no fraction), so a
    bound rounds down and ``>=`` includes its whole second."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _quoted(value: str) -> str:
    """A SOQL string literal: quotes and backslashes escaped, line breaks spelled out."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
