"""Console logins: staff passwords (argon2id) and server-side sessions.

The session cookie holds a random token; the table keeps only its SHA-256 (the same scheme as API keys),
so a stolen table opens no session and logging out deletes the row, ending the session at once. Each
session has its own CSRF token, which every form of the console sends back."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select

from cloud_api.core.security import hash_api_key, new_api_key
from cloud_api.db.models import Staff, StaffSession, Store
from cloud_api.services.container import Container, audit
from cloud_api.services.errors import BadRequestError, ConflictError, NotFoundError, UnauthorizedError

SESSION_TTL_NS = 12 * 3600 * 10**9  # one shift
MIN_PASSWORD_LENGTH = 10
ROLES = ("reviewer", "manager", "admin")  # each includes the rights of the ones before it

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password anyone has")  # unknown logins take as long as wrong passwords


def has_role(staff: Staff, role: str) -> bool:
    return staff.role in ROLES and ROLES.index(staff.role) >= ROLES.index(role)


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequestError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def create_staff(
    c: Container, staff_id: str, name: str, role: str, store_id: str | None, email: str | None, password: str
) -> tuple[Staff, str]:
    """A staff member with a console login and an API key (returned once; stored hashed)."""
    if role not in ROLES:
        raise BadRequestError(f"role must be one of {', '.join(ROLES)}")
    if role != "admin" and store_id is None:
        raise BadRequestError("reviewers and managers belong to one store: give --store-id")
    key = new_api_key("stf")
    with c.transaction() as s:
        if store_id is not None and s.get(Store, store_id) is None:
            raise NotFoundError(f"no store {store_id}: seed it first")
        if s.get(Staff, staff_id) is not None:
            raise ConflictError(f"staff {staff_id} exists already")
        if email is not None and s.scalars(select(Staff).where(Staff.email == email)).first() is not None:
            raise ConflictError(f"another staff member has the email {email}")
        staff = Staff(
            id=staff_id,
            name=name,
            role=role,
            store_id=store_id,
            email=email,
            password_hash=hash_password(password),
            key_hash=hash_api_key(key),
            created_ns=c.now_ns(),
        )
        s.add(staff)
        audit(s, c.now_ns(), "system", "staff.created", "staff", staff_id, role=role, store_id=store_id)
    return staff, key


def set_password(c: Container, staff_id: str, password: str) -> None:
    with c.transaction() as s:
        staff = s.get(Staff, staff_id)
        if staff is None:
            raise NotFoundError(f"no staff {staff_id}")
        staff.password_hash = hash_password(password)
        s.execute(delete(StaffSession).where(StaffSession.staff_id == staff_id))  # a new password ends old sessions
        audit(s, c.now_ns(), "system", "staff.password_set", "staff", staff_id)


@dataclass(frozen=True)
class LoginSession:
    token: str  # for the cookie; only its hash is stored
    csrf_token: str
    staff: Staff
    expires_ns: int


def login(c: Container, login_name: str, password: str) -> LoginSession:
    """Staff id or email and password -> a new session. Wrong name and wrong password read the same."""
    with c.sessions() as s:
        staff = s.scalars(select(Staff).where(or_(Staff.id == login_name, Staff.email == login_name))).first()
    stored = staff.password_hash if staff is not None and staff.password_hash else _DUMMY_HASH
    try:
        ok = _hasher.verify(stored, password) and stored is not _DUMMY_HASH
    except (VerificationError, InvalidHashError):
        ok = False
    now = c.now_ns()
    if not ok or staff is None:
        with c.transaction() as s:
            audit(s, now, "system", "console.login_failed", "staff", login_name[:64])
        raise UnauthorizedError("wrong staff id, email or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with c.transaction() as s:
        s.execute(delete(StaffSession).where(StaffSession.expires_ns < now))  # tidy: expired sessions go
        s.add(
            StaffSession(
                token_hash=hash_api_key(token),
                staff_id=staff.id,
                csrf_token=csrf,
                created_ns=now,
                expires_ns=now + SESSION_TTL_NS,
            )
        )
        if _hasher.check_needs_rehash(stored):
            row = s.get(Staff, staff.id)
            assert row is not None
            row.password_hash = _hasher.hash(password)
        audit(s, now, f"staff:{staff.id}", "console.login", "staff", staff.id)
    return LoginSession(token, csrf, staff, now + SESSION_TTL_NS)


def session_staff(c: Container, token: str | None) -> tuple[Staff, StaffSession] | None:
    """The staff member and session of a cookie token, or None (no cookie, unknown, expired)."""
    if not token:
        return None
    with c.sessions() as s:
        session = s.get(StaffSession, hash_api_key(token))
        if session is None or session.expires_ns <= c.now_ns():
            return None
        staff = s.get(Staff, session.staff_id)
    return (staff, session) if staff is not None else None


def logout(c: Container, token: str) -> None:
    with c.transaction() as s:
        session = s.get(StaffSession, hash_api_key(token))
        if session is not None:
            audit(s, c.now_ns(), f"staff:{session.staff_id}", "console.logout", "staff", session.staff_id)
            s.delete(session)
