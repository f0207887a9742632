"""Pure processors: functions from records to records.

Nothing here does I/O, reads settings, or looks at a clock or a random
source; callers pass ``now_ms`` and ids in, so every function can be tested
with literal data and replayed deterministically.
"""
