-- 002: review quality per evaluation run (`codereview eval`).
--
-- Same conventions as 001: `{db}` is the configured database, statements end
-- with semicolons, comment lines start with two dashes, never edited after
-- release.
--
-- One row per (run, system, lines, scope, key): `system` is who reported
-- (ours, ours+llm, bandit, ruff, semgrep, peers union), `lines` whether a
-- peer was scored on whole files ('file') or on lines within 3 of a change
-- ('diff'), `scope` what the row aggregates (overall, category, rule, case)
-- and `key` which one ('' for overall). Ratios are NULL where undefined (no
-- findings: no precision). A re-inserted run collapses under FINAL.

CREATE TABLE IF NOT EXISTS {db}.eval_results
(
    run_id          String,
    at_ms           Int64,
    system          LowCardinality(String),
    lines           LowCardinality(String),
    scope           LowCardinality(String),
    key             String,
    findings        UInt32,
    tp              UInt32,
    fp              UInt32,
    regions         UInt32,
    regions_found   UInt32,
    cases           UInt32,
    cases_found     UInt32,
    precision       Nullable(Float64),
    recall          Nullable(Float64),
    recall_cases    Nullable(Float64),
    f1              Nullable(Float64),
    ms_per_pr       Float64,
    cases_file      String,
    git_sha         String,
    at              DateTime64(3, 'UTC') MATERIALIZED fromUnixTimestamp64Milli(at_ms, 'UTC')
)
ENGINE = ReplacingMergeTree(at_ms)
ORDER BY (run_id, system, lines, scope, key);
