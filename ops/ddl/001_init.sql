-- 001: the analytics schema of the code-review platform.
--
-- Applied once by sinks.clickhouse.ClickHouseSink.start(), recorded in
-- {db}.schema_migrations. `{db}` is replaced by the configured database name
-- (ClickHouseSettings.database); everything else is plain ClickHouse SQL that
-- runs unchanged on chdb and on a ClickHouse server. Statements are separated
-- by semicolons; comment lines start with two dashes. A migration is never
-- edited after release: add 002_*.sql instead.
--
-- Idempotent rows: every table is a ReplacingMergeTree whose ORDER BY is the
-- record's identity, so a replayed batch collapses to one row under FINAL.
-- No PARTITION BY on these tables: rows with one key in two partitions would
-- never be merged. Times are kept as the records' epoch-ms Int64 plus a
-- MATERIALIZED DateTime64 for analysts.

CREATE DATABASE IF NOT EXISTS {db};

CREATE TABLE IF NOT EXISTS {db}.pr_events
(
    event_id        String,
    tenant          LowCardinality(String),
    source          LowCardinality(String),
    repo            String,
    pr_number       Int64,
    action          LowCardinality(String),
    head_sha        String,
    base_sha        String,
    title           String,
    author          String,
    diff_bytes      UInt64,
    diff_lines      UInt32,
    files           UInt32,
    file_bytes      UInt64,
    received_at_ms  Int64,
    received_at     DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(received_at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, repo, pr_number, event_id);

CREATE TABLE IF NOT EXISTS {db}.findings
(
    fingerprint     String,
    event_id        String,
    tenant          LowCardinality(String),
    repo            String,
    pr_number       Int64,
    head_sha        String,
    path            String,
    start_line      Int32,
    end_line        Int32,
    rule_id         LowCardinality(String),
    category        LowCardinality(String),
    severity        LowCardinality(String),
    confidence      Float64,
    message         String,
    origin          LowCardinality(String),
    suggestion      Nullable(String),
    model           LowCardinality(Nullable(String)),
    prompt_version  LowCardinality(Nullable(String)),
    received_at_ms  Int64,
    created_at_ms   Int64,
    created_at      DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(created_at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at_ms)
ORDER BY (tenant, repo, fingerprint);

CREATE TABLE IF NOT EXISTS {db}.feedback
(
    event_id        String,
    fingerprint     String,
    tenant          LowCardinality(String),
    repo            String,
    pr_number       Int64,
    rule_id         LowCardinality(String),
    verdict         LowCardinality(String),
    signal          LowCardinality(String),
    actor           String,
    at_ms           Int64,
    at              DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree(at_ms)
ORDER BY (tenant, repo, event_id);

CREATE TABLE IF NOT EXISTS {db}.stage_metrics
(
    stage             LowCardinality(String),
    event_id          String,
    worker            String,
    at_ms             Int64,
    tenant            LowCardinality(String),
    repo              String,
    pr_number         Int64,
    duration_ms       Float64,
    since_received_ms Float64,
    items             Int64,
    ok                Bool,
    attrs             Map(String, String),
    at                DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (stage, event_id, worker, at_ms);

CREATE TABLE IF NOT EXISTS {db}.llm_usage
(
    call_id         String,
    event_id        String,
    tenant          LowCardinality(String),
    repo            String,
    pr_number       Int64,
    provider        LowCardinality(String),
    model           LowCardinality(String),
    prompt_version  LowCardinality(String),
    input_tokens    Int64,
    output_tokens   Int64,
    cost_usd        Float64,
    latency_ms      Float64,
    ok              Bool,
    cache_hit       Bool,
    error           Nullable(String),
    at_ms           Int64,
    at              DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree(at_ms)
ORDER BY (tenant, call_id);

CREATE TABLE IF NOT EXISTS {db}.dead_letters
(
    stage               LowCardinality(String),
    original_topic      String,
    original_partition  Int32,
    original_offset     Int64,
    attempt             Int32,
    at_ms               Int64,
    error_class         LowCardinality(String),
    error               String,
    original_key        Nullable(String),
    original_value      Nullable(String),
    headers             Map(String, String),
    at                  DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (stage, original_topic, original_partition, original_offset, attempt, at_ms);

-- p50/p95 latency per stage. A plain view over FINAL rather than a
-- materialized view: an MV aggregates at insert time and would count a
-- replayed batch twice.
CREATE VIEW IF NOT EXISTS {db}.stage_latency AS
SELECT
    stage,
    count() AS events,
    countIf(NOT ok) AS failures,
    quantiles(0.5, 0.95)(duration_ms)[1] AS p50_ms,
    quantiles(0.5, 0.95)(duration_ms)[2] AS p95_ms,
    quantiles(0.5, 0.95)(since_received_ms)[1] AS p50_since_received_ms,
    quantiles(0.5, 0.95)(since_received_ms)[2] AS p95_since_received_ms,
    max(at_ms) AS last_at_ms
FROM {db}.stage_metrics FINAL
GROUP BY stage;
