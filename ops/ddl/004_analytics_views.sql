-- 004: the analysts' views: precision per rule and week, cost per team and
-- day, stage latency, cache hit rate, confidence calibration, prompt
-- variants, suppressions.
--
-- Same conventions as 001: `{db}` is the configured database, statements end
-- with semicolons, comment lines start with two dashes, never edited after
-- release. Plain ClickHouse SQL: runs on chdb and on a server.
--
-- Shape: a materialized view folds each inserted block into a small
-- Aggregating/SummingMergeTree target (one row per day or week and key), so
-- the v_* views read thousands of rows, not millions. The v_* views are plain
-- views that merge those states into finished numbers; their names and
-- columns are a contract with the HTML report.
--
-- Replays: an MV aggregates at insert time, so a replayed batch is folded in
-- twice. Counts of identities therefore use uniq state (findings by
-- fingerprint, PRs by event_id; a replay changes nothing, exact for small
-- groups, within ~1% for large ones) and the latest verdict per finding is an
-- argMax state (idempotent). Sums (tokens, cost, runs) count a replayed batch
-- again; the 001 stage_latency view over FINAL stays the exact reference.
--
-- Backfill: an MV only sees rows inserted after it exists, so every target is
-- filled from its source table right after its MV is created (this file runs
-- once per database, recorded in schema_migrations). Rows inserted by another
-- writer between the two statements would count twice; migrate before the
-- store worker starts writing.

-- Findings held back by learned confidence; the lead's suppression stage
-- writes them. Identity is the finding, a later decision replaces an earlier.
CREATE TABLE IF NOT EXISTS {db}.suppressions
(
    fingerprint     String,
    event_id        String,
    tenant          LowCardinality(String),
    repo            String,
    pr_number       Int64,
    rule_id         LowCardinality(String),
    category        LowCardinality(String),
    severity        LowCardinality(String),
    confidence      Float64,
    threshold       Float64,
    reason          String,
    at_ms           Int64,
    at              DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree(at_ms)
ORDER BY (tenant, repo, fingerprint);

-- Findings per rule, tenant, repo and week (Monday, UTC) of creation.
CREATE TABLE IF NOT EXISTS {db}.agg_findings_weekly
(
    rule_id     LowCardinality(String),
    tenant      LowCardinality(String),
    repo        String,
    week        Date,
    findings    AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (rule_id, tenant, repo, week);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_findings_weekly TO {db}.agg_findings_weekly AS
SELECT
    rule_id,
    tenant,
    repo,
    toMonday(toDateTime(intDiv(created_at_ms, 1000), 'UTC')) AS week,
    uniqState(f.fingerprint) AS findings
FROM {db}.findings AS f
GROUP BY rule_id, tenant, repo, week;

INSERT INTO {db}.agg_findings_weekly
SELECT
    rule_id,
    tenant,
    repo,
    toMonday(toDateTime(intDiv(created_at_ms, 1000), 'UTC')) AS week,
    uniqState(f.fingerprint) AS findings
FROM {db}.findings AS f
GROUP BY rule_id, tenant, repo, week;

-- Findings per prompt variant ('' where a finding had no model or prompt).
CREATE TABLE IF NOT EXISTS {db}.agg_findings_by_variant
(
    prompt_version  LowCardinality(String),
    model           LowCardinality(String),
    findings        AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (prompt_version, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_findings_by_variant TO {db}.agg_findings_by_variant AS
SELECT
    ifNull(f.prompt_version, '') AS prompt_version,
    ifNull(f.model, '') AS model,
    uniqState(f.fingerprint) AS findings
FROM {db}.findings AS f
GROUP BY prompt_version, model;

INSERT INTO {db}.agg_findings_by_variant
SELECT
    ifNull(f.prompt_version, '') AS prompt_version,
    ifNull(f.model, '') AS model,
    uniqState(f.fingerprint) AS findings
FROM {db}.findings AS f
GROUP BY prompt_version, model;

-- The latest decisive verdict (ACCEPTED or REJECTED) per finding; IGNORED
-- does not overturn a decision. rule_id is what the feedback carried ('' for
-- SCM signals that do not know the rule).
CREATE TABLE IF NOT EXISTS {db}.agg_feedback_verdicts
(
    fingerprint String,
    verdict     AggregateFunction(argMax, String, Int64),
    rule_id     AggregateFunction(argMax, String, Int64),
    last_at_ms  SimpleAggregateFunction(max, Int64)
)
ENGINE = AggregatingMergeTree
ORDER BY fingerprint;

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_feedback_verdicts TO {db}.agg_feedback_verdicts AS
SELECT
    fingerprint,
    argMaxState(toString(fb.verdict), fb.at_ms) AS verdict,
    argMaxState(toString(fb.rule_id), fb.at_ms) AS rule_id,
    max(fb.at_ms) AS last_at_ms
FROM {db}.feedback AS fb
WHERE fb.verdict IN ('ACCEPTED', 'REJECTED')
GROUP BY fingerprint;

INSERT INTO {db}.agg_feedback_verdicts
SELECT
    fingerprint,
    argMaxState(toString(fb.verdict), fb.at_ms) AS verdict,
    argMaxState(toString(fb.rule_id), fb.at_ms) AS rule_id,
    max(fb.at_ms) AS last_at_ms
FROM {db}.feedback AS fb
WHERE fb.verdict IN ('ACCEPTED', 'REJECTED')
GROUP BY fingerprint;

-- LLM calls per day (UTC), tenant and model.
CREATE TABLE IF NOT EXISTS {db}.agg_llm_usage_daily
(
    day             Date,
    tenant          LowCardinality(String),
    model           LowCardinality(String),
    calls           SimpleAggregateFunction(sum, UInt64),
    cache_hits      SimpleAggregateFunction(sum, UInt64),
    input_tokens    SimpleAggregateFunction(sum, Int64),
    output_tokens   SimpleAggregateFunction(sum, Int64),
    cost_usd        SimpleAggregateFunction(sum, Float64),
    prs             AggregateFunction(uniq, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (day, tenant, model);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_llm_usage_daily TO {db}.agg_llm_usage_daily AS
SELECT
    toDate(toDateTime(intDiv(u.at_ms, 1000), 'UTC')) AS day,
    u.tenant AS tenant,
    toString(u.model) AS model,
    toUInt64(count()) AS calls,
    toUInt64(countIf(u.cache_hit)) AS cache_hits,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.cost_usd) AS cost_usd,
    uniqState(u.event_id) AS prs
FROM {db}.llm_usage AS u
GROUP BY day, tenant, model;

INSERT INTO {db}.agg_llm_usage_daily
SELECT
    toDate(toDateTime(intDiv(u.at_ms, 1000), 'UTC')) AS day,
    u.tenant AS tenant,
    toString(u.model) AS model,
    toUInt64(count()) AS calls,
    toUInt64(countIf(u.cache_hit)) AS cache_hits,
    sum(u.input_tokens) AS input_tokens,
    sum(u.output_tokens) AS output_tokens,
    sum(u.cost_usd) AS cost_usd,
    uniqState(u.event_id) AS prs
FROM {db}.llm_usage AS u
GROUP BY day, tenant, model;

-- Stage durations per stage and day (UTC) as quantile states.
CREATE TABLE IF NOT EXISTS {db}.agg_stage_latency_daily
(
    stage           LowCardinality(String),
    day             Date,
    runs            SimpleAggregateFunction(sum, UInt64),
    duration        AggregateFunction(quantiles(0.5, 0.95), Float64),
    since_received  AggregateFunction(quantiles(0.5, 0.95), Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (stage, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.mv_stage_latency_daily TO {db}.agg_stage_latency_daily AS
SELECT
    m.stage AS stage,
    toDate(toDateTime(intDiv(m.at_ms, 1000), 'UTC')) AS day,
    toUInt64(count()) AS runs,
    quantilesState(0.5, 0.95)(m.duration_ms) AS duration,
    quantilesState(0.5, 0.95)(m.since_received_ms) AS since_received
FROM {db}.stage_metrics AS m
GROUP BY stage, day;

INSERT INTO {db}.agg_stage_latency_daily
SELECT
    m.stage AS stage,
    toDate(toDateTime(intDiv(m.at_ms, 1000), 'UTC')) AS day,
    toUInt64(count()) AS runs,
    quantilesState(0.5, 0.95)(m.duration_ms) AS duration,
    quantilesState(0.5, 0.95)(m.since_received_ms) AS since_received
FROM {db}.stage_metrics AS m
GROUP BY stage, day;

-- Every finding that has a decisive verdict, with what the views group by.
-- The rule is the feedback's when it names one, else the finding's. Built
-- for speed at 1M findings: only findings with a verdict are read (an IN set
-- of fingerprints, no FINAL), and ANY JOIN keeps one version per finding, so
-- an unmerged replay of a finding is not counted twice.
CREATE VIEW IF NOT EXISTS {db}.v_finding_outcomes AS
SELECT
    v.fingerprint AS fingerprint,
    if(v.rule_id != '', v.rule_id, toString(f.rule_id)) AS rule_id,
    f.tenant AS tenant,
    f.repo AS repo,
    toMonday(toDateTime(intDiv(f.created_at_ms, 1000), 'UTC')) AS week,
    f.confidence AS confidence,
    ifNull(f.prompt_version, '') AS prompt_version,
    ifNull(f.model, '') AS model,
    v.verdict AS verdict
FROM
(
    SELECT a.fingerprint AS fingerprint, argMaxMerge(a.verdict) AS verdict,
           argMaxMerge(a.rule_id) AS rule_id
    FROM {db}.agg_feedback_verdicts AS a
    GROUP BY fingerprint
) AS v
ANY INNER JOIN
(
    SELECT fingerprint, rule_id, tenant, repo, created_at_ms, confidence, prompt_version, model
    FROM {db}.findings
    WHERE fingerprint IN (SELECT fingerprint FROM {db}.agg_feedback_verdicts)
) AS f ON v.fingerprint = f.fingerprint;

CREATE VIEW IF NOT EXISTS {db}.v_precision_by_rule_week AS
SELECT
    w.rule_id AS rule_id,
    w.tenant AS tenant,
    w.repo AS repo,
    w.week AS week,
    w.findings AS findings,
    o.accepted AS accepted,
    o.rejected AS rejected,
    if(o.accepted + o.rejected = 0, NULL, o.accepted / (o.accepted + o.rejected)) AS precision
FROM
(
    SELECT toString(a.rule_id) AS rule_id, toString(a.tenant) AS tenant, a.repo AS repo,
           a.week AS week, uniqMerge(a.findings) AS findings
    FROM {db}.agg_findings_weekly AS a
    GROUP BY rule_id, tenant, repo, week
) AS w
LEFT JOIN
(
    SELECT x.rule_id AS rule_id, toString(x.tenant) AS tenant, x.repo AS repo, x.week AS week,
           toUInt64(countIf(x.verdict = 'ACCEPTED')) AS accepted,
           toUInt64(countIf(x.verdict = 'REJECTED')) AS rejected
    FROM {db}.v_finding_outcomes AS x
    GROUP BY rule_id, tenant, repo, week
) AS o ON w.rule_id = o.rule_id AND w.tenant = o.tenant AND w.repo = o.repo AND w.week = o.week;

CREATE VIEW IF NOT EXISTS {db}.v_cost_by_team_day AS
SELECT
    toString(a.tenant) AS tenant,
    a.day AS day,
    sum(a.calls) AS calls,
    sum(a.cache_hits) AS cache_hits,
    sum(a.input_tokens) AS input_tokens,
    sum(a.output_tokens) AS output_tokens,
    sum(a.cost_usd) AS cost_usd,
    uniqMerge(a.prs) AS prs
FROM {db}.agg_llm_usage_daily AS a
GROUP BY tenant, day;

CREATE VIEW IF NOT EXISTS {db}.v_stage_latency AS
SELECT
    toString(a.stage) AS stage,
    a.day AS day,
    sum(a.runs) AS runs,
    quantilesMerge(0.5, 0.95)(a.duration)[1] AS p50_ms,
    quantilesMerge(0.5, 0.95)(a.duration)[2] AS p95_ms,
    quantilesMerge(0.5, 0.95)(a.since_received)[1] AS p50_since_received_ms,
    quantilesMerge(0.5, 0.95)(a.since_received)[2] AS p95_since_received_ms
FROM {db}.agg_stage_latency_daily AS a
GROUP BY stage, day;

CREATE VIEW IF NOT EXISTS {db}.v_cache_hit_rate AS
SELECT
    a.day AS day,
    toString(a.model) AS model,
    sum(a.calls) AS calls,
    sum(a.cache_hits) AS hits,
    if(calls = 0, NULL, hits / calls) AS hit_rate
FROM {db}.agg_llm_usage_daily AS a
GROUP BY day, model;

-- Confidence buckets [0.0, 0.1), ..., [0.9, 1.0]: a calibrated reviewer's
-- acceptance tracks mean_confidence.
CREATE VIEW IF NOT EXISTS {db}.v_calibration AS
SELECT
    round(least(floor(o.confidence * 10), 9) / 10, 1) AS bucket,
    count() AS findings_with_feedback,
    countIf(o.verdict = 'ACCEPTED') AS accepted,
    accepted / findings_with_feedback AS acceptance,
    avg(o.confidence) AS mean_confidence
FROM {db}.v_finding_outcomes AS o
GROUP BY bucket;

CREATE VIEW IF NOT EXISTS {db}.v_prompt_variants AS
SELECT
    w.prompt_version AS prompt_version,
    w.model AS model,
    w.findings AS findings,
    o.accepted AS accepted,
    o.rejected AS rejected,
    if(o.accepted + o.rejected = 0, NULL, o.accepted / (o.accepted + o.rejected)) AS precision
FROM
(
    SELECT toString(a.prompt_version) AS prompt_version, toString(a.model) AS model,
           uniqMerge(a.findings) AS findings
    FROM {db}.agg_findings_by_variant AS a
    GROUP BY prompt_version, model
) AS w
LEFT JOIN
(
    SELECT x.prompt_version AS prompt_version, x.model AS model,
           toUInt64(countIf(x.verdict = 'ACCEPTED')) AS accepted,
           toUInt64(countIf(x.verdict = 'REJECTED')) AS rejected
    FROM {db}.v_finding_outcomes AS x
    GROUP BY prompt_version, model
) AS o ON w.prompt_version = o.prompt_version AND w.model = o.model;

CREATE VIEW IF NOT EXISTS {db}.v_suppressions AS
SELECT
    toString(s.tenant) AS tenant,
    s.repo AS repo,
    toString(s.rule_id) AS rule_id,
    s.reason AS reason,
    count() AS suppressed,
    max(s.at) AS last_at
FROM {db}.suppressions AS s FINAL
GROUP BY tenant, repo, rule_id, reason;
