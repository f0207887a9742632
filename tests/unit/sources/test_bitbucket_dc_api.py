"""``BitbucketDcApi`` against a local server answering like Bitbucket DC REST 1.0.

The diff follows ``streamRawDiff`` (``GET .../pull-requests/{id}.diff``, a
plain git diff); files follow ``getRaw``/``streamRaw``
(``GET .../raw/{path}?at={commit}``), whose 404 body is Bitbucket's
``{"errors": [...]}``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from processors.diff import parse_diff
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.bitbucket_dc_api import BitbucketDcApi
from sources.scm_api import build_scm_api, split_truncation_marker
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "bitbucket_dc"
DIFF = (DATA / "streamRawDiff.rest-api-1.0-pull-requests.diff").read_text()
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
FILES = {"src/app.py": b"import os\nprint(os.getcwd())\n", "src/new.py": b"VALUE = 1\n"}
# The normalizer may leave api_url relative to the server: the client ignores it.
REF = PullRequestRef(
    "t",
    "PRJ/app",
    7,
    "opened",
    HEAD,
    "b" * 40,
    "",
    "dev",
    "/rest/api/1.0/projects/PRJ/repos/app/pull-requests/7",
)


def _not_found(message: str) -> web.Response:
    body = {"errors": [{"context": None, "message": message, "exceptionName": None}]}
    return web.json_response(body, status=404)


@contextlib.asynccontextmanager
async def serve(seen: list[str]) -> AsyncIterator[str]:
    prefix = "/bitbucket/rest/api/1.0/projects/{project}/repos/{repo}"

    async def diff(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.path} auth={request.headers.get('Authorization')}")
        return web.Response(text=DIFF, content_type="text/plain")

    async def raw(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        body = FILES.get(request.match_info["path"]) if request.query["at"] == HEAD else None
        return _not_found("no such path") if body is None else web.Response(body=body)

    app = web.Application()
    app.router.add_get(prefix + "/pull-requests/7.diff", diff)
    app.router.add_get(prefix + "/raw/{path:.+}", raw)
    async with serve_app(app, "/bitbucket") as url:
        yield url


def test_fetch_event_material_with_a_context_path() -> None:
    async def run() -> None:
        seen: list[str] = []
        async with serve(seen) as url:
            api = build_scm_api("bitbucket-dc", base_url=url, token="tok")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        assert diff == DIFF
        assert [f.path for f in parse_diff(diff)] == [
            "src/app.py",
            "src/new.py",
            "old.py",
            "logo.png",
            "docs/b.md",
        ]
        assert snapshots == [FileSnapshot(p, b.decode()) for p, b in FILES.items()]
        assert seen[0] == (
            "/bitbucket/rest/api/1.0/projects/PRJ/repos/app/pull-requests/7.diff auth=Bearer tok"
        )
        assert f"/bitbucket/rest/api/1.0/projects/PRJ/repos/app/raw/src/app.py?at={HEAD}" in seen

    asyncio.run(run())


def test_large_diff_is_cut_between_files_with_a_marker() -> None:
    async def run() -> None:
        async with serve([]) as url:
            api = BitbucketDcApi(url, "", max_diff_bytes=330)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 3
        assert [f.path for f in parse_diff(plain)] == ["src/app.py", "src/new.py"]
        assert [s.path for s in snapshots] == ["src/app.py", "src/new.py"]

    asyncio.run(run())
