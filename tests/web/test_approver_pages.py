"""The approver's pages in process, against the fake Temporal: the inbox (what waits for me as
the approver, an escalation approver or a delegate; overdue first; counted in the navigation),
the review page (assessment, timeline, policy in plain words), approve and reject through the
workflow Update with the CSRF check, a stale decision answered in place, and delegations
(create with errors by the field, revoke)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from api.services.scope import org_today
from domain.stages import Stage
from domain.workflow_dto import ActionInput, LevelStatus, ReasonedActionInput, ReassignmentState
from models import ReassignmentRequest
from models.delegation import ApprovalDelegation
from models.reassignment import ApprovalStep
from tests.api.conftest import Api, FakeHandle, FakeTemporal
from tests.web.conftest import Browser, login_as

FORBIDDEN = "https://baton.dev/problems/forbidden-role"
TZ = "Asia/Shanghai"


async def submit(api: Api, customer: int, key: str, *, requester: int | None = None,
                 from_id: int | None = None, to_id: int | None = None) -> int:
    org = api.org
    r = await api.http.post("/api/v1/reassignments", headers={
        **await api.auth(requester or org.manager_a), "Idempotency-Key": key}, json={
        "from_employee_id": from_id or org.sales_a1, "to_employee_id": to_id or org.sales_a2,
        "customer_ids": [customer], "reason": "WORKLOAD_BALANCING"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def open_level(api: Api, request_id: int, approver: int, *, due_in: timedelta,
               escalated_to: list[int] | None = None, level: int = 1,
               role: str = "director") -> None:
    """What the workflow's transition writes when a level opens."""
    with api.sessions() as s:
        s.add(ApprovalStep(request_id=request_id, level=level, role=role, approver_id=approver,
                           escalated_to=escalated_to or [], status=LevelStatus.PENDING.value,
                           due_at=datetime.now(UTC) + due_in))
        row = s.get(ReassignmentRequest, request_id)
        assert row is not None
        row.stage = Stage.PENDING_APPROVAL
        row.stage_deadline = datetime.now(UTC) + due_in
        s.add(row)


@pytest.fixture
def accepting(fake_temporal: FakeTemporal, monkeypatch: pytest.MonkeyPatch) -> FakeTemporal:
    """The fake workflow accepts every Update (the validators live in the real one)."""

    async def execute_update(self: FakeHandle, update: str, arg: Any, **kwargs: Any) -> Any:
        self.client.updates.append((self.workflow_id, update, arg))
        if self.client.update_error is not None:
            raise self.client.update_error
        return ReassignmentState(request_id=int(self.workflow_id.rsplit("-", 1)[1]),
                                 stage=Stage.PENDING_APPROVAL)

    monkeypatch.setattr(FakeHandle, "execute_update", execute_update)
    return fake_temporal


def inbox_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-request="(\d+)"', html)]


async def _four_requests(api: Api) -> list[int]:
    org = api.org
    c = org.customers_a1
    ids = [await submit(api, c[i], f"inbox-{i}") for i in range(4)]
    open_level(api, ids[0], org.director, due_in=timedelta(hours=2))
    open_level(api, ids[1], org.director, due_in=timedelta(hours=-1))  # overdue
    open_level(api, ids[2], org.manager_b, due_in=timedelta(hours=1),
               escalated_to=[org.director])
    open_level(api, ids[3], org.legal_head, due_in=timedelta(hours=3), role="legal")
    return ids


async def test_the_inbox_lists_what_waits_for_me_overdue_first(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    ids = await _four_requests(api)
    director = await login_as(api, browsers, org.director, lang="en")
    r = await director.get("/app/approvals")
    assert r.status_code == 200
    # overdue first, then by the SLA's due time; the legal level is not the director's
    assert inbox_ids(r.text) == [ids[1], ids[2], ids[0]]
    assert f'data-request="{ids[1]}" class="row-overdue" data-overdue' in r.text
    assert "escalated to you" in r.text
    assert re.search(r'href="/app/approvals"[^>]*>Approvals <span class="badge[^>]*'
                     r'data-nav-count>3<', r.text)
    assert "3 requests wait for your decision." in r.text and "1 is overdue." in r.text
    # the requester (four eyes) and a salesperson see nothing to decide
    manager = await login_as(api, browsers, org.manager_a)
    r = await manager.get("/app/approvals")
    assert inbox_ids(r.text) == [] and "data-nav-count" not in r.text
    legal = await login_as(api, browsers, org.legal_head)
    assert inbox_ids((await legal.get("/app/approvals")).text) == [ids[3]]
    sales = await login_as(api, browsers, org.sales_a1)
    r = await sales.get("/app/approvals")
    assert r.status_code == 403 and r.headers["x-problem-type"] == FORBIDDEN
    assert 'href="/app/approvals"' not in (await sales.get("/app")).text


async def test_the_inbox_is_paged_and_counted_in_the_database(
        api: Api, browsers: dict[int, Browser], monkeypatch: pytest.MonkeyPatch) -> None:
    from web.routes import approvals

    monkeypatch.setattr(approvals, "INBOX_PAGE_SIZE", 2)
    org = api.org
    ids = await _four_requests(api)
    director = await login_as(api, browsers, org.director, lang="en")
    first = await director.get("/app/approvals")
    assert inbox_ids(first.text) == [ids[1], ids[2]]
    assert 'href="/app/approvals?page=2" rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    assert "Page 1 of 2" in first.text
    second = await director.get("/app/approvals?page=2")
    assert inbox_ids(second.text) == [ids[0]]
    assert 'href="/app/approvals?page=1" rel="prev"' in second.text
    assert 'rel="next"' not in second.text
    for page in (first, second):  # the totals are the whole inbox's, not the page's
        assert "3 requests wait for your decision." in page.text and "1 is overdue." in page.text
        assert re.search(r'data-nav-count>3<', page.text)
    beyond = await director.get("/app/approvals?page=9")
    assert beyond.status_code == 200 and inbox_ids(beyond.text) == []
    assert 'href="/app/approvals?page=8" rel="prev"' in beyond.text
    assert (await director.get("/app/approvals?page=0")).status_code == 422
    zh = await login_as(api, browsers, org.legal_head, lang="zh-CN")
    monkeypatch.setattr(approvals, "INBOX_PAGE_SIZE", 1)
    open_level(api, ids[0], org.legal_head, due_in=timedelta(hours=5), level=2, role="legal")
    r = await zh.get("/app/approvals")
    assert "第 1 页，共 2 页" in r.text and "下一页" in r.text


async def test_a_delegate_sees_and_decides_on_behalf_of_the_approver(
        api: Api, browsers: dict[int, Browser], accepting: FakeTemporal) -> None:
    org = api.org
    ids = await _four_requests(api)
    delegate = await login_as(api, browsers, org.manager_b, lang="en")
    # manager_b is the (late) approver of one level: that one only, for now
    assert inbox_ids((await delegate.get("/app/approvals")).text) == [ids[2]]
    r = await delegate.get(f"/app/approvals/{ids[3]}")
    assert r.status_code == 404  # outside manager_b's team, and no delegation yet
    legal = await login_as(api, browsers, org.legal_head, lang="en")
    today = org_today(TZ)
    r = await legal.post("/app/delegations", {
        "delegate_id": org.manager_b, "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=3)).isoformat(), "reason": "annual leave"})
    assert r.status_code == 303 and r.headers["location"] == "/app/delegations?notice=created"
    r = await delegate.get("/app/approvals")
    assert inbox_ids(r.text) == [ids[2], ids[3]]
    assert "for Lu Legal" in r.text and "Today you also decide for Lu Legal" in r.text
    page = await delegate.get(f"/app/approvals/{ids[3]}")
    assert page.status_code == 200 and "You decide on behalf of Lu Legal" in page.text
    r = await delegate.post(f"/app/approvals/{ids[3]}/approve", {"comment": "for Lu"},
                            headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert r.headers["hx-redirect"] == f"/app/approvals/{ids[3]}?notice=approved"
    [(workflow_id, update, arg)] = accepting.updates
    assert (workflow_id, update) == (f"reassignment-{ids[3]}", "approve")
    assert isinstance(arg, ActionInput)
    assert (arg.actor_id, arg.on_behalf_of, arg.comment) == (org.manager_b, org.legal_head,
                                                             "for Lu")


async def test_the_review_page_shows_assessment_timeline_and_policy(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    ids = await _four_requests(api)
    director = await login_as(api, browsers, org.director)
    r = await director.get(f"/app/approvals/{ids[0]}")
    assert r.status_code == 200
    assert 'id="decision"' in r.text
    assert f'hx-post="/app/approvals/{ids[0]}/approve"' in r.text
    assert 'data-figure="loss"' in r.text and "<svg" in r.text and "style=" not in r.text
    assert 'id="timeline"' in r.text and 'data-step="level-1"' in r.text
    # the policy in force, in plain words and in Chinese
    assert "审批链：销售经理（时限 4 分钟，2 分钟后提醒） → 总监" in r.text
    assert 'class="policy-lines"' in r.text
    r = await director.get(f"/app/approvals/{ids[0]}?lang=en")
    assert "Approval chain: Sales manager (SLA 4 minutes, reminder after 2 minutes)" in r.text
    assert "Legal approval: Legal" in r.text
    # a level that waits for someone else: no form, a sentence
    r = await director.get(f"/app/approvals/{ids[3]}?lang=en")
    assert r.status_code == 200 and 'id="decision-comment"' not in r.text
    assert "waits for another approver" in r.text


async def test_approve_and_reject_post_the_workflow_update_with_csrf(
        api: Api, browsers: dict[int, Browser], accepting: FakeTemporal) -> None:
    org = api.org
    ids = await _four_requests(api)
    director = await login_as(api, browsers, org.director, lang="en")
    # without the CSRF token (neither header nor field): refused, nothing sent
    r = await director.post(f"/app/approvals/{ids[0]}/approve", {"comment": "ok"}, csrf=False)
    assert r.status_code == 403 and r.headers["x-problem-type"].endswith("/csrf-token-missing")
    assert accepting.updates == []
    # htmx sends the token as a header
    r = await director.http.post(f"/app/approvals/{ids[0]}/approve", data={"comment": ""},
                                 headers={"HX-Request": "true", "X-CSRF-Token": director.csrf})
    assert r.status_code == 200 and r.headers["hx-redirect"].endswith("notice=approved")
    _, update, arg = accepting.updates[-1]
    assert update == "approve" and arg.comment is None and arg.on_behalf_of is None
    assert arg.actor_id == org.director and "director" in arg.actor_roles
    # a plain form post (no JavaScript) is redirected to the page with a notice
    r = await director.post(f"/app/approvals/{ids[1]}/approve", {"comment": "fine"})
    assert r.status_code == 303
    assert r.headers["location"] == f"/app/approvals/{ids[1]}?notice=approved"
    page = await director.get(r.headers["location"])
    assert "You approved the request" in page.text
    # reject needs a reason: the error sits next to the field, nothing is sent
    before = len(accepting.updates)
    r = await director.post(f"/app/approvals/{ids[2]}/reject", {"comment": "  "},
                            headers={"HX-Request": "true"})
    assert r.status_code == 422 and "<html" not in r.text
    assert re.search(r'id="decision-comment"[^>]*aria-invalid="true"', r.text)
    assert 'id="error-comment" class="field-error" aria-live="polite">Give a reason' in r.text
    assert len(accepting.updates) == before
    r = await director.post(f"/app/approvals/{ids[2]}/reject", {"comment": "not now"},
                            headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.headers["hx-redirect"].endswith("notice=rejected")
    _, update, arg = accepting.updates[-1]
    assert update == "reject" and isinstance(arg, ReasonedActionInput)
    assert arg.reason == "not now"


async def test_a_stale_decision_says_what_happened_and_refreshes_the_state(
        api: Api, browsers: dict[int, Browser], accepting: FakeTemporal) -> None:
    org = api.org
    ids = await _four_requests(api)
    director = await login_as(api, browsers, org.director, lang="en")
    accepting.update_error = WorkflowUpdateFailedError(ApplicationError(
        "level 1 was already decided", type="ALREADY_DONE", non_retryable=True))
    r = await director.post(f"/app/approvals/{ids[0]}/approve", {"comment": "late"},
                            headers={"HX-Request": "true"})
    assert r.status_code == 409
    assert 'data-problem="action-already_done"' in r.text
    assert "The approval was not recorded." in r.text and "This was already done." in r.text
    # the fragment brings the timeline and the stage badge up to date (out of band)
    assert '<div id="timeline-slot" hx-swap-oob="true">' in r.text
    assert '<span id="review-stage" hx-swap-oob="true">' in r.text
    assert 'data-swap-errors' in r.text and 'value="late"' not in r.text
    assert ">late</textarea>" in r.text  # the comment typed is kept
    # the workflow is gone meanwhile (closed): 409 request-closed, the whole page without htmx
    accepting.update_error = None
    with api.sessions() as s:
        row = s.get(ReassignmentRequest, ids[0])
        assert row is not None
        row.stage, row.workflow_id = Stage.REJECTED, None
        s.add(row)
    r = await director.post(f"/app/approvals/{ids[0]}/approve", {"comment": ""})
    assert r.status_code == 409 and "<html" in r.text
    assert 'data-problem="request-closed"' in r.text and "data-no-decision" in r.text


async def test_decisions_outside_scope_are_404_and_roles_are_checked(
        api: Api, browsers: dict[int, Browser], accepting: FakeTemporal) -> None:
    org = api.org
    ids = await _four_requests(api)
    outsider = await login_as(api, browsers, org.manager_b)
    for url in (f"/app/approvals/{ids[0]}", ):
        assert (await outsider.get(url)).status_code == 404
    r = await outsider.post(f"/app/approvals/{ids[0]}/approve", {"comment": ""})
    assert r.status_code == 404
    sales = await login_as(api, browsers, org.sales_a1)
    r = await sales.post(f"/app/approvals/{ids[0]}/approve", {"comment": ""})
    assert r.status_code == 403 and r.headers["x-problem-type"] == FORBIDDEN
    assert accepting.updates == []


# --- delegations --------------------------------------------------------------------------------


async def test_delegation_form_errors_sit_next_to_the_fields(
        api: Api, browsers: dict[int, Browser]) -> None:
    org = api.org
    director = await login_as(api, browsers, org.director, lang="en")
    page = await director.get("/app/delegations")
    assert page.status_code == 200
    options = set(map(int, re.findall(r'<option value="(\d+)"', page.text)))
    # colleagues with an approver role only, never oneself, never a salesperson
    assert {org.manager_a, org.manager_b, org.hr_head, org.legal_head} <= options
    assert org.director not in options and org.sales_a1 not in options
    today = org_today(TZ)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"delegate_id": "", "starts_on": "", "ends_on": "", "reason": ""}, "delegate_id",
         "Choose a colleague"),
        ({"delegate_id": org.director, "starts_on": today.isoformat(),
          "ends_on": today.isoformat(), "reason": "x"}, "delegate_id", "yourself"),
        ({"delegate_id": org.sales_a1, "starts_on": today.isoformat(),
          "ends_on": today.isoformat(), "reason": "x"}, "delegate_id", "no approver role"),
        ({"delegate_id": org.manager_b, "starts_on": today.isoformat(),
          "ends_on": (today - timedelta(days=1)).isoformat(), "reason": "x"}, "ends_on",
         "cannot be before the first day"),
        ({"delegate_id": org.manager_b, "starts_on": today.isoformat(),
          "ends_on": (today + timedelta(days=200)).isoformat(), "reason": "x"}, "ends_on",
         "at most 92 days"),
        ({"delegate_id": org.manager_b, "starts_on": today.isoformat(),
          "ends_on": today.isoformat(), "reason": "   "}, "reason", "Give a reason"),
    ]
    for form, field, words in cases:
        r = await director.post("/app/delegations", form)
        assert r.status_code == 422, form
        found = re.search(rf'id="error-{field}" class="field-error" aria-live="polite">([^<]*)<',
                          r.text)
        assert found and words in found.group(1), (form, found and found.group(1))
        assert re.search(rf'id="{field if field != "reason" else "delegation-reason"}"[^>]*'
                         r'aria-invalid="true"', r.text), field
    with api.sessions() as s:
        assert s.exec(select(ApprovalDelegation)).all() == []


async def test_delegations_are_listed_and_revoked(api: Api,
                                                 browsers: dict[int, Browser]) -> None:
    org = api.org
    director = await login_as(api, browsers, org.director)
    today = org_today(TZ)
    r = await director.post("/app/delegations", {
        "delegate_id": org.manager_b, "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=2)).isoformat(), "reason": "年假"})
    assert r.status_code == 303
    page = await director.get("/app/delegations?notice=created")
    assert "委托已保存" in page.text and "年假" in page.text and "今天生效" in page.text
    [delegation_id] = map(int, re.findall(r'action="/app/delegations/(\d+)/revoke"', page.text))
    delegate = await login_as(api, browsers, org.manager_b)
    assert "委托给我的" in (r := await delegate.get("/app/delegations")).text
    assert "年假" in r.text and "/revoke" not in r.text  # the delegate cannot end it
    r = await delegate.post(f"/app/delegations/{delegation_id}/revoke", {})
    assert r.status_code == 404
    r = await director.post(f"/app/delegations/{delegation_id}/revoke", {})
    assert r.status_code == 303 and r.headers["location"] == "/app/delegations?notice=revoked"
    with api.sessions() as s:
        row = s.get(ApprovalDelegation, delegation_id)
        assert row is not None and row.revoked_at is not None
    page = await director.get("/app/delegations")
    assert "已结束" in page.text and "/revoke" not in page.text
    # salespeople cannot delegate approvals
    sales = await login_as(api, browsers, org.sales_a1)
    r = await sales.get("/app/delegations")
    assert r.status_code == 403 and r.headers["x-problem-type"] == FORBIDDEN


async def test_the_review_page_says_what_i_decided(api: Api,
                                                  browsers: dict[int, Browser]) -> None:
    org = api.org
    ids = await _four_requests(api)
    with api.sessions() as s:  # what the workflow's activity writes once the director approved
        step = s.exec(select(ApprovalStep).where(ApprovalStep.request_id == ids[0])).one()
        step.status, step.decided_by_id = LevelStatus.APPROVED.value, org.director
        step.decided_at = datetime.now(UTC)
        s.add(step)
    director = await login_as(api, browsers, org.director, lang="en")
    r = await director.get(f"/app/approvals/{ids[0]}")
    assert 'data-my-decision="APPROVED"' in r.text and "You approved level 1." in r.text
    assert 'id="decision-comment"' not in r.text
    r = await director.get("/app/approvals")
    assert ids[0] not in inbox_ids(r.text)
    assert f'href="/app/approvals/{ids[0]}"' in r.text.split("My recent decisions")[1]
