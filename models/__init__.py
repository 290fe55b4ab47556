"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from models.audit import AuditChainHead, AuditEvent
from models.customer import Assignment, AssignmentSource, Customer, Order
from models.org import Employee, EmploymentStatus, OrgUnit, UserAccount
from models.policy import PolicyStatus, PolicyVersion
from models.reassignment import (
    Appeal,
    ApprovalStep,
    NotificationRecord,
    ReassignmentRequest,
    RequestCustomer,
    SignatureRecord,
)

__all__ = [
    "Appeal",
    "ApprovalStep",
    "Assignment",
    "AssignmentSource",
    "AuditChainHead",
    "AuditEvent",
    "Customer",
    "Employee",
    "EmploymentStatus",
    "NotificationRecord",
    "Order",
    "OrgUnit",
    "PolicyStatus",
    "PolicyVersion",
    "ReassignmentRequest",
    "RequestCustomer",
    "SignatureRecord",
    "UserAccount",
]
