from sqlmodel import select

from models import Assignment, AuditEvent, Employee
from models.audit import append_audit_event, verify_chain
from models.types import utcnow
from tests.audit_tamper import tamper


def test_small_org_builds_and_audit_chain_verifies(engine, sessions, org):
    with sessions() as s:
        assert len(s.exec(select(Employee)).all()) == 11
        open_a1 = s.exec(select(Assignment).where(Assignment.employee_id == org.sales_a1)).all()
        assert len(open_a1) == 4 and all(a.start_at.tzinfo is not None for a in open_a1)
        for i in range(3):
            append_audit_event(s, AuditEvent(occurred_at=utcnow(), event_type=f"T{i}",
                                             chain_index=0, prev_hash="", hash=""))
    with sessions() as s:
        assert verify_chain(s)[0]
    # the table refuses UPDATE: tamper as a DBA would, with the trigger off
    tamper(engine, """UPDATE audit_event SET detail = '{"tampered": true}'
                      WHERE chain_index = 2""")
    with sessions() as s:
        ok, broken, _ = verify_chain(s)
        assert not ok and broken == 2
