"""Login (JSON and OAuth2 form) and the caller's own profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from sqlmodel import Session

from api.deps import CurrentActor, SessionDep, SettingsDep, auth_problem
from api.problems import Problem, problem_responses
from api.schemas import LoginIn, MeOut, TokenOut
from api.security import AuthError, authenticate, issue_token
from models.org import Employee
from settings import Settings

router = APIRouter(tags=["auth"])


def _login(session: Session, settings: Settings, username: str, password: str) -> TokenOut:
    try:
        actor = authenticate(session, username, password)
    except AuthError as err:
        raise auth_problem(err) from err
    return TokenOut(access_token=issue_token(actor, settings),
                    expires_in=settings.jwt_ttl_minutes * 60)


# Sync routes: argon2 is CPU-bound on purpose, so it runs in the thread pool.
@router.post("/auth/login", response_model=TokenOut, responses=problem_responses(401, 422))
def login(body: LoginIn, session: SessionDep, settings: SettingsDep) -> TokenOut:
    """Exchange a username and password for a short-lived bearer token."""
    return _login(session, settings, body.username, body.password)


@router.post("/auth/token", response_model=TokenOut, responses=problem_responses(401, 422))
def token(form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep,
          settings: SettingsDep) -> TokenOut:
    """The same login as an OAuth2 password form, for the Authorize button in /docs."""
    return _login(session, settings, form.username, form.password)


@router.get("/me", response_model=MeOut, responses=problem_responses(401))
def me(actor: CurrentActor, session: SessionDep) -> MeOut:
    employee = session.get(Employee, actor.employee_id)
    if employee is None or employee.id is None:  # removed after the token was checked
        raise Problem(401, "invalid-token", "Invalid token", "Your employee record is gone.")
    return MeOut(user_id=actor.user_id, username=actor.username, employee_id=employee.id,
                 employee_no=employee.employee_no, name=employee.name,
                 roles=sorted(actor.roles), org_unit_id=employee.org_unit_id,
                 locale=employee.locale)
