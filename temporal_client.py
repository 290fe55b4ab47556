"""Connecting to Temporal with Baton's data converter; shared by the API, worker and CLI.

The converter is pydantic_data_converter with the payload codec (payload_codec.py): every
payload is encrypted before it reaches Temporal.
"""

from __future__ import annotations

import json
import logging

from temporalio.client import Client
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
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


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client; `runtime` (the worker's, see worker_runtime) carries its telemetry."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(settings),
        runtime=runtime,
    )


def worker_runtime(settings: Settings) -> Runtime:
    """The worker's Temporal runtime.

    The SDK core's own log lines go through Python logging (so they come out in the worker's
    JSON format), and with BATON_WORKER_METRICS_ADDRESS set the SDK serves Prometheus metrics
    at http://<address>/metrics: its temporal_* metrics and Baton's baton_* domain counters
    (activities/metrics.py). Raises ValueError when the address is taken.
    """
    address = settings.worker_metrics_address
    return Runtime(telemetry=TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))),
        metrics=PrometheusConfig(bind_address=address) if address else None,
    ))


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
