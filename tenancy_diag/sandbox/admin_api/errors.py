"""The one error of the admin API: every refusal is a status, a short code and a sentence.

Calls raise it wherever they find a problem; only the handler turns it into a JSON answer, so
the wire format of errors lives in one place.
"""

from __future__ import annotations

from http import HTTPStatus


class ApiError(Exception):
    """An answer other than success: HTTP status, short code, one-sentence message."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
