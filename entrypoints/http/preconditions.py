"""``If-Match`` as RFC 9110 (section 13.1.1) defines it, over the ``ETag: "<version>"`` this API sends.

- ``*`` matches any current customer (a missing one is a 404 before any precondition);
- a list of entity tags matches if any of them matches, by *strong* comparison: a weak tag
  (``W/"1"``) never matches, nor does a well-formed tag this API never issued (``"abc"``): 412;
- a field that is not ``*`` nor a list of entity tags is malformed: 422 naming ``If-Match``.
Several ``If-Match`` lines are one comma-separated list, as for any list-valued field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NoReturn

from litestar.exceptions import ValidationException

# One list element: optional whitespace, an entity tag (or nothing: the list syntax allows empty
# elements), optional whitespace, then a comma or the end. etagc = %x21 / %x23-7E / obs-text; the
# header arrives decoded as latin-1, so obs-text is \x80-\xff.
_ELEMENT = re.compile(r'[ \t]*(?:(W/)?"([\x21\x23-\x7e\x80-\xff]*)")?[ \t]*(?:,|\Z)')
# The same grammar as one regular expression, for the OpenAPI document (what the parser accepts).
_TAG = r'(?:W/)?"[\x21\x23-\x7e\x80-\xff]*"'
IF_MATCH_PATTERN = rf"^[ \t]*(?:\*|(?:,[ \t]*)*{_TAG}(?:[ \t]*,[ \t]*(?:{_TAG})?)*)[ \t]*$"
_VERSION = re.compile(r"0|[1-9][0-9]{0,18}")  # how this API writes a version inside the quotes


def expected_versions(fields: Sequence[str]) -> frozenset[int] | None:
    """The versions a write may proceed from, given every ``If-Match`` field line of the request;
    ``None`` for no precondition (no field, or ``*``)."""
    if not fields:
        return None
    value = ", ".join(fields)
    if value.strip(" \t") == "*":
        return None
    versions: set[int] = set()
    tags, position = 0, 0
    while position < len(value):
        match = _ELEMENT.match(value, position)
        if match is None or match.end() == position:
            _malformed()
        position = match.end()
        weak, opaque = match.groups()
        if opaque is None:
            continue
        tags += 1
        if not weak and _VERSION.fullmatch(opaque):
            versions.add(int(opaque))
    if not tags:
        _malformed()
    return frozenset(versions)


def _malformed() -> NoReturn:
    raise ValidationException(
        extra=[
            {
                "key": "If-Match",
                "source": "header",
                "message": 'must be * or a list of entity tags, such as the ETag of a GET ("3", or "3", "4")',
            }
        ]
    )
