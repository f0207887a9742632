"""HTTP views served by the workers (Faust's aiohttp web server).

``POST /webhooks/github``: the signature is checked in constant time, then
the request is appended to ``scm.webhooks.raw`` and acknowledged by the broker
BEFORE we answer 202: a bug further down can lose nothing.
``POST /v1/feedback``: explicit feedback on a finding.
``POST /v1/query`` (store worker): SQL against the ClickHouse the store
worker owns, so analysts and tools can query while the pipeline runs.
"""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from typing import Any

import faust
from faust.web import Request, Response, View

from codereview.settings import SourceSettings
from processors.event_size import fit_event
from processors.generic_events import parse_generic_event
from processors.scm import SOURCES, delivery_key, event_name
from schemas.errors import ProcessorError
from schemas.records import VERDICTS, FeedbackEvent, RawWebhook
from sinks.kafka import AsyncKafkaRecordSink
from streams.channels import Channels
from streams.emitter import Emitter, child_traceparent, now_ms
from streams.store import StoreDeps

log = logging.getLogger(__name__)

# Headers that carry a credential itself (not a signature over the body) never
# reach a topic.
SECRET_HEADERS = frozenset({"authorization", "x-gitlab-token", "x-gerrit-secret", "cookie"})


def register_ingest_views(
    app: faust.App,
    ch: Channels,
    emitter: Emitter,
    sources: SourceSettings,
    raw_sink: AsyncKafkaRecordSink,
    *,
    max_message_bytes: int = 900_000,
) -> None:
    raw_topic = ch.raw.get_topic_name()

    async def ingest(view: View, request: Request, source: str, tenant: str) -> Response:
        """Authenticate, then append the delivery to scm.webhooks.raw before answering."""
        received = now_ms()
        spec = SOURCES.get(source)
        if spec is None:
            return view.json({"error": f"unknown source {source!r}"}, status=404)
        secrets = sources.secrets_for(tenant, source)
        if not secrets:
            return view.json({"error": f"no webhook secret for {tenant}/{source}"}, status=401)
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        if not spec.verify(headers, body, secrets):
            return view.json({"error": "signature or token does not match"}, status=401)
        problem = _not_a_json_object(body)
        if problem:
            return view.json({"error": problem}, status=400)
        stamp = spec.timestamp_ms(headers, body)
        window_ms = sources.replay_window_s * 1000
        if window_ms and stamp is not None and received - stamp > window_ms:
            return view.json({"error": "delivery is older than the replay window"}, status=401)
        delivery = delivery_key(source, headers, body)
        raw = RawWebhook(
            delivery_id=delivery,
            source=source,
            tenant=tenant,
            event_type=event_name(source, headers, body),
            headers={k: v for k, v in headers.items() if k not in SECRET_HEADERS},
            body=body,
            received_at_ms=received,
        )
        trace = {"traceparent": child_traceparent(None), "tenant": tenant}
        await raw_sink.send(raw_topic, delivery, raw, headers=trace)  # acked before we answer
        return view.json({"accepted": delivery}, status=202)

    @app.page("/webhooks/{source}/{tenant}")
    class SourceWebhook(View):
        async def post(self, request: Request, source: str, tenant: str) -> Response:
            return await ingest(self, request, source, tenant)

    @app.page("/webhooks/{source}")
    class DefaultTenantWebhook(View):
        async def post(self, request: Request, source: str) -> Response:
            return await ingest(self, request, source, sources.tenant)

    tenant = sources.tenant

    @app.page("/v1/events")
    class GenericEvents(View):
        """Already-normalized PR events, for SCMs without a source of their own."""

        async def post(self, request: Request) -> Response:
            received = now_ms()
            key = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            owner = tenant_for_api_key(sources, key)
            if owner is None:
                return self.json({"error": "missing or unknown API key"}, status=401)
            try:
                event = parse_generic_event(
                    await request.read(), tenant=owner, received_at_ms=received
                )
            except ProcessorError as exc:
                return self.json({"error": str(exc)}, status=400)
            event, _ = fit_event(event, max_message_bytes)
            await emitter.send(ch.events, event.key, event)
            return self.json({"accepted": event.event_id}, status=202)

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
                    rule_id=str(body.get("rule_id", "")),  # else joined by fingerprint
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


def tenant_for_api_key(sources: SourceSettings, key: str) -> str | None:
    """The tenant whose API key this is; every key is compared in constant time."""
    found = None
    for owner, keys in sources.api_keys.items():
        for candidate in keys:
            secret = candidate.get_secret_value()
            if secret and key and hmac.compare_digest(secret.encode(), key.encode()):
                found = owner
    return found


def _not_a_json_object(body: bytes) -> str | None:
    try:
        payload = json.loads(body.decode("utf-8"))  # JSON on the wire is UTF-8 (RFC 8259)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"body is not JSON: {exc}"
    return None if isinstance(payload, dict) else "body is not a JSON object"


def _jsonable(row: Any) -> list[Any]:
    return [v if isinstance(v, str | int | float | bool | type(None)) else str(v) for v in row]
