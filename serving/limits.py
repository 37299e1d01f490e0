"""Bounds on what one request may ask of the model server, each error naming its setting.

One request must not be able to stall everyone else: predictions run on the
server's event loop, so a request that makes the model compute or return
millions of numbers holds every other client for as long as that takes. Each
bound is checked from the request's row count alone, *before* any value is
parsed or scored, so an oversized request is refused in microseconds:

* rows per request: ``MLOPS_MAX_ROWS`` for ``:predict`` / V2 ``infer``,
  ``MLOPS_MAX_EXPLAIN_ROWS`` for ``:explain``;
* work per request, as the class scores the model computes: rows x classes
  (x features + 1 for ``:explain``, which scores each row once per feature at
  most): ``MLOPS_MAX_SCORED_VALUES``;
* response size, as the numbers it carries: one prediction per row plus
  rows x classes when probabilities are returned: ``MLOPS_MAX_RESPONSE_VALUES``.

A request past a bound raises :class:`RequestTooLarge`: HTTP 413 with a JSON
``{"error": ...}`` naming the bound, the setting that raises it and how many
rows would fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from kserve.errors import InvalidInput
from starlette.exceptions import HTTPException

from mlops.core.settings import (
    MAX_EXPLAIN_ROWS_VAR,
    MAX_RESPONSE_VALUES_VAR,
    MAX_ROWS_VAR,
    MAX_SCORED_VALUES_VAR,
    VARIABLES,
    ServingSettings,
)

#: HTTP status of a request past a bound ("Content Too Large").
TOO_LARGE = 413


class RequestTooLarge(HTTPException, InvalidInput):
    """A request past one of the server's bounds: a 413 naming the bound and its setting.

    An ``HTTPException`` first, so the app answers 413 with the message (Starlette
    picks the handler by the exception's class order), and an ``InvalidInput``, so
    code that handles bad client input handles it too.
    """

    def __init__(self, message: str) -> None:
        HTTPException.__init__(self, status_code=TOO_LARGE, detail=message)
        InvalidInput.__init__(self, message)

    def __str__(self) -> str:
        return str(self.detail)


def _fits(limit: int, per_row: int) -> int:
    """How many rows of ``per_row`` values fit in ``limit``."""
    return limit // max(per_row, 1)


@dataclass(frozen=True)
class RequestLimits:
    """The per-request bounds (see the module doc); defaults are the settings' defaults.

    Attributes:
        max_rows: Rows of one ``:predict`` / V2 ``infer`` request.
        max_explain_rows: Rows of one ``:explain`` request.
        max_response_values: Numbers one response may carry.
        max_scored_values: Class scores the model may compute for one request.
    """

    max_rows: int = VARIABLES[MAX_ROWS_VAR].default
    max_explain_rows: int = VARIABLES[MAX_EXPLAIN_ROWS_VAR].default
    max_response_values: int = VARIABLES[MAX_RESPONSE_VALUES_VAR].default
    max_scored_values: int = VARIABLES[MAX_SCORED_VALUES_VAR].default

    @classmethod
    def from_settings(cls, settings: ServingSettings) -> RequestLimits:
        """The bounds of ``settings`` (``MLOPS_MAX_ROWS`` and friends)."""
        return cls(
            max_rows=settings.max_rows,
            max_explain_rows=settings.max_explain_rows,
            max_response_values=settings.max_response_values,
            max_scored_values=settings.max_scored_values,
        )

    def check_predict(
        self, rows: int, classes: int, *, predictions: bool = True, probabilities: bool = False
    ) -> None:
        """Refuses a prediction request of ``rows`` rows for a ``classes``-class model.

        Args:
            rows: Rows the request declares.
            classes: Classes of the model (it scores each row once per class).
            predictions: The response carries one label per row.
            probabilities: The response carries ``classes`` probabilities per row.

        Raises:
            RequestTooLarge: Past a bound; the message names it and its setting.
        """
        if rows > self.max_rows:
            raise RequestTooLarge(
                f"request has {rows} rows; at most {self.max_rows} rows per request "
                f"({MAX_ROWS_VAR}): send fewer rows per request"
            )
        self._check_scored(rows, classes)
        per_row = int(predictions) + (classes if probabilities else 0)
        if rows * per_row > self.max_response_values:
            parts = " + ".join(
                part
                for part, wanted in (
                    ("1 prediction", predictions),
                    (f"{classes} probabilities", probabilities),
                )
                if wanted
            )
            raise RequestTooLarge(
                f"the response would carry {rows * per_row} values ({rows} rows x ({parts})); "
                f"at most {self.max_response_values} values per response "
                f"({MAX_RESPONSE_VALUES_VAR}), {_fits(self.max_response_values, per_row)} rows: "
                "send fewer rows per request"
                + (", or ask without probabilities" if probabilities else "")
            )

    def check_explain(self, rows: int, classes: int, features: int) -> None:
        """Refuses an explanation request of ``rows`` rows.

        Raises:
            RequestTooLarge: Past a bound; the message names it and its setting.
        """
        if rows > self.max_explain_rows:
            raise RequestTooLarge(
                f"explain takes at most {self.max_explain_rows} rows per request "
                f"({MAX_EXPLAIN_ROWS_VAR}), got {rows}"
            )
        self._check_scored(rows, classes, features)

    def _check_scored(self, rows: int, classes: int, features: int | None = None) -> None:
        """Rows x classes scores (x features + 1 for an explanation) within the work bound."""
        per_row = classes if features is None else (features + 1) * classes
        if rows * per_row <= self.max_scored_values:
            return
        what = f"{rows} rows x {classes} classes"
        if features is not None:
            what = f"{rows} rows x ({features} features + 1) x {classes} classes"
        raise RequestTooLarge(
            f"the request needs {rows * per_row} class scores ({what}); at most "
            f"{self.max_scored_values} per request ({MAX_SCORED_VALUES_VAR}), "
            f"{_fits(self.max_scored_values, per_row)} rows: send fewer rows per request"
        )
