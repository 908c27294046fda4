"""The staff review console: HTML pages over the same services as the JSON staff API.

/console/login, /console/logout     log in (staff id or email, password) and out
/console/queue                      open tickets, longest-waiting first; rows refreshed every 5 s
/console/tickets/{visit}/{line}     one line under review with its evidence and the decisions
/console/visits/{visit}             a visit's cart and receipt (where a decision lands)
/console/disputes/{dispute}         a shopper's dispute (managers decide)
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from cloud_api.api.deps import ContainerDep
from cloud_api.console import svg
from cloud_api.console.auth import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    ConsoleForbiddenError,
    LoginRequiredError,
    UserDep,
    check_csrf,
    require,
)
from cloud_api.db.models import Account, CartLine, Dispute, Receipt
from cloud_api.domain.review import format_duration
from cloud_api.services import disputes, receipts, review_queue, settlement, staff_auth
from cloud_api.services.container import Container
from cloud_api.services.errors import ApiError, NotFoundError, UnauthorizedError

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters["duration"] = format_duration
templates.env.filters["money"] = lambda cents: f"{cents / 100:.2f}"
templates.env.globals["now_ns"] = time.time_ns
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DAY_NS = 86_400 * 10**9

router = APIRouter(prefix="/console", include_in_schema=False)


def _page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _secure_cookies(c: Container) -> bool:
    return c.settings.public_url.startswith("https://")


def _safe_next(path: str | None) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    return path if path and path.startswith("/console/") and not path.startswith("//") else "/console/queue"


@router.get("/")
def index() -> RedirectResponse:
    return RedirectResponse("/console/queue", status_code=303)


@router.get("/login")
def login_page(request: Request, c: ContainerDep, next: str | None = None, error: str | None = None) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = _page(request, "login.html", next=_safe_next(next), login_csrf=nonce, error=error)
    response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=_secure_cookies(c),
                        path="/console/login", max_age=3600)  # fmt: skip
    return response


@router.post("/login")
def login(
    request: Request,
    c: ContainerDep,
    login: Annotated[str, Form(max_length=254)],
    password: Annotated[str, Form(max_length=1000)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/console/queue",
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
        return _page(request, "error.html", status=403, message="The login form expired: open it again.",
                     back="/console/login")  # fmt: skip
    try:
        session = staff_auth.login(c, login.strip(), password)
    except UnauthorizedError as e:
        return RedirectResponse(f"/console/login?error={quote(e.message)}&next={quote(_safe_next(next))}", 303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, session.token, httponly=True, samesite="strict", secure=_secure_cookies(c),
                        path="/console", max_age=staff_auth.SESSION_TTL_NS // 10**9)  # fmt: skip
    response.delete_cookie(LOGIN_COOKIE, path="/console/login")
    return response


@router.post("/logout")
def logout(request: Request, c: ContainerDep, user: UserDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(user, csrf_token)
    staff_auth.logout(c, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


def _queue_context(c: Container, user: UserDep) -> dict[str, Any]:
    now = c.now_ns()
    return {"items": review_queue.queue(c, user.staff), "now": now}


@router.get("/queue")
def queue_page(request: Request, c: ContainerDep, user: UserDep) -> Response:
    now = c.now_ns()
    timing = review_queue.decision_times(c, user.staff, now - now % DAY_NS)
    return _page(request, "queue.html", user=user, timing=timing, **_queue_context(c, user))


@router.get("/queue/rows")
def queue_rows(request: Request, c: ContainerDep, user: UserDep) -> Response:
    """The queue's rows alone: the page's script fetches them every few seconds."""
    return _page(request, "_queue_rows.html", user=user, **_queue_context(c, user))


def _neighbours(c: Container, user: UserDep, url: str) -> tuple[str | None, str | None]:
    urls = [item.url for item in review_queue.queue(c, user.staff)]
    if url not in urls:
        return (urls[0] if urls else None), None
    i = urls.index(url)
    return (urls[i + 1] if i + 1 < len(urls) else None), (urls[i - 1] if i > 0 else None)


@router.get("/tickets/{visit_id}/{line_id}")
def ticket_page(request: Request, c: ContainerDep, user: UserDep, visit_id: str, line_id: str) -> Response:
    detail = review_queue.ticket_detail(c, user.staff, visit_id, line_id)
    ticket = detail.ticket
    plot = floor = None
    if ticket is not None:
        plot = svg.weight_plot(ticket.evidence.traces if ticket.evidence else [], ticket.window_ns)
        on_map = [(f"{sh.name} {sh.probability:.0%}", sh.path) for sh in detail.shoppers if sh.path is not None]
        floor = svg.floor_map(detail.view.store.floor_map, ticket.plate_ids, on_map, ticket.window_ns[0])
    next_url, prev_url = _neighbours(c, user, f"/console/tickets/{visit_id}/{line_id}")
    return _page(request, "ticket.html", user=user, d=detail, plot=plot, floor=floor, next_url=next_url,
                 prev_url=prev_url, now=c.now_ns())  # fmt: skip


@router.post("/tickets/{visit_id}/{line_id}/decision")
def decide_ticket(
    request: Request,
    c: ContainerDep,
    user: UserDep,
    visit_id: str,
    line_id: str,
    action: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    sku: Annotated[str, Form(max_length=32)] = "",
    quantity: Annotated[str, Form(max_length=8)] = "",
    to_visit_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    check_csrf(user, csrf_token)
    back = f"/console/tickets/{visit_id}/{line_id}"
    if action not in ("confirm", "void", "change", "reassign"):
        return _error(request, 400, f"unknown action {action!r}", back)
    try:
        qty = int(quantity) if quantity.strip() else None
    except ValueError:
        return _error(
            request, 400, f"quantity {quantity!r} is not a whole number", f"/console/tickets/{visit_id}/{line_id}"
        )
    try:
        settlement.decide_line(c, user.staff, visit_id, line_id, action,  # type: ignore[arg-type]
                               sku.strip() or None, qty, to_visit_id.strip() or None)  # fmt: skip
    except ApiError as e:
        return _error(request, e.status, e.message, back)
    target = f"&to={quote(to_visit_id)}" if action == "reassign" else ""
    return RedirectResponse(f"/console/visits/{visit_id}?decided={quote(line_id)}{target}", status_code=303)


def _error(request: Request, status: int, message: str, back: str) -> Response:
    return _page(request, "error.html", status=status, message=message, back=back)


def _receipt(c: Container, visit_id: str) -> Any:
    with c.sessions() as s:
        receipt = s.scalars(select(Receipt).where(Receipt.visit_id == visit_id)).first()
        return receipts.receipt_out(c, s, receipt) if receipt is not None else None


@router.get("/visits/{visit_id}")
def visit_page(
    request: Request, c: ContainerDep, user: UserDep, visit_id: str, decided: str | None = None, to: str | None = None
) -> Response:
    view = review_queue.visit_view(c, user.staff, visit_id)
    next_url, _ = _neighbours(c, user, "")
    waited = {ln.line_id: (ln.decided_ns - view.visit.cart_received_ns) / 1e9 for ln in view.lines
              if ln.decided_ns and view.visit.cart_received_ns and ln.decided_by not in (None, "deadline")}  # fmt: skip
    return _page(request, "visit.html", user=user, view=view, receipt=_receipt(c, visit_id), decided=decided,
                 moved_to=to, waited=waited, next_url=next_url)  # fmt: skip


@router.get("/disputes/{dispute_id}")
def dispute_page(request: Request, c: ContainerDep, user: UserDep, dispute_id: str) -> Response:
    with c.sessions() as s:
        dispute = s.get(Dispute, dispute_id)
        receipt = s.get(Receipt, dispute.receipt_id) if dispute else None
        if dispute is None or receipt is None:
            raise NotFoundError(f"no dispute {dispute_id}")
        review_queue.check_scope(user.staff, receipt.store_id)
        account = s.get(Account, dispute.account_id)
        lines = list(s.scalars(select(CartLine).where(CartLine.visit_id == receipt.visit_id).order_by(CartLine.id)))
    next_url, prev_url = _neighbours(c, user, f"/console/disputes/{dispute_id}")
    return _page(request, "dispute.html", user=user, dispute=dispute, receipt=_receipt(c, receipt.visit_id),
                 account=account, lines=lines, can_decide=staff_auth.has_role(user.staff, "manager"),
                 next_url=next_url, prev_url=prev_url, now=c.now_ns())  # fmt: skip


@router.post("/disputes/{dispute_id}/decision")
def decide_dispute(
    request: Request,
    c: ContainerDep,
    user: UserDep,
    dispute_id: str,
    approve: Annotated[str, Form()],
    csrf_token: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_csrf(user, csrf_token)
    require(user, "manager")
    try:
        disputes.decide_dispute(c, user.staff, dispute_id, approve == "yes", note)
    except ApiError as e:
        return _error(request, e.status, e.message, f"/console/disputes/{dispute_id}")
    return RedirectResponse(f"/console/disputes/{dispute_id}", status_code=303)


def install(app: FastAPI) -> None:
    """Mount the console on the app: its pages, its static files, and how its refusals look."""
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=str(HERE / "static")), name="console-static")

    @app.exception_handler(LoginRequiredError)
    async def _login_required(_: Request, exc: LoginRequiredError) -> Response:
        if exc.fetch:
            return JSONResponse({"message": "your console session has ended: log in again"}, status_code=401)
        return RedirectResponse(f"/console/login?next={quote(exc.next_path)}", status_code=303)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        """A service's refusal: a page with the message on the console, JSON on the API (api/errors.py)."""
        if request.url.path.startswith("/console/"):
            return _error(request, exc.status, exc.message, "/console/queue")
        return JSONResponse({"message": exc.message}, status_code=exc.status)

    @app.exception_handler(ConsoleForbiddenError)
    async def _forbidden(request: Request, exc: ConsoleForbiddenError) -> Response:
        return _page(request, "error.html", status=403, message=exc.message, back="/console/queue")
