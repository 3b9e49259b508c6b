"""Maintenance Lambda (the data plane's image): indexes, compaction and old-version cleanup.

Triggered by the maintenance queue (collection ids the data function sent after writes,
deduplicated per collection by the FIFO queue) and by a schedule that sweeps every collection.
Failed queue records are reported back so only they are retried; each failure is logged (as
JSON, with the collection) and counted in the MaintenanceFailures metric.
"""

from __future__ import annotations

from typing import Any

from chroma_serverless.observe import setup
from chroma_serverless.service.maintenance import maintain, maintain_all
from chroma_serverless.settings import Settings
from chroma_serverless.wiring import build_service

settings = Settings.from_env()
setup.configure(settings)
service = build_service(settings.replace(maintenance="off"))


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    with setup.invocation(context):
        records = event.get("Records")
        if records is None:  # the schedule
            return {"maintained": len(maintain_all(service))}
        failures = []
        for record in records:
            try:
                maintain(service, record["body"])
            except Exception:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
