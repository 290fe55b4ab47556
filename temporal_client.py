"""Connecting to Temporal with Baton's data converter; shared by the API, worker and CLI.

The converter is pydantic_data_converter with the payload codec (payload_codec.py): every
payload is encrypted before it reaches Temporal.
"""

from __future__ import annotations

import json

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from payload_codec import data_converter
from settings import Settings

# Server settings for the dev servers that Baton starts (`cli.py dev`, the tests); the
# docker-compose server reads the same from deploy/temporal/dynamicconfig/development-sql.yaml.
# After this many consecutive failed or timed-out workflow tasks the server sets the system
# search attribute TemporalReportedProblems, which the stuck monitor queries
# (api/services/monitor.py); a successful task clears it.
DEV_SERVER_DYNAMIC_CONFIG: dict[str, int] = {
    "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute": 2,
}


def dev_server_dynamic_config_args() -> list[str]:
    """`temporal server start-dev` arguments: KEY=VALUE with the value as JSON."""
    args: list[str] = []
    for key, value in DEV_SERVER_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return args


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
    )


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Register Baton's search attributes (idempotent); needed before any upsert."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )

    from workflows.search_attributes import CLI_TYPES

    types = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace))
        known = set(existing.custom_attributes)
    except RPCError as err:  # the time-skipping test server only implements Add
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {name: types[kind] for name, kind in CLI_TYPES.items() if name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))
