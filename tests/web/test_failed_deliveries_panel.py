"""The HR dashboard's panel of notifications that were not delivered, in both languages."""

from __future__ import annotations

import re

from tests.api.conftest import Api
from tests.api.test_notification_deliveries import seed_deliveries
from tests.web.conftest import Browser, login_as


async def test_failed_deliveries_are_listed_on_the_dashboard(
        api: Api, browsers: dict[int, Browser]) -> None:
    hr = await login_as(api, browsers, api.org.hr_staff, lang="en")
    empty = await hr.get("/app/hr")
    assert 'data-failed-deliveries="0"' in empty.text
    assert "No e-mail or group message failed." in empty.text

    request_id = seed_deliveries(api)
    page = (await hr.get("/app/hr")).text
    assert 'data-failed-deliveries="3"' in page
    rows = re.findall(r'<tr data-failed-delivery="\d+">(.*?)</tr>', page, re.S)
    assert len(rows) == 3  # the sent one is not listed
    robot, no_address, smtp = rows
    assert "Group robot “hr”" in robot and "code 19021" in robot
    assert "Wang Sales" in no_address and "no valid e-mail address on record" in no_address
    assert "Ma Manager" in smtp and "SMTP error 451" in smtp
    assert all(f'href="/app/hr/cases/{request_id}"' in row for row in rows)
    assert all("The salesperson declined the agreement" in row for row in rows)

    zh = await login_as(api, browsers, api.org.hr_head, lang="zh_CN")
    page = (await zh.get("/app/hr")).text
    assert "未送达的通知" in page and "群机器人“hr”" in page and "尝试次数" in page
