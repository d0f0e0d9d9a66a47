"""A Salesforce org in memory: its Contacts behind the REST API, as an httpx transport.

``InMemorySalesforce.handle`` answers ``httpx.Request``s the way Salesforce's REST API does, so
the Salesforce adapter (``adapters.salesforce``) runs unchanged on top of it: through
``httpx.MockTransport`` in ``custsync dev`` and unit tests, under respx in the adapter's HTTP
tests, and behind a real HTTP server in the end-to-end tests (``tests/support/salesforce_server``).
It behaves like Salesforce where sync depends on it -- including where Salesforce is *not* kind
(``../shared/SALESFORCE.md``):

- OAuth 2.0 client credentials (``POST /services/oauth2/token``, form-encoded); a token expires
  (``expire_tokens``) and every call with it then answers 401 ``INVALID_SESSION_ID``;
- 18-character ids it chooses (``003...``); ``LastName`` required; ``FirstName`` 40, ``LastName``
  80, ``Email`` 80 characters, ``Email`` validated; leading and trailing spaces trimmed; unknown
  fields refused (``INVALID_FIELD``); the External ID field unique (``DUPLICATE_VALUE``);
- upsert by External ID (``PATCH /sobjects/Contact/<field>/<value>``): 201 when it creates, 200
  when it updates, 300 with the list when several records match; a deleted record is never
  matched (upserting its value again makes a new Contact);
- a deleted Contact goes to the Recycle Bin: reading, updating or deleting it answers 404
  ``ENTITY_IS_DELETED`` (and an id never seen 404 ``NOT_FOUND``): only ``queryAll`` still shows
  it, with ``IsDeleted = true``. A merge deletes the losing Contact the same way, with
  ``MasterRecordId`` naming the survivor;
- ``LastModifiedDate`` / ``SystemModstamp`` in milliseconds on the injected clock; ``query`` and
  ``queryAll`` evaluate the SOQL the adapter sends (a small subset: ``SELECT ... FROM Contact
  WHERE ... ORDER BY ... LIMIT n``, whole-second datetime literals, AND/OR with parentheses and
  never mixed without them) and page with ``nextRecordsUrl`` (``Sforce-Query-Options:
  batchSize=200..2000``; default 2000);
- ``Sforce-Limit-Info: api-usage=used/limit`` on every answer; past the org's daily limit, 403
  ``REQUEST_LIMIT_EXCEEDED``; errors as ``[{"errorCode", "message", "fields"}]``.

Faults are injected with ``fail_next``: a call answered 5xx (or an error code) before or after it
took effect; ``refuse`` adds an admin's validation rule.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import msgspec

from adapters.clock import SystemClock
from application.ports import Clock

WRITABLE = ("FirstName", "LastName", "Email")
LIMITS = {"FirstName": 40, "LastName": 80, "Email": 80}
SYSTEM_FIELDS = (
    "Id",
    "IsDeleted",
    "MasterRecordId",
    "CreatedDate",
    "LastModifiedDate",
    "SystemModstamp",
    "LastModifiedById",
    "Name",
)
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)$")
DEFAULT_BATCH = 2000


class Fault(msgspec.Struct, frozen=True):
    status: int = 500
    code: str = "SERVER_UNAVAILABLE"
    executed: bool = False  # the change happened before the failure was answered


class SoqlError(ValueError):
    pass


def stamp(at: datetime) -> str:
    """Salesforce's JSON datetime: ``2026-11-24T22:33:48.513+0000``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


class InMemorySalesforce:
    def __init__(
        self,
        clock: Clock | None = None,
        ids: random.Random | None = None,
        *,
        external_id_field: str = "Custsync_Id__c",
        create_key_field: str = "Custsync_Create__c",
        client_id: str = "custsync-dev",
        client_secret: str = "custsync-dev",
        org_id: str | None = None,
        daily_limit: int = 100_000,
        instance_url: str = "https://custsync-dev.my.salesforce.com",
    ) -> None:
        self._clock = clock or SystemClock()
        self.ids = ids or random.Random(secrets.randbits(64))
        self.org_id = org_id or f"00D{self._suffix()}"
        self.integration_user = f"005{self._suffix()}"
        self.person = f"005{self._suffix()}"  # whoever edits through the UI (tests, dev routes)
        self.instance_url = instance_url.rstrip("/")
        self.external_id_field, self.create_key_field = external_id_field, create_key_field
        self.custom_fields = (external_id_field, create_key_field)
        self._client = (client_id, client_secret)
        self.contacts: dict[str, dict[str, Any]] = {}  # every Contact ever made, deleted ones too
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.daily_limit, self.used = daily_limit, 0
        self.calls: list[tuple[str, str]] = []  # (method, path) of every data call
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.refusals: list[Callable[[Mapping[str, Any]], bool]] = []  # fields -> refuse (validation rule)?
        self._locators: dict[str, list[dict[str, Any]]] = {}
        self._seq = itertools.count(1)
        self._last_stamp: datetime | None = None

    # -- what tests and dev routes do as people in the org ------------------------------------------
    def refuse(self, when: Callable[[Mapping[str, Any]], bool]) -> None:
        self.refusals.append(when)

    def fail_next(
        self, operation: str, status: int = 500, *, code: str = "SERVER_UNAVAILABLE", executed: bool = False, times: int = 1
    ) -> None:
        """``operation``: token, create (upsert), update, delete, retrieve, query."""
        self.faults[operation].extend([Fault(status, code, executed)] * times)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def create(self, **fields: Any) -> dict[str, Any]:
        """A Contact made by a person (no External ID unless given)."""
        return self._insert(self._clean(fields, creating=True), self.person)

    def edit(self, contact_id: str, **fields: Any) -> dict[str, Any]:
        return self._update(contact_id, self._clean(fields, creating=False), self.person)

    def delete(self, contact_id: str) -> None:
        self._delete(contact_id, self.person)

    def undelete(self, contact_id: str) -> None:
        """Restore a deleted Contact from the Recycle Bin (a person's "Restore", or the API's
        undelete): a Salesforce deletion is not final. A merged-away Contact cannot be restored."""
        contact = self.contacts.get(contact_id)
        if contact is None or not contact["IsDeleted"] or contact["MasterRecordId"]:
            raise Refused(400, "UNDELETE_FAILED", "entity is not in the recycle bin")
        now = self._now()
        contact.update(IsDeleted=False, LastModifiedDate=now, SystemModstamp=now, LastModifiedById=self.person)

    def merge(self, master_id: str, loser_id: str) -> None:
        """Merge ``loser_id`` into ``master_id``: the loser is deleted with ``MasterRecordId`` set."""
        self._live(master_id)
        self._delete(loser_id, self.person, master=master_id)

    def shown(self, contact: Mapping[str, Any]) -> dict[str, Any]:
        """A Contact as the REST API shows it (every field)."""
        return self._view(contact, "")

    def live(self) -> list[dict[str, Any]]:
        return [c for c in self.contacts.values() if not c["IsDeleted"]]

    def by_external_id(self, value: str) -> list[dict[str, Any]]:
        return [c for c in self.live() if c.get(self.external_id_field) == value]

    # -- the REST API -------------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        if path == "/services/oauth2/token" and request.method == "POST":
            return self._token(request)
        match = _DATA.match(path)
        if match is None:
            return self._error(404, "NOT_FOUND", "The requested resource does not exist")
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return self._answer(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
        if self.used >= self.daily_limit:
            return self._error(403, "REQUEST_LIMIT_EXCEEDED", f"TotalRequests Limit exceeded. ({self.daily_limit})")
        self.used += 1
        rest = match.group(2)
        self.calls.append((request.method, rest))
        try:
            return self._route(request, rest)
        except Refused as refusal:
            return self._answer(
                refusal.status, [{"errorCode": refusal.code, "message": refusal.message, "fields": refusal.fields}]
            )

    def _route(self, request: httpx.Request, rest: str) -> httpx.Response:
        parts = [p for p in rest.split("/") if p]
        method = request.method
        if parts[:1] in (["query"], ["queryAll"]):
            return self._faulty("query", lambda: self._query(request, parts))
        if parts[:2] != ["sobjects", "Contact"]:
            raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
        if len(parts) == 4 and method == "PATCH":
            field, value = parts[2], parts[3]
            return self._faulty("create", lambda: self._upsert(field, value, _body(request)))
        if len(parts) != 3:
            raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
        contact_id = parts[2]
        if method == "GET":
            fields = parse_qs(request.url.query.decode()).get("fields", [""])[0]
            return self._faulty("retrieve", lambda: self._answer(200, self._view(self._live(contact_id), fields)))
        if method == "PATCH":
            body = self._clean(_body(request), creating=False)
            return self._faulty("update", lambda: (self._update(contact_id, body, self.integration_user), httpx.Response(204))[1])
        if method == "DELETE":

            def delete() -> httpx.Response:
                self._delete(contact_id, self.integration_user)
                return httpx.Response(204)

            return self._faulty("delete", delete)
        raise Refused(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")

    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        fault = self.faults["token"].popleft() if self.faults["token"] else None
        if fault is not None:
            return self._answer(fault.status, {"error": "unknown_error", "error_description": "retry later"})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return self._answer(400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"})
        if (form.get("client_id"), form.get("client_secret")) != self._client:
            return self._answer(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        token = f"{self.org_id}!{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return self._answer(
            200,
            {
                "access_token": token,
                "instance_url": self.instance_url,
                "token_type": "Bearer",
                "scope": "api",
                "id": f"https://login.salesforce.com/id/{self.org_id}/{self.integration_user}",
                "issued_at": str(int(self._clock.now().timestamp() * 1000)),
                "signature": "unchecked",
            },
        )

    def _upsert(self, field: str, value: str, body: dict[str, Any]) -> httpx.Response:
        if field != self.external_id_field:
            raise Refused(400, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}")
        if field in body and body[field] != value:
            raise Refused(400, "INVALID_FIELD", f"The external ID field {field} cannot be set in the body of an upsert", [field])
        matches = self.by_external_id(value)
        if len(matches) > 1:
            urls = [f"/services/data/v62.0/sobjects/Contact/{c['Id']}" for c in matches]
            return self._answer(300, urls)
        if matches:
            contact = self._update(matches[0]["Id"], self._clean(body, creating=False), self.integration_user)
            return self._answer(200, {"id": contact["Id"], "success": True, "errors": [], "created": False})
        contact = self._insert(self._clean({**body, field: value}, creating=True), self.integration_user)
        return self._answer(201, {"id": contact["Id"], "success": True, "errors": [], "created": True})

    def _query(self, request: httpx.Request, parts: list[str]) -> httpx.Response:
        if len(parts) == 2:  # a nextRecordsUrl: /query/<locator>-<offset>
            locator, _, offset = parts[1].rpartition("-")
            rows = self._locators.get(locator)
            if rows is None or not offset.isdigit():
                raise Refused(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            return self._page(rows, int(offset), locator, _batch(request), self._version(request))
        q = parse_qs(request.url.query.decode()).get("q", [""])[0]
        try:
            query = parse_soql(q)
        except SoqlError as exc:
            raise Refused(400, "MALFORMED_QUERY", str(exc)) from None
        if query.sobject != "Contact":
            raise Refused(400, "INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
        known = set(WRITABLE) | set(SYSTEM_FIELDS) | set(self.custom_fields)
        unknown = [f for f in [*query.fields, *query.where_fields(), *(f for f, _ in query.order)] if f not in known]
        if unknown:
            raise Refused(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Contact'.")
        everything = parts[0] == "queryAll"
        rows = [c for c in self.contacts.values() if (everything or not c["IsDeleted"]) and query.matches(c)]
        for field, descending in reversed(query.order):
            rows.sort(key=lambda c: _sortable(c.get(field)), reverse=descending)
        if query.limit is not None:
            rows = rows[: query.limit]
        rows = [self._view(c, ",".join(query.fields)) for c in rows]
        locator = f"01g{self._suffix()[:15]}"
        self._locators[locator] = rows
        return self._page(rows, 0, locator, _batch(request), self._version(request))

    @staticmethod
    def _version(request: httpx.Request) -> str:
        match = _DATA.match(unquote(request.url.path))
        return match.group(1) if match else "62.0"

    def _page(self, rows: list[dict[str, Any]], offset: int, locator: str, batch: int, version: str) -> httpx.Response:
        chunk = rows[offset : offset + batch]
        body: dict[str, Any] = {"totalSize": len(rows), "done": offset + batch >= len(rows), "records": chunk}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}-{offset + batch}"
        return self._answer(200, body)

    # -- the records --------------------------------------------------------------------------------
    def _insert(self, fields: dict[str, Any], by: str) -> dict[str, Any]:
        if not fields.get("LastName"):
            raise Refused(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])
        self._validate(fields, None)
        now = self._now()
        contact: dict[str, Any] = {
            "Id": f"003{self._suffix()}",
            "IsDeleted": False,
            "MasterRecordId": None,
            "CreatedDate": now,
            "LastModifiedDate": now,
            "SystemModstamp": now,
            "LastModifiedById": by,
            "FirstName": None,
            "LastName": None,
            "Email": None,
            **dict.fromkeys(self.custom_fields),
        }
        contact.update(fields)
        self.contacts[contact["Id"]] = contact
        return contact

    def _update(self, contact_id: str, fields: dict[str, Any], by: str) -> dict[str, Any]:
        contact = self._live(contact_id)
        if "LastName" in fields and not fields["LastName"]:
            raise Refused(400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"])
        self._validate(fields, contact_id)
        now = self._now()
        contact.update(fields, LastModifiedDate=now, SystemModstamp=now, LastModifiedById=by)
        return contact

    def _delete(self, contact_id: str, by: str, master: str | None = None) -> None:
        contact = self._live(contact_id)
        now = self._now()
        contact.update(IsDeleted=True, MasterRecordId=master, LastModifiedDate=now, SystemModstamp=now, LastModifiedById=by)

    def _validate(self, fields: Mapping[str, Any], contact_id: str | None) -> None:
        for field, limit in LIMITS.items():
            value = fields.get(field)
            if value is not None and len(value) > limit:
                raise Refused(
                    400, "STRING_TOO_LONG", f"{field}: data value too large: {value[:20]} (max length={limit})", [field]
                )
        email = fields.get("Email")
        if email is not None and not _EMAIL.match(email):
            raise Refused(400, "INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"])
        value = fields.get(self.external_id_field)
        if value is not None and any(c["Id"] != contact_id for c in self.by_external_id(value)):
            raise Refused(
                400,
                "DUPLICATE_VALUE",
                f"duplicate value found: {self.external_id_field} duplicates value on record with id: "
                f"{self.by_external_id(value)[0]['Id']}",
                [self.external_id_field],
            )
        if any(refused(fields) for refused in self.refusals):
            raise Refused(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Refused by a validation rule of this org", [])

    def _clean(self, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        """A write's fields as Salesforce stores them: known fields only, strings trimmed, blanks null."""
        allowed = set(WRITABLE) | set(self.custom_fields)
        clean: dict[str, Any] = {}
        for field, value in body.items():
            if field not in allowed:
                raise Refused(400, "INVALID_FIELD", f"No such column '{field}' on sobject of type Contact", [field])
            if value is not None and not isinstance(value, str):
                raise Refused(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string from {type(value).__name__}", [field]
                )
            clean[field] = (value.strip() or None) if isinstance(value, str) else None
        return clean

    def _live(self, contact_id: str) -> dict[str, Any]:
        contact = self.contacts.get(contact_id) if len(contact_id) in (15, 18) else None
        if contact is None:
            raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
        if contact["IsDeleted"]:
            raise Refused(404, "ENTITY_IS_DELETED", "entity is deleted")
        return contact

    def _view(self, contact: Mapping[str, Any], fields: str) -> dict[str, Any]:
        names = [f.strip() for f in fields.split(",") if f.strip()] or [*SYSTEM_FIELDS, *WRITABLE, *self.custom_fields]
        view: dict[str, Any] = {
            "attributes": {"type": "Contact", "url": f"/services/data/v62.0/sobjects/Contact/{contact['Id']}"}
        }
        for name in names:
            if name == "Name":
                value: Any = " ".join(p for p in (contact.get("FirstName"), contact.get("LastName")) if p)
            else:
                value = contact.get(name)
            view[name] = stamp(value) if isinstance(value, datetime) else value
        return view

    def _faulty(self, operation: str, run: Callable[[], httpx.Response]) -> httpx.Response:
        fault = self.faults[operation].popleft() if self.faults[operation] else None
        if fault is None:
            return run()
        if fault.executed:
            run()
        return self._error(fault.status, fault.code, "injected by the test server")

    def _now(self) -> datetime:
        """The server's stamp, in milliseconds, never twice the same nor going back."""
        at = self._clock.now().astimezone(UTC)
        now = at.replace(microsecond=at.microsecond // 1000 * 1000)
        if self._last_stamp is not None and now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _suffix(self) -> str:
        alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
        return "".join(self.ids.choice(alphabet) for _ in range(15))

    def _error(self, status: int, code: str, message: str) -> httpx.Response:
        return self._answer(status, [{"errorCode": code, "message": message, "fields": []}])

    def _answer(self, status: int, body: Any) -> httpx.Response:
        headers = {
            "Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}",
            "Content-Type": "application/json;charset=UTF-8",
        }
        return httpx.Response(status, headers=headers, content=json.dumps(body).encode())


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields or []


def _body(request: httpx.Request) -> dict[str, Any]:
    try:
        body = json.loads(request.content or b"{}")
    except ValueError:
        raise Refused(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise Refused(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
    return body


def _batch(request: httpx.Request) -> int:
    match = re.search(r"batchSize=(\d+)", request.headers.get("sforce-query-options", ""))
    return max(200, min(int(match.group(1)), 2000)) if match else DEFAULT_BATCH


def _sortable(value: Any) -> tuple[int, Any]:
    # Salesforce sorts nulls first ascending (NULLS FIRST is the default).
    return (0, "") if value is None else (1, value)


# -- SOQL: the subset the adapter sends ----------------------------------------------------------
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<dt>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d))|"
    r"(?P<num>\d+)|(?P<op><=|>=|!=|=|<|>)|(?P<punct>[(),])|(?P<word>[A-Za-z_][A-Za-z0-9_.]*))"
)


class Comparison(msgspec.Struct, frozen=True):
    field: str
    op: str
    value: Any

    def holds(self, record: Mapping[str, Any]) -> bool:
        actual = record.get(self.field)
        if self.op == "=":
            return bool(actual == self.value)
        if self.op == "!=":
            return bool(actual != self.value)
        if actual is None or self.value is None:
            return False
        return bool(
            {"<": actual < self.value, "<=": actual <= self.value, ">": actual > self.value, ">=": actual >= self.value}[self.op]
        )


class Condition(msgspec.Struct, frozen=True):
    joiner: str  # AND, OR
    terms: list[Any]

    def holds(self, record: Mapping[str, Any]) -> bool:
        results = (term.holds(record) for term in self.terms)
        return all(results) if self.joiner == "AND" else any(results)

    def fields(self) -> list[str]:
        return [f for t in self.terms for f in (t.fields() if isinstance(t, Condition) else [t.field])]


class Soql(msgspec.Struct, frozen=True):
    fields: list[str]
    sobject: str
    where: Condition | None
    order: list[tuple[str, bool]]  # (field, descending)
    limit: int | None

    def matches(self, record: Mapping[str, Any]) -> bool:
        return self.where is None or self.where.holds(record)

    def where_fields(self) -> list[str]:
        return self.where.fields() if self.where is not None else []


def parse_soql(text: str) -> Soql:
    tokens = _tokens(text)
    pos = 0

    def peek(upper: bool = True) -> str | None:
        if pos >= len(tokens):
            return None
        kind, value = tokens[pos]
        return value.upper() if upper and kind == "word" else value

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise SoqlError(f"unexpected end of query{f', expecting {expected}' if expected else ''}")
        token = tokens[pos]
        if expected is not None and (token[1].upper() if token[0] == "word" else token[1]) != expected:
            raise SoqlError(f"unexpected token: '{token[1]}', expecting {expected}")
        pos += 1
        return token

    take("SELECT")
    fields = [take()[1]]
    while peek() == ",":
        take(",")
        fields.append(take()[1])
    take("FROM")
    sobject = take()[1]
    where = None

    def condition() -> Condition:
        terms, joiner = [term()], None
        while peek() in ("AND", "OR"):
            word = take()[1].upper()
            if joiner is not None and word != joiner:
                raise SoqlError("unexpected token: mixing AND and OR requires parentheses")
            joiner = word
            terms.append(term())
        return Condition(joiner or "AND", terms)

    def term() -> Any:
        if peek() == "(":
            take("(")
            inner = condition()
            take(")")
            return inner
        kind, field = take()
        if kind != "word":
            raise SoqlError(f"unexpected token: '{field}'")
        op = take()
        if op[0] != "op":
            raise SoqlError(f"unexpected token: '{op[1]}', expecting an operator")
        return Comparison(field, op[1], _literal(take()))

    if peek() == "WHERE":
        take("WHERE")
        where = condition()
    order: list[tuple[str, bool]] = []
    if peek() == "ORDER":
        take("ORDER")
        take("BY")
        while True:
            field = take()[1]
            descending = False
            if peek() in ("ASC", "DESC"):
                descending = take()[1].upper() == "DESC"
            order.append((field, descending))
            if peek() != ",":
                break
            take(",")
    limit = None
    if peek() == "LIMIT":
        take("LIMIT")
        kind, value = take()
        if kind != "num":
            raise SoqlError("LIMIT takes a number")
        limit = int(value)
    if pos != len(tokens):
        raise SoqlError(f"unexpected token: '{tokens[pos][1]}'")
    return Soql(fields, sobject, where, order, limit)


def _tokens(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None:
            raise SoqlError(f"unexpected character at {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        pos = match.end()
    return tokens


def _literal(token: tuple[str, str]) -> Any:
    kind, value = token
    if kind == "str":
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), value[1:-1])
    if kind == "dt":
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == "num":
        return int(value)
    if kind == "word" and value.upper() in ("TRUE", "FALSE"):
        return value.upper() == "TRUE"
    if kind == "word" and value.upper() == "NULL":
        return None
    raise SoqlError(f"unexpected token: '{value}', expecting a value")
