"""Path and query values as the API reads them: one spelling per id, and no control characters."""

from __future__ import annotations

import re
from typing import Annotated

from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import PathParameter

BIGINT_MAX = 2**63 - 1  # ids are PostgreSQL bigints
_CANONICAL_ID = re.compile(r"0|[1-9][0-9]{0,18}")
# Documents in the schema the rule that ``guards.printable_parameters`` enforces.
PRINTABLE = r"^[^\u0000-\u001f\u007f-\u009f]*$"

# The segment is taken as text and read by ``catalog_id``: Litestar's ``{x:int}`` converter calls
# int(), for which "+1", " 1", "1_0" and "\u0661" (an Arabic-Indic one) are all 1.
CustomerIdPath = Annotated[
    str,
    PathParameter(
        description="The catalog's id, in plain ASCII digits (no sign, spaces, underscores or leading zeros); "
        "any other spelling names no customer (404).",
        schema_extra={"type": "integer", "format": "int64", "minimum": 1, "maximum": BIGINT_MAX},
    ),
]


def invalid_body(field: str, reason: str) -> ValidationException:
    """The 422 problem for a body ``field`` (``data``: the body as a whole) and why."""
    return ValidationException(extra=[{"key": field, "message": reason, "source": "body"}])


def catalog_id(segment: str) -> int:
    """A path segment as a catalog id. Only the canonical spelling names a customer, so that one
    customer has one URL (caches, logs and audits never see it under two names); any other
    spelling names none: 404, as a segment that is no number at all always was."""
    if _CANONICAL_ID.fullmatch(segment) and int(segment) <= BIGINT_MAX:
        return int(segment)
    raise NotFoundException(
        f"no customer has the id {segment!r}: ids are plain ASCII digits without sign, spaces, underscores or leading zeros"
    )
