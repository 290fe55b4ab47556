"""Account administration (admin) and offboarding (HR).

Every change is audited with the account or employee before and after (models/accounts.py).
Changes that take access away (disable, a password reset, new roles, a departure) end the
person's tokens at once through `token_version`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query
from sqlmodel import Session, col, or_, select

from api.deps import SessionFactoryDep, SettingsDep, permit
from api.problems import Problem, problem_responses
from api.routes.auth import password_rules, weak_password_problem
from api.schemas_auth import (
    AccountCreateIn,
    AccountOut,
    AccountPage,
    OffboardIn,
    OffboardOut,
    PasswordResetIn,
    ReasonOptIn,
    RolesIn,
)
from api.security import Actor
from domain.permissions import Action
from domain.stages import Role
from models.accounts import (
    AccountError,
    check_new_password,
    create_account,
    get_account,
    normalise_roles,
    offboard,
    set_active,
    set_password,
    set_roles,
    unlock_account,
)
from models.org import Employee, UserAccount
from models.passwords import hash_password
from models.types import utcnow

router = APIRouter(tags=["accounts"])

AccountAdmin = Annotated[Actor, permit(Action.ACCOUNTS_MANAGE)]
Offboarder = Annotated[Actor, permit(Action.EMPLOYEE_OFFBOARD)]
_STATUS = {"not-found": 404, "conflict": 409, "invalid": 422}


def account_problem(err: AccountError) -> Problem:
    status = _STATUS.get(err.kind, 409)
    title = {404: "Not found", 409: "Conflict", 422: "Invalid value"}[status]
    return Problem(status, err.code, title, err.message[:1].upper() + err.message[1:] + ".")


def _present(session: Session, account: UserAccount) -> AccountOut:
    employee = session.get(Employee, account.employee_id)
    assert employee is not None and account.id is not None
    now = utcnow()
    granted = [Role(r) for r in account.roles if r in Role._value2member_map_]
    effective = set(granted)
    if employee.role in Role._value2member_map_:
        effective.add(Role(employee.role))
    return AccountOut(
        id=account.id, username=account.username, employee_id=account.employee_id,
        employee_no=employee.employee_no, name=employee.name, roles=granted,
        effective_roles=[r for r in Role if r in effective], is_active=account.is_active,
        locked=account.locked_until is not None and account.locked_until > now,
        locked_until=account.locked_until, failed_login_count=account.failed_login_count,
        employee_status=employee.status.value, leave_date=employee.leave_date,
        created_at=account.created_at, password_changed_at=account.password_changed_at,
        last_login_at=account.last_login_at)


def _roles(roles: list[Role]) -> list[str]:
    try:
        return normalise_roles(r.value for r in roles)
    except AccountError as err:
        raise account_problem(err) from err


@router.get("/accounts", response_model=AccountPage, responses=problem_responses(401, 403))
def list_accounts(
    actor: AccountAdmin,
    sessions: SessionFactoryDep,
    q: Annotated[str | None, Query(max_length=100,
                                   description="part of the username, name or employee no")]
    = None,
    role: Annotated[Role | None, Query(description="holds this role (granted or job)")] = None,
    active: Annotated[bool | None, Query(description="enabled (true) or disabled (false)")]
    = None,
    locked: Annotated[bool | None, Query(description="locked out now")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AccountPage:
    """All login accounts (never their passwords), filterable, ordered by username."""
    with sessions() as session:
        query = select(UserAccount).join(Employee, col(Employee.id) == UserAccount.employee_id)
        if q:
            like = f"%{q.lower()}%"
            query = query.where(or_(col(UserAccount.username).ilike(like),
                                    col(Employee.name).ilike(like),
                                    col(Employee.employee_no).ilike(like)))
        if active is not None:
            query = query.where(UserAccount.is_active == active)
        # roles live in a JSON list, so that filter (and `locked`) runs here; there are few
        # accounts, and the page is cut after filtering so totals stay right
        items = [_present(session, a)
                 for a in session.exec(query.order_by(col(UserAccount.username))).all()]
    if role is not None:
        items = [a for a in items if role in a.effective_roles]
    if locked is not None:
        items = [a for a in items if a.locked == locked]
    return AccountPage(items=items[offset:offset + limit], total=len(items), limit=limit,
                       offset=offset)


@router.post("/accounts", status_code=201, response_model=AccountOut,
             responses=problem_responses(401, 403, 404, 409, 422))
def create(body: AccountCreateIn, actor: AccountAdmin, sessions: SessionFactoryDep,
           settings: SettingsDep) -> AccountOut:
    """A login for an existing employee, with one or more roles and an initial password that
    meets the password policy."""
    roles = _roles(body.roles)
    with sessions() as session:
        employee = session.get(Employee, body.employee_id)
        if employee is None:
            raise Problem(404, "no-employee", "No such employee",
                          f"There is no employee {body.employee_id}. Use an id from "
                          "GET /api/v1/employees.")
        issues = check_new_password(body.password, username=body.username, employee=employee,
                                    rules=password_rules(settings))
    if issues:
        raise weak_password_problem(issues, "password")
    password_hash = hash_password(body.password)  # slow on purpose: outside the transaction
    try:
        with sessions() as session:
            employee = session.get(Employee, body.employee_id)
            assert employee is not None
            account = create_account(session, employee=employee, username=body.username,
                                     roles=roles, password_hash=password_hash,
                                     actor_id=actor.employee_id, now=utcnow())
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


@router.get("/accounts/{account_id}", response_model=AccountOut,
            responses=problem_responses(401, 403, 404))
def read(account_id: int, actor: AccountAdmin, sessions: SessionFactoryDep) -> AccountOut:
    try:
        with sessions() as session:
            return _present(session, get_account(session, account_id))
    except AccountError as err:
        raise account_problem(err) from err


@router.put("/accounts/{account_id}/roles", response_model=AccountOut,
            responses=problem_responses(401, 403, 404, 409, 422))
def change_roles(account_id: int, body: RolesIn, actor: AccountAdmin,
                 sessions: SessionFactoryDep) -> AccountOut:
    """Replace the granted roles (the job role on the employee record always applies too).
    The person's current access tokens stop working; a refresh gets one with the new roles."""
    roles = _roles(body.roles)
    try:
        with sessions() as session:
            account = get_account(session, account_id, for_update=True)
            if account.id == actor.user_id and Role.ADMIN.value not in roles:
                raise AccountError("conflict", "own-admin-role",
                                   "you cannot take the admin role from your own account; ask "
                                   "another administrator")
            set_roles(session, account, roles, actor_id=actor.employee_id, now=utcnow())
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


@router.post("/accounts/{account_id}/disable", response_model=AccountOut,
             responses=problem_responses(401, 403, 404, 409))
def disable(account_id: int, actor: AccountAdmin, sessions: SessionFactoryDep,
            body: Annotated[ReasonOptIn | None, Body()] = None) -> AccountOut:
    """Lock the account by hand: no login, and every session ends now."""
    try:
        with sessions() as session:
            account = get_account(session, account_id, for_update=True)
            if account.id == actor.user_id:
                raise AccountError("conflict", "own-account",
                                   "you cannot disable your own account; ask another "
                                   "administrator")
            set_active(session, account, False, actor_id=actor.employee_id, now=utcnow(),
                       reason=body.reason if body else None)
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


@router.post("/accounts/{account_id}/enable", response_model=AccountOut,
             responses=problem_responses(401, 403, 404))
def enable(account_id: int, actor: AccountAdmin, sessions: SessionFactoryDep,
           body: Annotated[ReasonOptIn | None, Body()] = None) -> AccountOut:
    """Allow logins again (an employee who has left still cannot log in)."""
    try:
        with sessions() as session:
            account = get_account(session, account_id, for_update=True)
            set_active(session, account, True, actor_id=actor.employee_id, now=utcnow(),
                       reason=body.reason if body else None)
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


@router.post("/accounts/{account_id}/unlock", response_model=AccountOut,
             responses=problem_responses(401, 403, 404))
def unlock(account_id: int, actor: AccountAdmin, sessions: SessionFactoryDep) -> AccountOut:
    """Lift a lock-out after failed logins and reset the failure count."""
    try:
        with sessions() as session:
            account = get_account(session, account_id, for_update=True)
            unlock_account(session, account, actor_id=actor.employee_id, now=utcnow())
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


@router.post("/accounts/{account_id}/password", response_model=AccountOut,
             responses=problem_responses(401, 403, 404, 422))
def reset_password(account_id: int, body: PasswordResetIn, actor: AccountAdmin,
                   sessions: SessionFactoryDep, settings: SettingsDep) -> AccountOut:
    """Set a new password (the policy applies): every session of the account ends, and a
    lock-out is lifted. Hand the password over in person; the user should change it."""
    try:
        with sessions() as session:
            account = get_account(session, account_id)
            issues = check_new_password(body.new_password, username=account.username,
                                        employee=session.get(Employee, account.employee_id),
                                        rules=password_rules(settings))
        if issues:
            raise weak_password_problem(issues, "new_password")
        password_hash = hash_password(body.new_password)
        with sessions() as session:
            account = get_account(session, account_id, for_update=True)
            set_password(session, account, password_hash, actor_id=actor.employee_id,
                         now=utcnow(), by_admin=True)
            return _present(session, account)
    except AccountError as err:
        raise account_problem(err) from err


# --- offboarding (HR) --------------------------------------------------------------------------


@router.post("/employees/{employee_id}/offboard", response_model=OffboardOut,
             responses=problem_responses(401, 403, 404, 409))
def offboard_employee(employee_id: int, body: OffboardIn, actor: Offboarder,
                      sessions: SessionFactoryDep) -> OffboardOut:
    """Record that an employee leaves. Their records (requests, statements, signatures) stay.

    A leave date now or in the past marks them LEFT: their logins,
    access tokens and refresh tokens stop working at once. A future leave date is recorded
    only: they keep their access until that moment, when every login and token check refuses
    them; a departure handover (reason EMPLOYEE_DEPARTURE) can be scheduled for it.
    """
    now = utcnow()
    try:
        with sessions() as session:
            employee = session.get(Employee, employee_id)
            if employee is None:
                raise AccountError("not-found", "no-employee",
                                   f"there is no employee {employee_id}")
            result = offboard(session, employee, leave_date=body.leave_date,
                              actor_id=actor.employee_id, now=now, reason=body.reason)
            assert result.employee.leave_date is not None
            return OffboardOut(
                employee_id=employee_id, status=result.employee.status.value,
                leave_date=result.employee.leave_date, left_now=result.left_now,
                account_id=result.account.id if result.account else None,
                refresh_tokens_revoked=result.refresh_tokens_revoked)
    except AccountError as err:
        raise account_problem(err) from err

