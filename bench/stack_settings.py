"""The settings every benchmark runs the platform with: all state in one temp dir."""

from __future__ import annotations

import uuid
from pathlib import Path

from codereview.settings import (
    ClickHouseSettings,
    SchemaRegistrySettings,
    Settings,
    SourceSettings,
    StackSettings,
    WorkerSettings,
)


def bench_settings(root: Path, *, api_url: str, secret: bytes, name: str) -> Settings:
    return Settings(
        stack=StackSettings(state_dir=root / "stack"),
        schema_registry=SchemaRegistrySettings(local_path=root / "registry.json"),
        clickhouse=ClickHouseSettings(chdb_path=root / "chdb"),
        source=SourceSettings(
            api_urls={"github": api_url},
            webhook_secrets={"default/github": [secret.decode()]},
        ),
        worker=WorkerSettings(
            app_id=f"{name}-{uuid.uuid4().hex[:6]}", data_dir=root / "faust", log_level="warning"
        ),
    )
