-- Finding.source: the SCM the PR lives on (github, gitlab, ...), so a publisher
-- knows where to post it and analysts can split precision by SCM.
ALTER TABLE {db}.findings ADD COLUMN IF NOT EXISTS source LowCardinality(String) DEFAULT '';
