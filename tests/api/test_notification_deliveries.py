"""GET /api/v1/notifications/deliveries: what went out and what failed, for HR and admin."""

from __future__ import annotations

import uuid

from domain.policy import default_terms
from domain.stages import Reason
from models import NotificationDelivery, NotificationRecord, PolicyVersion, ReassignmentRequest
from tests.api.conftest import Api, assert_problem
from tests.factories import fast_policy_rules

URL = "/api/v1/notifications/deliveries"


def seed_deliveries(api: Api) -> int:
    """A request with one sent and three failed deliveries (two e-mails, one robot)."""
    org = api.org
    with api.sessions() as s:
        policy = s.get(PolicyVersion, org.policy_version_id)
        req = ReassignmentRequest(
            idempotency_key=str(uuid.uuid4()), payload_hash="0" * 64, requester_id=org.manager_a,
            from_employee_id=org.sales_a1, to_employee_id=org.sales_a2,
            customer_ids=org.customers_a1[:1], reason=Reason.TERRITORY_REALIGNMENT.value,
            policy_version_id=policy.id,
            terms=default_terms(fast_policy_rules()).model_dump(mode="json"))
        s.add(req)
        s.flush()
        rows = []
        for n, (recipient, status, error) in enumerate([
                (org.director, "sent", None), (org.manager_a, "failed", "SMTP error 451"),
                (org.sales_a2, "failed", "no valid e-mail address on record")]):
            record = NotificationRecord(workflow_id="wf", key=f"{n}-DECLINED", request_id=req.id,
                                        recipient_id=recipient, kind="DECLINED", message="m")
            s.add(record)
            s.flush()
            rows.append(NotificationDelivery(
                notification_id=record.id, request_id=req.id, kind="DECLINED", channel="email",
                address=f"{recipient}@example.test", language="zh-CN", status=status,
                attempts=5 if status == "failed" else 1, last_error=error))
        rows.append(NotificationDelivery(
            notification_id=rows[0].notification_id, request_id=req.id, kind="DECLINED",
            channel="webhook:hr", address="hr", language="zh-CN", status="failed",
            attempts=5, last_error="feishu refused the message: code 19021"))
        s.add_all(rows)
        return req.id


async def test_hr_lists_failed_deliveries_newest_first(api: Api):
    request_id = seed_deliveries(api)
    answer = await api.http.get(URL, params={"status": "failed"},
                                headers=await api.auth(api.org.hr_staff))
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["total"] == 3
    assert [(i["channel"], i["recipient_id"], i["last_error"]) for i in page["items"]] == [
        ("webhook:hr", None, "feishu refused the message: code 19021"),
        ("email", api.org.sales_a2, "no valid e-mail address on record"),
        ("email", api.org.manager_a, "SMTP error 451"),
    ]
    assert all(i["request_id"] == request_id and i["attempts"] == 5 for i in page["items"])
    everything = (await api.http.get(URL, headers=await api.auth(api.org.hr_staff))).json()
    assert everything["total"] == 4
    robots = (await api.http.get(URL, params={"channel": "webhook:hr"},
                                 headers=await api.auth(api.org.hr_staff))).json()
    assert [i["status"] for i in robots["items"]] == ["failed"]


async def test_others_are_refused_and_a_wrong_status_is_explained(api: Api):
    seed_deliveries(api)
    refused = await api.http.get(URL, headers=await api.auth(api.org.manager_a))
    assert_problem(refused, 403)
    wrong = await api.http.get(URL, params={"status": "lost"},
                               headers=await api.auth(api.org.hr_staff))
    assert_problem(wrong, 422)
