"""Xero's error answers outside validation: faults (5xx), unknown routes and wrong methods.

Xero's gateway answers problems that are not an Accounting validation failure with a
problem-details body, ``{"Type", "Title", "Status", "Detail", "Instance"}``, the shape the
sandbox already gives its 401 and 403. The Detail texts are Xero's own descriptions of each
status from its "HTTP response codes" page (500: "An unhandled error with the Xero API", 503:
"The API is currently unavailable", 404: "The resource you have specified cannot be found"):
the shape of 502 and 504 (answered by the gateway in front of the API) is inferred.

Status mix of the ``error_rate`` switch: 500 and 503, the two server errors Xero documents,
in equal shares (change it with the ``error_statuses`` switch).
"""

from __future__ import annotations

import uuid

from aiohttp import web
from aiohttp.typedefs import Middleware

from syncd.sandbox import Handler

DEFAULT_ERROR_STATUSES = {"500": 1.0, "503": 1.0}

_DETAILS = {
    404: ("Not Found", "The resource you have specified cannot be found"),
    405: ("Method Not Allowed", "The method is not allowed for the requested resource"),
    500: (
        "An error occurred",
        "An unhandled error with the Xero API. Contact the Xero API team if problems persist",
    ),
    502: ("Bad Gateway", "The Xero API gateway received an invalid response. Try again soon"),
    503: (
        "Service Unavailable",
        "The API is currently unavailable, typically due to a scheduled outage. Try again soon",
    ),
    504: ("Gateway Timeout", "The Xero API did not answer in time. Try again soon"),
}


def problem(status: int, detail: str | None = None) -> web.Response:
    title, text = _DETAILS.get(status, ("Error", "An error occurred"))
    return web.json_response(
        {
            "Type": None,
            "Title": title,
            "Status": status,
            "Detail": detail or text,
            "Instance": str(uuid.uuid4()),
        },
        status=status,
    )


def fault(request: web.Request, status: int) -> web.StreamResponse:
    """The answer to an ``error_rate`` fault."""
    return problem(status)


def not_found() -> web.Response:
    return problem(404)


def http_errors() -> Middleware:
    """aiohttp's own 404 and 405 (plain text) become Xero's problem-details answers."""

    @web.middleware
    async def xero_shaped(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            if request.path.startswith("/_sandbox/"):
                raise
            return problem(404)
        except web.HTTPMethodNotAllowed as exc:
            if request.path.startswith("/_sandbox/"):
                raise
            response = problem(405)
            response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response

    return xero_shaped
