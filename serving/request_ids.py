"""Request ids and roles: what each answer says about who answered it, and how logs and labels join.

Every V1/V2 inference answer carries a request id: the client's ``x-request-id``
header, else the V2 body's ``id``, else a generated one (:func:`new_request_id`,
uuid4 hex). A client's id must pass
:func:`mlops.monitoring.feedback.check_request_id` (a short string of
``[A-Za-z0-9._:-]``): ids become keys of joins with feedback labels, so a bad
one is refused (400 naming where it came from) rather than stored.

Each row of a request has its own id (:func:`row_ids`): the request id for a
one-row request, ``<request-id>-<row index>`` for a multi-row one; the
inference log stores these, and feedback labels name them.

The per-request scratch dict the middleware opens (:func:`serving.metrics.begin_request`)
carries the id and the role (``stable``, ``canary``) of the version that
answered, so the middleware can set the ``x-request-id`` and ``x-mlops-role``
headers on every answer, errors included.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from mlops.core.errors import UsageError
from mlops.monitoring.feedback import check_request_id
from serving import metrics

#: The request / response header holding the request id.
REQUEST_ID_HEADER = "x-request-id"
#: The response header naming the role of the version that answered.
ROLE_HEADER = "x-mlops-role"
#: The roles a version answers (or, for ``shadow``, is logged) in.
STABLE, CANARY, SHADOW = "stable", "canary", "shadow"
ROLES = (STABLE, CANARY, SHADOW)


class BadRequestId(ValueError):
    """A client's request id is not a valid id (the message names where it came from)."""


def new_request_id() -> str:
    """A fresh request id: 32 hex digits (uuid4)."""
    return uuid.uuid4().hex


def check_client_id(value: str, where: str) -> str:
    """``value`` when it is a valid client-given id, else :class:`BadRequestId` naming ``where``."""
    try:
        return check_request_id(value, where)
    except UsageError as exc:
        raise BadRequestId(str(exc)) from None


def header_request_id(headers: Mapping[str, str] | None) -> str | None:
    """The ``x-request-id`` of ``headers`` (any case), checked; None when absent or empty.

    Raises:
        BadRequestId: the header holds an invalid id.
    """
    if not headers:
        return None
    value = headers.get(REQUEST_ID_HEADER)
    if value is None:
        for key, given in headers.items():
            if key.lower() == REQUEST_ID_HEADER:
                value = given
                break
    if value is None or value == "":
        return None
    return check_client_id(value, f"{REQUEST_ID_HEADER} header")


def row_ids(request_id: str, rows: int) -> list[str]:
    """The ids of a request's rows: the request id for one row, ``<id>-<row>`` for several."""
    if rows == 1:
        return [request_id]
    return [f"{request_id}-{row}" for row in range(rows)]


def resolve(body_id: str | None = None) -> str:
    """The id of the current request: the header's (set by the middleware), else ``body_id``, else new.

    The chosen id is written back to the request's scratch dict, so the
    middleware's ``x-request-id`` header is the id the body carries.

    Raises:
        BadRequestId: ``body_id`` (the V2 ``id``) is given, not from the header, and invalid.
    """
    scratch = metrics.current_request()
    chosen = scratch.get("request_id") if scratch is not None else None
    if not chosen:
        chosen = check_client_id(body_id, "request body id") if body_id else new_request_id()
        if scratch is not None:
            scratch["request_id"] = chosen
    return str(chosen)


def note_role(role: str) -> None:
    """Records the role of the version answering the current request (no-op outside one)."""
    scratch = metrics.current_request()
    if scratch is not None:
        scratch["role"] = role
