"""Who is using the console: the session cookie, the CSRF check on every form post, and the role check.

Pages without a session redirect to the login page; the queue's polling request gets 401 JSON instead
(its script then goes to the login page). The cookie is HttpOnly and SameSite=Strict, and Secure when
the service's public URL is https; every form carries the session's CSRF token as well."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from cloud_api.api.deps import ContainerDep
from cloud_api.db.models import Staff
from cloud_api.services.staff_auth import has_role, session_staff

SESSION_COOKIE = "cc_session"
LOGIN_COOKIE = "cc_login"  # the login form's own CSRF token (double submit), before there is a session
FETCH_HEADER = "x-console-fetch"


class LoginRequiredError(Exception):
    def __init__(self, next_path: str, fetch: bool) -> None:
        super().__init__("log in first")
        self.next_path = next_path
        self.fetch = fetch


class ConsoleForbiddenError(Exception):
    """A valid session, but not allowed: a stale or missing CSRF token, or a role too low."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ConsoleUser:
    staff: Staff
    csrf_token: str


def console_user(request: Request, c: ContainerDep) -> ConsoleUser:
    found = session_staff(c, request.cookies.get(SESSION_COOKIE))
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequiredError(path, fetch=request.headers.get(FETCH_HEADER) == "1")
    staff, session = found
    return ConsoleUser(staff, session.csrf_token)


UserDep = Annotated[ConsoleUser, Depends(console_user)]


def check_csrf(user: ConsoleUser, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent.encode(), user.csrf_token.encode()):
        raise ConsoleForbiddenError(
            "This form has expired or did not come from the console: reload the page and try again."
        )


def require(user: ConsoleUser, role: str) -> None:
    if not has_role(user.staff, role):
        raise ConsoleForbiddenError(f"This needs the {role} role; you are a {user.staff.role}.")
