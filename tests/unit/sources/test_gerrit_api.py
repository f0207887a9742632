"""``GerritApi`` against a local server answering like Gerrit's REST API.

Shapes from the Changes REST API: every JSON answer starts with the
``)]}'`` guard line; "List Files" (``GET /changes/{id}/revisions/{rev}/files/``)
maps paths to FileInfo (with the magic ``/COMMIT_MSG``); "Get Patch"
(``.../patch``) is ``git format-patch`` text encoded in base64; "Get Content"
(``.../files/{file-id}/content``) is base64 too. Authenticated calls live
under ``/a/``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from processors.diff import parse_diff
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.gerrit_api import GerritApi
from sources.scm_api import build_scm_api, split_truncation_marker
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "gerrit"
PATCH = (DATA / "get-patch.rest-api-changes.patch").read_bytes()
FILE_LIST = (DATA / "list-files.rest-api-changes.json").read_bytes()
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
FILES = {"src/app.py": b"import os\nprint(os.getcwd())\n", "src/new.py": b"VALUE = 1\n"}
REF = PullRequestRef(
    "t",
    "platform/app",
    4242,
    "synchronize",
    HEAD,
    "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
    "",
    "dev",
    "https://review.example.com/changes/platform%2Fapp~4242",
)


@contextlib.asynccontextmanager
async def serve(seen: list[str]) -> AsyncIterator[str]:
    prefix = "/a/changes/{change}/revisions/{revision}"

    def check(request: web.Request) -> None:
        seen.append(f"{request.raw_path} auth={request.headers.get('Authorization')}")
        assert request.match_info["change"] == "platform/app~4242"
        assert request.match_info["revision"] == HEAD

    async def files(request: web.Request) -> web.StreamResponse:
        check(request)
        return web.Response(body=FILE_LIST, content_type="application/json")

    async def patch(request: web.Request) -> web.StreamResponse:
        check(request)
        return web.Response(body=base64.b64encode(PATCH), content_type="text/plain")

    async def content(request: web.Request) -> web.StreamResponse:
        check(request)
        body = FILES.get(request.match_info["path"])
        if body is None:
            return web.Response(status=404, text="Not found: " + request.match_info["path"])
        return web.Response(body=base64.b64encode(body), content_type="text/plain")

    app = web.Application()
    app.router.add_get(prefix + "/files/", files)
    app.router.add_get(prefix + "/patch", patch)
    app.router.add_get(prefix + "/files/{path}/content", content)
    async with serve_app(app) as url:
        yield url


def test_fetch_event_material_decodes_the_patch_and_contents() -> None:
    async def run() -> None:
        seen: list[str] = []
        async with serve(seen) as url:
            api = build_scm_api("gerrit", base_url=url, token="dev:http-pass")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        assert diff.startswith("diff --git a/src/app.py b/src/app.py\n")
        assert "Subject:" not in diff and "2.43.0" not in diff
        assert [(f.path, f.status, f.is_binary) for f in parse_diff(diff)] == [
            ("src/app.py", "modified", False),
            ("src/new.py", "added", False),
            ("old.py", "deleted", False),
            ("logo.png", "modified", True),
        ]
        assert snapshots == [FileSnapshot(p, b.decode()) for p, b in FILES.items()]
        basic = "Basic " + base64.b64encode(b"dev:http-pass").decode()
        assert seen[0] == f"/a/changes/platform%2Fapp~4242/revisions/{HEAD}/files/ auth={basic}"
        assert any("/files/src%2Fapp.py/content" in line for line in seen)

    asyncio.run(run())


def test_large_patch_is_cut_between_files_with_a_marker() -> None:
    async def run() -> None:
        async with serve([]) as url:
            api = GerritApi(url + "/a", "", max_diff_bytes=200)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 3
        assert [f.path for f in parse_diff(plain)] == ["src/app.py"]
        assert snapshots == [FileSnapshot("src/app.py", FILES["src/app.py"].decode())]

    asyncio.run(run())
