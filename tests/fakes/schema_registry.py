"""A Confluent-compatible Schema Registry on 127.0.0.1, for the registry client.

It answers the REST calls the client makes, in the documented shape: register
a schema under a subject (the same schema text gets the same id, as in the
real registry) and fetch a schema by id (404 with error_code 40403 when the
id is unknown). It also checks basic auth when created with credentials.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeSchemaRegistry:
    def __init__(self, *, user: str = "", password: str = "") -> None:
        self.schemas: list[str] = []
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[tuple[str, str]] = []
        self._auth = (
            "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() if user else None
        )

    def __enter__(self) -> FakeSchemaRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorized(self) -> bool:
                if registry._auth and self.headers.get("Authorization") != registry._auth:
                    self._answer(401, {"error_code": 40101, "message": "Unauthorized"})
                    return False
                return True

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                registry.requests.append(("POST", self.path))
                if not self._authorized():
                    return
                parts = self.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                    self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
                    return
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                schema = body["schema"]
                if schema not in registry.schemas:
                    registry.schemas.append(schema)
                schema_id = registry.schemas.index(schema) + 1
                registry.subjects.setdefault(parts[1], []).append(schema_id)
                self._answer(200, {"id": schema_id})

            def do_GET(self) -> None:  # noqa: N802
                registry.requests.append(("GET", self.path))
                if not self._authorized():
                    return
                parts = self.path.split("?")[0].strip("/").split("/")
                if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and parts[2].isdigit():
                    index = int(parts[2]) - 1
                    if 0 <= index < len(registry.schemas):
                        self._answer(200, {"schema": registry.schemas[index]})
                        return
                    self._answer(404, {"error_code": 40403, "message": "Schema not found"})
                    return
                self._answer(404, {"error_code": 404, "message": "HTTP 404 Not Found"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
