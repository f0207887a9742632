-- LlmUsage.tier: which model tier answered, "cheap" (the triage question of
-- whether a borderline chunk deserves deep analysis) or "strong" (the review).
ALTER TABLE {db}.llm_usage ADD COLUMN IF NOT EXISTS tier LowCardinality(String) DEFAULT 'strong';
