"""SQLModel tables, one module per aggregate. Importing this package registers them all."""

from models.audit import AuditChainHead, AuditEvent
from models.bulk import Reorganisation, ReorganisationRow
from models.commission import (
    CommissionLine,
    CommissionPlan,
    SettlementRun,
    Statement,
    StatementStatus,
)
from models.customer import Assignment, AssignmentSource, Customer, Order, OrderKind
from models.delegation import ApprovalDelegation
from models.login import LoginFailure, RefreshToken
from models.notification_delivery import DeliveryStatus, NotificationDelivery
from models.org import Employee, EmploymentStatus, OrgUnit, UserAccount
from models.policy import PolicyAcknowledgement, PolicyStatus, PolicyVersion
from models.reassignment import (
    Appeal,
    ApprovalStep,
    NotificationRecord,
    ReassignmentRequest,
    RequestCustomer,
    RequestDocument,
    SignatureRecord,
)
from models.satisfaction import SatisfactionScore
from models.signing import OneTimeCode, PasskeyCredential, WebAuthnChallenge
from models.valuation import ValuationRun, ValuationSnapshot

__all__ = [
    "Appeal",
    "ApprovalDelegation",
    "ApprovalStep",
    "Assignment",
    "AssignmentSource",
    "AuditChainHead",
    "AuditEvent",
    "CommissionLine",
    "CommissionPlan",
    "Customer",
    "DeliveryStatus",
    "Employee",
    "EmploymentStatus",
    "LoginFailure",
    "NotificationDelivery",
    "NotificationRecord",
    "OneTimeCode",
    "Order",
    "OrderKind",
    "OrgUnit",
    "PasskeyCredential",
    "PolicyAcknowledgement",
    "PolicyStatus",
    "PolicyVersion",
    "ReassignmentRequest",
    "RefreshToken",
    "Reorganisation",
    "ReorganisationRow",
    "RequestCustomer",
    "RequestDocument",
    "SatisfactionScore",
    "SettlementRun",
    "SignatureRecord",
    "Statement",
    "StatementStatus",
    "UserAccount",
    "ValuationRun",
    "ValuationSnapshot",
    "WebAuthnChallenge",
]
