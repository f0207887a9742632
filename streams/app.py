"""Builds the Faust app for one worker role, from settings, in one place.

Three roles, three consumer groups:
- ``pipeline`` (run as many as you like): webhook ingest, normalize, chunk,
  embed, triage, deep analysis, learning.
- ``store`` (exactly one with chdb): topics into ClickHouse, and the query
  view. chdb allows one process per directory, hence a role of its own.
- ``publish`` (as many as you like): findings to review comments on each
  SCM; a downstream consumer of ``pr.findings`` like any team's own.

Every client is built here and closed by the app's shutdown hook, so the
lifecycle of each sink has one owner (imitating Quix Streams' Application).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast

import faust

from codereview.models import tiers_from_settings
from codereview.settings import Settings, SourceSettings
from processors.analyzers import build_analyzers
from processors.embedding import Embedder, EmbeddingCache, build_embedder
from schemas.codec import AvroCodec
from schemas.errors import ProcessorError
from schemas.registry import ConfluentSchemaRegistry, LocalSchemaRegistry, SchemaRegistry
from sinks.clickhouse import ClickHouseSink
from sinks.kafka import AsyncKafkaRecordSink
from sinks.milvus import MilvusSink
from sinks.scm.base import ScmPublisher, build_publisher
from sources.scm_api import ScmApi, build_scm_api
from streams.budgets import Budgets
from streams.channels import declare_channels
from streams.deep_review import LlmDeps
from streams.emitter import Emitter
from streams.fetch_backoff import install_empty_fetch_backoff
from streams.ingest import IngestDeps, register_ingest_agents
from streams.learning import PosteriorView
from streams.pipeline import PipelineDeps, register_pipeline_agents
from streams.publish import PublishDeps, register_publish_agents
from streams.store import StoreDeps, register_store_agents
from streams.topics import PARTITIONS
from streams.web import register_ingest_views, register_query_view

log = logging.getLogger(__name__)

ROLES = ("pipeline", "store", "publish")


class _Closable(Protocol):
    def close(self) -> Awaitable[None]: ...


C = TypeVar("C", bound=_Closable)


@dataclass(frozen=True)
class Endpoints:
    """Resolved addresses (configured URLs, or the embedded stack's)."""

    kafka_bootstrap: str
    milvus_uri: str
    # librdkafka settings (bootstrap, SASL/TLS) for producers outside Faust.
    kafka_config: dict[str, str] = field(default_factory=dict)


def build_registry(settings: Settings) -> SchemaRegistry:
    if settings.schema_registry.url:
        return ConfluentSchemaRegistry(settings.schema_registry.url)
    return LocalSchemaRegistry(settings.schema_registry.local_path)


def embedder_from_settings(settings: Settings) -> Embedder:
    emb = settings.embedding
    return build_embedder(
        emb.provider,
        model=emb.model,
        base_url=emb.base_url,
        api_key=emb.api_key.get_secret_value(),
        max_tokens=emb.max_tokens,
        batch_size=emb.batch_size,
        threads=emb.threads,
        dim=emb.dim,
    )


class ClientsBySource(Generic[C]):
    """One client per (source, tenant), built on first use by ``build``, closed at shutdown."""

    def __init__(self, build: Callable[[str, str], C]) -> None:
        self._build = build
        self._clients: dict[tuple[str, str], C] = {}

    def get(self, source: str, tenant: str) -> C:
        key = (source, tenant)
        if key not in self._clients:
            self._clients[key] = self._build(source, tenant)
        return self._clients[key]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def scm_apis(section: SourceSettings) -> ClientsBySource[ScmApi]:
    """The REST clients ingest reads PRs with."""

    def build(source: str, tenant: str) -> ScmApi:
        return build_scm_api(
            source,
            base_url=_api_url(source, section.api_urls, "CODEREVIEW_SOURCE__API_URLS"),
            token=section.token_for(tenant, source),
            timeout_s=section.fetch_timeout_s,
        )

    return ClientsBySource(build)


def scm_publishers(settings: Settings) -> ClientsBySource[ScmPublisher]:
    """The publishers of the publish role: the sources' URLs and tokens unless
    ``publish.api_urls`` sends comments elsewhere (a bot proxy)."""
    urls = {**settings.source.api_urls, **settings.publish.api_urls}

    def build(source: str, tenant: str) -> ScmPublisher:
        return build_publisher(
            source,
            base_url=_api_url(
                source, urls, "CODEREVIEW_PUBLISH__API_URLS or CODEREVIEW_SOURCE__API_URLS"
            ),
            token=settings.source.token_for(tenant, source),
            timeout_s=settings.publish.timeout_s,
        )

    return ClientsBySource(build)


def _api_url(source: str, urls: dict[str, str], variable: str) -> str:
    if not urls.get(source):
        raise ProcessorError(f"no API URL configured for {source} ({variable})")
    return urls[source]


def app_id_for(settings: Settings, role: str) -> str:
    return settings.worker.app_id if role == "pipeline" else f"{settings.worker.app_id}-{role}"


def create_app(
    settings: Settings, role: str, endpoints: Endpoints, *, web_port: int, instance: str = ""
) -> faust.App:
    if role not in ROLES:
        raise ValueError(f"unknown worker role {role!r}; expected one of {ROLES}")
    app_id = app_id_for(settings, role)
    install_empty_fetch_backoff(settings.kafka.empty_fetch_backoff_ms / 1000.0)
    datadir = settings.worker.data_dir / f"{app_id}-{socket.gethostname()}-{web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=f"kafka://{endpoints.kafka_bootstrap}",
        broker_credentials=_credentials(settings),
        store="memory://",  # tables recover from their changelog topics
        topic_partitions=PARTITIONS,
        topic_allow_declare=False,  # `codereview up` created every topic with fixed counts
        topic_disable_leader=True,
        broker_session_timeout=6.0,
        # Offsets are committed this often; the window of work a crash repeats.
        broker_commit_interval=settings.kafka.commit_interval_s,
        # On a rebalance, do not wait for in-flight events to be acked: after a
        # member crashed, that wait deadlocked the group against the embedded
        # broker. Unacked events are redelivered (at-least-once, keyed effects).
        stream_wait_empty=False,
        # A rebalance waits up to this long for every member to rejoin; the
        # embedded broker does not expire a crashed member sooner, so Faust's
        # default (1000 s) stalled the group for minutes after a SIGKILL.
        broker_rebalance_timeout=settings.kafka.rebalance_timeout_s,
        # Static membership: a restarted worker takes over its own slot at once
        # instead of waiting for the crashed member's session to expire.
        consumer_group_instance_id=f"{app_id}-{instance}" if instance else None,
        producer_acks=-1,
        web_host=settings.worker.web_host,
        web_port=web_port,
        web_in_thread=False,
        datadir=str(datadir),
        autodiscover=False,
        consumer_auto_offset_reset="earliest",
        # SCMs send webhooks of up to 25 MB; aiohttp's default limit is 1 MiB.
        web_application_options={"client_max_size": settings.source.max_body_bytes},
    )
    channels = declare_channels(app, settings.kafka.topic_prefix)
    emitter = Emitter(AvroCodec(build_registry(settings)), channels)
    closers: list[Any] = []

    if role == "pipeline":
        emb = settings.embedding
        embedder = embedder_from_settings(settings)
        milvus = MilvusSink.from_settings(settings.milvus, uri=endpoints.milvus_uri, dim=emb.dim)
        llm_deps = llm_from_settings(settings)
        apis = scm_apis(settings.source)
        kafka_config = endpoints.kafka_config or {"bootstrap.servers": endpoints.kafka_bootstrap}
        posteriors = PosteriorView(kafka_config, f"{app_id}-posteriors-changelog")
        deps = PipelineDeps(
            emitter=emitter,
            milvus=milvus,
            embedder=embedder,
            embed_cache=EmbeddingCache(emb.cache_size),
            analyzers=build_analyzers(settings.triage.analyzers),
            llm=llm_deps,
            escalate_risk=settings.llm.escalate_risk,
            near_lines=settings.triage.near_lines,
            carry_text_risk=settings.llm.gate_risk if llm_deps and llm_deps.cheap else None,
            published_ttl_days=settings.llm.cache_ttl_days,
            learning=settings.learning,
            posteriors=posteriors,
            embed_nice=emb.nice,
        )
        register_pipeline_agents(app, channels, deps)
        register_ingest_agents(
            app,
            channels,
            IngestDeps(
                emitter=emitter,
                scm_api=apis.get,
                dedupe_ttl_s=settings.source.dedupe_ttl_s,
                max_message_bytes=settings.kafka.max_message_bytes,
            ),
        )
        raw_sink = AsyncKafkaRecordSink(kafka_config, emitter.codec)
        register_ingest_views(
            app,
            channels,
            emitter,
            settings.source,
            raw_sink,
            max_message_bytes=settings.kafka.max_message_bytes,
        )
        closers += [milvus.close, apis.close, raw_sink.close, posteriors.stop]

        def start_sinks(app: Any, *_: Any, signal: Any = None, **__: Any) -> None:
            milvus.start()
            posteriors.start()

        app.on_worker_init.connect(cast(Any, start_sinks))
    elif role == "publish":
        publishers = scm_publishers(settings)
        register_publish_agents(
            app,
            channels,
            PublishDeps(
                emitter, publishers.get, settings.publish, flush=lambda: app.producer.flush()
            ),
        )
        closers.append(publishers.close)
    else:
        clickhouse = ClickHouseSink.from_settings(settings.clickhouse)
        store = StoreDeps(
            emitter=emitter,
            clickhouse=clickhouse,
            batch_size=settings.clickhouse.batch_size,
            flush_interval_s=settings.clickhouse.flush_interval_s,
        )
        register_store_agents(app, channels, store)
        register_query_view(app, store)
        closers.append(lambda: store.executor.submit(clickhouse.close).result())

        def start_store(app: Any, *_: Any, signal: Any = None, **__: Any) -> None:
            store.executor.submit(clickhouse.start).result()

        app.on_worker_init.connect(cast(Any, start_store))

    async def close_sinks(app: Any, *_: Any, signal: Any = None, **__: Any) -> None:
        for close in closers:
            try:
                result = close()
                if hasattr(result, "__await__"):
                    await result
            except Exception:  # shutdown must reach every sink
                log.exception("closing a sink failed")

    app.on_before_shutdown.connect(cast(Any, close_sinks))

    return app


def _credentials(settings: Settings) -> Any:
    k = settings.kafka
    if not k.sasl_mechanism:
        return None
    return faust.SASLCredentials(
        username=k.sasl_username,
        password=k.sasl_password.get_secret_value(),
        mechanism=k.sasl_mechanism,
    )


def llm_from_settings(settings: Settings) -> LlmDeps | None:
    """Both model tiers behind retries and a breaker, and the budgets; None when off."""
    llm = settings.llm
    tiers = tiers_from_settings(llm)
    if tiers.strong is None:
        return None
    return LlmDeps(
        strong=tiers.strong,
        cheap=tiers.cheap if llm.cheap_model else None,
        budgets=Budgets(
            llm.budgets_usd,
            llm.budgets_tokens,
            partitions=PARTITIONS,
            window_s=llm.budget_window_s,
            alert_ratio=llm.budget_alert_ratio,
        ),
        max_output_tokens=llm.max_output_tokens,
        prompt_budget_tokens=llm.prompt_budget_tokens,
        gate_risk=llm.gate_risk,
        cache_ttl_days=llm.cache_ttl_days,
        max_calls_per_pr=llm.max_calls_per_pr,
        prompt_variants=_checked_variants(llm.prompt_variants),
        stream=llm.stream,
    )


def _checked_variants(variants: list[str]) -> list[str]:
    """The configured prompt variants, each loaded once so a typo fails at start-up."""
    from processors.analysis import system_prompt

    for version in variants:
        system_prompt(version)
    return list(variants)
