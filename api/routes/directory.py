"""Employees and customers, as pickers and lists: scoped, with contact details masked.

Contact fields are personal information (PIPL): HR and admin see employees' phone and email;
the salespeople and managers who work a customer see its contact person. Everyone else gets
them masked (138****5678, z***@example.com).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import ReadSessionDep, permit
from api.problems import problem_responses
from api.security import Actor
from api.services import directory
from api.services.scope import Scope
from domain.masking import mask_email, mask_name, mask_phone
from domain.permissions import Action
from models.customer import Customer
from models.org import Employee, EmploymentStatus

router = APIRouter(tags=["directory"])

EmployeeReader = Annotated[Actor, permit(Action.EMPLOYEES_READ)]
CustomerReader = Annotated[Actor, permit(Action.CUSTOMERS_READ)]


class EmployeeOut(BaseModel):
    id: int
    employee_no: str
    name: str
    role: str
    org_unit_id: int
    manager_id: int | None
    status: EmploymentStatus
    email: str | None
    phone: str | None
    contacts_masked: bool


class EmployeePage(BaseModel):
    items: list[EmployeeOut]
    total: int
    limit: int
    offset: int


class CustomerOut(BaseModel):
    id: int
    code: str
    name: str
    owner_employee_id: int | None
    contact_name: str | None
    contact_phone: str | None
    contact_email: str | None
    contacts_masked: bool


class CustomerPage(BaseModel):
    items: list[CustomerOut]
    total: int
    limit: int
    offset: int


def present_employee(employee: Employee, *, masked: bool) -> EmployeeOut:
    assert employee.id is not None
    return EmployeeOut(
        id=employee.id, employee_no=employee.employee_no, name=employee.name, role=employee.role,
        org_unit_id=employee.org_unit_id, manager_id=employee.manager_id, status=employee.status,
        email=mask_email(employee.email) if masked else employee.email,
        phone=mask_phone(employee.phone) if masked else employee.phone,
        contacts_masked=masked)


def present_customer(customer: Customer, owner: int | None, *, masked: bool) -> CustomerOut:
    assert customer.id is not None
    return CustomerOut(
        id=customer.id, code=customer.code, name=customer.name, owner_employee_id=owner,
        contact_name=mask_name(customer.contact_name) if masked else customer.contact_name,
        contact_phone=mask_phone(customer.contact_phone) if masked else customer.contact_phone,
        contact_email=mask_email(customer.contact_email) if masked else customer.contact_email,
        contacts_masked=masked)


@router.get("/employees", response_model=EmployeePage, responses=problem_responses(401, 403))
def list_employees(
    actor: EmployeeReader,
    session: ReadSessionDep,
    q: Annotated[str | None, Query(max_length=100, description="name or number contains")] = None,
    status: EmploymentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EmployeePage:
    """Employees within your scope, by employee number."""
    scope = Scope(session, actor)
    rows, total = directory.employee_rows(session, scope, q=q, status=status, limit=limit,
                                          offset=offset)
    masked = not scope.sees_employee_contacts
    return EmployeePage(items=[present_employee(e, masked=masked) for e in rows],
                        total=int(total), limit=limit, offset=offset)


@router.get("/customers", response_model=CustomerPage, responses=problem_responses(401, 403))
def list_customers(
    actor: CustomerReader,
    session: ReadSessionDep,
    q: Annotated[str | None, Query(max_length=100, description="name or code contains")] = None,
    owner_employee_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CustomerPage:
    """Customers within your scope (a salesperson: their own; a manager: their team's), by code,
    with their current owner."""
    scope = Scope(session, actor)
    rows, total = directory.customer_rows(session, scope, q=q,
                                          owner_employee_id=owner_employee_id, limit=limit,
                                          offset=offset)
    masked = not scope.sees_customer_contacts
    return CustomerPage(items=[present_customer(c, o, masked=masked) for c, o in rows],
                        total=int(total), limit=limit, offset=offset)
