"""HTTP views served by the workers (Faust's aiohttp web server).

``POST /webhooks/github``: the signature is checked in constant time, then
the request is appended to ``scm.webhooks.raw`` and acknowledged by the broker
BEFORE we answer 202: a bug further down can lose nothing.
``POST /v1/feedback``: explicit feedback on a finding.
``POST /v1/query`` (store worker): SQL against the ClickHouse the store
worker owns, so analysts and tools can query while the pipeline runs.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import faust
from faust.web import Request, Response, View

from processors import github_events
from schemas.records import VERDICTS, FeedbackEvent, RawWebhook
from streams.channels import Channels
from streams.emitter import Emitter, now_ms
from streams.store import StoreDeps

log = logging.getLogger(__name__)

KEPT_HEADERS = (
    "x-github-event",
    "x-github-delivery",
    "x-hub-signature-256",
    "content-type",
    "user-agent",
)


def register_ingest_views(
    app: faust.App, ch: Channels, emitter: Emitter, *, tenant: str, github_secret: bytes
) -> None:
    @app.page("/webhooks/github")
    class GitHubWebhook(View):
        async def post(self, request: Request) -> Response:
            received = now_ms()
            body = await request.read()
            headers = {k.lower(): v for k, v in request.headers.items()}
            if not github_events.verify_signature(
                github_secret, body, headers.get("x-hub-signature-256")
            ):
                return self.json({"error": "bad or missing X-Hub-Signature-256"}, status=401)
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                return self.json({"error": f"body is not JSON: {exc}"}, status=400)
            if not isinstance(payload, dict):
                return self.json({"error": "body is not a JSON object"}, status=400)
            event_type = headers.get("x-github-event", "")
            delivery = headers.get("x-github-delivery") or str(uuid.uuid4())
            raw = RawWebhook(
                delivery_id=delivery,
                source="github",
                tenant=tenant,
                event_type=event_type,
                headers={k: v for k, v in headers.items() if k in KEPT_HEADERS},
                body=body,
                received_at_ms=received,
            )
            await emitter.send(ch.raw, delivery, raw)
            return self.json({"accepted": delivery}, status=202)

    @app.page("/v1/feedback")
    class Feedback(View):
        async def post(self, request: Request) -> Response:
            try:
                body = json.loads(await request.read())
                verdict = str(body["verdict"]).upper()
                if verdict not in VERDICTS:
                    raise ValueError(f"verdict must be one of {VERDICTS}")
                event = FeedbackEvent(
                    event_id=str(body.get("event_id") or uuid.uuid4()),
                    fingerprint=str(body["fingerprint"]),
                    tenant=str(body.get("tenant", tenant)),
                    repo=str(body["repo"]),
                    pr_number=int(body["pr_number"]),
                    rule_id=str(body["rule_id"]),
                    verdict=verdict,
                    signal=str(body.get("signal", "api")),
                    actor=str(body.get("actor", "")),
                    at_ms=now_ms(),
                )
            except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
                return self.json({"error": f"bad feedback: {exc}"}, status=400)
            await emitter.send(ch.feedback, event.key, event)
            return self.json({"accepted": event.event_id}, status=202)


def register_query_view(app: faust.App, deps: StoreDeps) -> None:
    @app.page("/v1/query")
    class Query(View):
        async def post(self, request: Request) -> Response:
            sql = (await request.read()).decode(errors="replace").strip()
            if not sql:
                return self.json({"error": "empty query"}, status=400)
            try:
                columns, rows = await deps.call(deps.clickhouse.query, sql)
            except Exception as exc:  # report the database's own message to the caller
                return self.json({"error": f"{type(exc).__name__}: {exc}"}, status=400)
            return self.json({"columns": columns, "rows": [_jsonable(r) for r in rows]})


def _jsonable(row: Any) -> list[Any]:
    return [v if isinstance(v, str | int | float | bool | type(None)) else str(v) for v in row]
