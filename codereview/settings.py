"""The one configuration model of the platform.

Built once in ``main()`` (or by a test) and passed down: sinks take their own
section through ``from_settings``; processors get plain scalars, never this
object. Every field has a default that works on the embedded stack, and every
field can be changed by an environment variable: ``CODEREVIEW_`` + section +
``__`` + field, e.g. ``CODEREVIEW_KAFKA__BOOTSTRAP=broker:9092``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StackSettings(_Section):
    """Where the embedded stack (``codereview up``) keeps its state and ports.

    ``state_dir`` holds ``stack.json``: the addresses every other command reads
    when its own URLs are left empty. A fresh data dir per ``up`` keeps
    committed offsets from earlier runs out (noida-db keeps them even across
    topic deletion).
    """

    state_dir: Path = Path(".stack")
    kafka_port: int = 0  # 0: pick a free port
    milvus_port: int = 0
    store_web_port: int = 0
    start_timeout_s: float = 30.0


class KafkaSettings(_Section):
    """Bootstrap servers; empty means the embedded broker from ``stack.json``."""

    bootstrap: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: SecretStr = SecretStr("")
    topic_prefix: str = ""
    # noida-db answers empty fetches at once; without a pause idle consumers spin.
    empty_fetch_backoff_ms: int = 25
    rebalance_timeout_s: float = 15.0
    commit_interval_s: float = 1.0
    # A PR event larger than this sheds head-file contents, then file diffs (with a
    # truncation marker) so it fits: under the brokers' 1 MB default message limit.
    max_message_bytes: int = 900_000


class SchemaRegistrySettings(_Section):
    """A Confluent-compatible registry URL, or a local file-backed registry."""

    url: str = ""
    local_path: Path = Path(".stack/schema-registry.json")


class MilvusSettings(_Section):
    """A Milvus URI; empty means the embedded ``milvus-lite server``."""

    uri: str = ""
    token: SecretStr = SecretStr("")
    collection: str = "code_chunks_v2"


class ClickHouseSettings(_Section):
    """Either a ClickHouse server URL (http://...) or a chdb directory.

    chdb allows ONE process per directory, so with chdb only the store worker
    opens it and everyone else routes queries through that worker's web view.
    """

    url: str = ""
    chdb_path: Path = Path(".stack/chdb")
    database: str = "codereview"
    batch_size: int = 500
    flush_interval_s: float = 1.0


class EmbeddingSettings(_Section):
    """The local MiniLM model (int8 ONNX) or an OpenAI-compatible endpoint."""

    provider: str = "minilm-onnx"  # or "openai", "openai-compatible"
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = "all-MiniLM-L6-v2"
    dim: int = 384
    batch_size: int = 32
    max_tokens: int = 256
    cache_size: int = 50_000
    threads: int = 1
    # Embedding feeds retrieval, not the findings: it runs in a lower-priority
    # thread so triage (what people wait for) gets the CPU first.
    nice: int = 10


class TriageSettings(_Section):
    """The cheap analyzers every PR goes through, and what counts as "near" a change.

    ``analyzers`` are names from ``processors.analyzers`` ("rules", "ruff",
    "bandit", "detect-secrets", "prompt-injection", "semgrep"). semgrep is off by default: its
    process start-up (~1.7 s a call) would dominate triage time per PR.
    """

    analyzers: list[str] = Field(
        default_factory=lambda: ["rules", "ruff", "bandit", "detect-secrets", "prompt-injection"]
    )
    # Lines around a change whose issues count: the golden cases' own margin.
    near_lines: int = 3


class LlmSettings(_Section):
    """Deep analysis. ``provider`` empty means: skip deep analysis (logged once).

    Two tiers: the strong model (``provider``/``model``) reviews the chunks
    triage escalates; the cheap model (``cheap_*``; empty means the strong
    provider with ``cheap_model``, or no gate at all when that is empty too)
    answers the triage question for borderline chunks (risk between
    ``gate_risk`` and ``escalate_risk``): is this worth the strong model?

    Budgets are USD (and/or tokens) per ``budget_window_s`` for a scope: "team:<tenant>" or
    "repo:<owner/name>", e.g. ``{"team:acme": 50, "repo:acme/api": 5}``.
    At ``budget_alert_ratio`` an alert metric is emitted once per window;
    a call that would pass the limit is not made (a hard stop), and the PR
    keeps its triage findings.
    """

    provider: str = ""  # "", "openai", "anthropic", "openai-compatible"
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = ""
    cheap_provider: str = ""
    cheap_base_url: str = ""
    cheap_api_key: SecretStr = SecretStr("")
    cheap_model: str = ""
    timeout_s: float = 30.0
    # Attempts per call, the first included; the SDKs' own retries are off.
    max_attempts: int = 3
    retry_base_s: float = 0.5
    retry_max_wait_s: float = 30.0
    deadline_s: float = 120.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 30.0
    max_output_tokens: int = 1024
    prompt_budget_tokens: int = 6000
    escalate_risk: float = 0.5
    gate_risk: float = 0.3
    cache_ttl_days: float = 90.0
    max_calls_per_pr: int = 4
    # Review prompt variants to A/B test (file stems in processors/prompts, e.g.
    # ["review-v1", "review-v1-focused"]); a PR's variant is chosen by a hash of its key.
    prompt_variants: list[str] = Field(default_factory=list)
    stream: bool = False
    # Ask OpenAI-API servers for JSON-constrained decoding: small self-hosted
    # models then return parseable answers.
    json_mode: bool = False
    budgets_usd: dict[str, float] = Field(default_factory=dict)
    budgets_tokens: dict[str, int] = Field(default_factory=dict)
    budget_window_s: int = 86_400
    budget_alert_ratio: float = 0.8


class LearningSettings(_Section):
    """How feedback turns into confidence, and when a finding is held back.

    Every finding's confidence is the posterior mean of its rule's acceptance
    (Beta-Bernoulli, old feedback decaying with ``half_life_days``), with the
    static confidence as the prior worth ``prior_strength`` observations. A
    finding under its team's threshold (``thresholds``: tenant -> value, else
    ``default_threshold``) is not published but recorded with its reason;
    security and secret findings of HIGH or CRITICAL severity never are.
    """

    # Chosen by bench/learning.py on the golden cases (train/test split by project).
    half_life_days: float = 30.0
    prior_strength: float = 4.0
    min_evidence: float = 3.0
    default_threshold: float = 0.1
    thresholds: dict[str, float] = Field(default_factory=dict)


class SourceSettings(_Section):
    """SCM webhooks in, SCM REST APIs out, per tenant.

    Keys of ``webhook_secrets`` and ``api_tokens`` are ``"tenant/source"``
    (``"acme/gitlab"``). Each tenant may have TWO active webhook secrets per
    source, so a secret can be rotated without downtime: add the new one,
    switch the SCM over, then drop the old one. Set these from the
    environment as JSON, e.g.
    ``CODEREVIEW_SOURCE__WEBHOOK_SECRETS='{"acme/github": ["s1", "s2"]}'``.
    """

    tenant: str = "default"
    webhook_secrets: dict[str, list[SecretStr]] = Field(
        default_factory=lambda: {"default/github": [SecretStr("dev-secret")]}
    )
    # API keys for the generic ``POST /v1/events`` endpoint, per tenant.
    api_keys: dict[str, list[SecretStr]] = Field(
        default_factory=lambda: {"default": [SecretStr("dev-api-key")]}
    )
    # REST base URL per source (self-hosted GitLab, Bitbucket DC, Gerrit, ...).
    api_urls: dict[str, str] = Field(
        default_factory=lambda: {
            "github": "https://api.github.com",
            "gitlab": "https://gitlab.com",
            "bitbucket-cloud": "https://api.bitbucket.org",
        }
    )
    api_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # Deliveries whose source timestamp is older than this are refused (0: off).
    replay_window_s: float = 3600.0
    # A delivery id seen within this long is a redelivery and is dropped.
    dedupe_ttl_s: float = 86400.0
    max_body_bytes: int = 25 * 2**20
    fetch_timeout_s: float = 10.0

    def secrets_for(self, tenant: str, source: str) -> list[bytes]:
        """The active webhook secrets of one tenant's source (at most two are used)."""
        found = self.webhook_secrets.get(f"{tenant}/{source}", [])
        return [s.get_secret_value().encode() for s in found[:2] if s.get_secret_value()]

    def token_for(self, tenant: str, source: str) -> str:
        token = self.api_tokens.get(f"{tenant}/{source}")
        return token.get_secret_value() if token else ""


class PublishSettings(_Section):
    """Posting findings back to the SCMs as review comments (the ``publish`` worker).

    ``modes`` maps a scope to "live" (post) or "dry-run" (log and count only):
    ``"tenant/repo"`` beats ``"tenant"`` beats ``"*"``. The default is dry-run
    everywhere, so a new install never comments on anyone's pull request
    until a team turns it on, e.g.
    ``CODEREVIEW_PUBLISH__MODES='{"*": "dry-run", "acme": "live"}'``.
    API URLs and tokens are the sources' own (``CODEREVIEW_SOURCE__API_URLS``,
    ``..._API_TOKENS``); ``api_urls`` here overrides one when comments must go
    elsewhere (a bot proxy).

    ``check_policies`` maps a scope to "FAIL_ON/NEUTRAL_ON" severities for
    the GitHub check run's conclusion ("HIGH/LOW": a HIGH or CRITICAL finding
    fails the check, a LOW or MEDIUM one makes it neutral); "/" never fails.
    """

    enabled: bool = True
    modes: dict[str, str] = Field(default_factory=lambda: {"*": "dry-run"})
    api_urls: dict[str, str] = Field(default_factory=dict)
    check_policies: dict[str, str] = Field(default_factory=lambda: {"*": "HIGH/LOW"})
    # Findings are gathered this long (or this many) so one PR's become one review.
    batch_size: int = 200
    batch_within_s: float = 1.0
    # PRs of one batch posted concurrently.
    concurrency: int = 8
    # A failed post is tried this many times (backoff between), then dead-lettered.
    max_attempts: int = 4
    retry_base_s: float = 0.5
    retry_max_s: float = 10.0
    timeout_s: float = 10.0
    # What was posted on a PR is forgotten this long after its last change.
    state_ttl_days: float = 90.0

    @field_validator("modes")
    @classmethod
    def _known_modes(cls, value: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in value.items() if v not in ("live", "dry-run")}
        if bad:
            raise ValueError(f"publish modes must be 'live' or 'dry-run', got {bad}")
        return value

    @field_validator("check_policies")
    @classmethod
    def _known_severities(cls, value: dict[str, str]) -> dict[str, str]:
        allowed = {"", "INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
        for scope, policy in value.items():
            parts = {p.strip().upper() for p in policy.partition("/")[::2]}
            if "/" not in policy or parts - allowed:
                raise ValueError(
                    f"check policy of {scope!r} must be 'FAIL_ON/NEUTRAL_ON', got {policy!r}"
                )
        return value

    def mode_for(self, tenant: str, repo: str) -> str:
        """ "live" or "dry-run" for one repo: the most specific scope that is set."""
        for scope in (f"{tenant}/{repo}", tenant, "*"):
            if scope in self.modes:
                return self.modes[scope]
        return "dry-run"

    def policy_for(self, tenant: str, repo: str) -> tuple[str, str]:
        """(fail_on, neutral_on) severities of one repo's check run; "" means never."""
        for scope in (f"{tenant}/{repo}", tenant, "*"):
            if scope in self.check_policies:
                fail_on, _, neutral_on = self.check_policies[scope].partition("/")
                return fail_on.strip().upper(), neutral_on.strip().upper()
        return "HIGH", "LOW"


class WorkerSettings(_Section):
    """Faust worker process knobs."""

    app_id: str = "codereview"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    data_dir: Path = Path(".stack/faust")
    log_level: str = "info"


class Settings(BaseSettings):
    """All configuration, one frozen object."""

    model_config = SettingsConfigDict(
        env_prefix="CODEREVIEW_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    stack: StackSettings = Field(default_factory=StackSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    schema_registry: SchemaRegistrySettings = Field(default_factory=SchemaRegistrySettings)
    milvus: MilvusSettings = Field(default_factory=MilvusSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that rebuilds ``settings`` in a child process.

    ``codereview up`` starts workers as processes; handing them this
    environment guarantees they run with exactly the parent's configuration.
    Mappings and lists travel as JSON, which pydantic-settings parses back.
    """
    env: dict[str, str] = {}
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        for field_name in type(section).model_fields:
            value = _plain(getattr(section, field_name))
            text = json.dumps(value) if isinstance(value, dict | list) else str(value)
            env[f"CODEREVIEW_{section_name.upper()}__{field_name.upper()}"] = text
    return env


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
