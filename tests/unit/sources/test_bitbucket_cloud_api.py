"""``BitbucketCloudApi`` against a local server answering like Bitbucket Cloud 2.0.

Shapes from the REST API 2.0 reference: ``GET .../pullrequests/{id}/diff``
answers 302 to the repository ``/diff/{spec}`` resource (plain git diff);
``GET .../commit/{commit}`` returns a commit object whose ``hash`` is full;
``GET .../src/{commit}/{path}`` returns the raw file. Webhooks carry 12-digit
hashes, so the client must expand one before reading files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from processors.diff import parse_diff
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.scm_api import build_scm_api
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "bitbucket_cloud"
DIFF = (DATA / "pullrequests-pull_request_id-diff.api-2.0.diff").read_text()
COMMIT = json.loads((DATA / "commit-get.api-2.0.json").read_text())
FULL = COMMIT["hash"]
SHORT = FULL[:12]
FILES = {"src/app.py": b"import os\nprint(os.getcwd())\n", "src/new.py": b"VALUE = 1\n"}
REF = PullRequestRef(
    "t",
    "acme/app",
    7,
    "opened",
    SHORT,
    "0a1b2c3d4e5f",
    "",
    "dev",
    "https://api.bitbucket.org/2.0/repositories/acme/app/pullrequests/7",
)


@contextlib.asynccontextmanager
async def serve(seen: list[str]) -> AsyncIterator[str]:
    prefix = "/2.0/repositories/{workspace}/{repo}"

    async def pull_diff(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.path} auth={request.headers.get('Authorization')}")
        raise web.HTTPFound(
            f"/2.0/repositories/acme/app/diff/acme/app:{SHORT}%0D0a1b2c3d4e5f"
            "?from_pullrequest_id=7&topic=true"
        )

    async def spec_diff(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.path} auth={request.headers.get('Authorization')}")
        return web.Response(text=DIFF, content_type="text/plain")

    async def commit(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if not FULL.startswith(request.match_info["commit"]):
            return web.json_response({"type": "error", "error": {"message": "?"}}, status=404)
        return web.json_response(COMMIT)

    async def src(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.match_info["commit"] != FULL:
            return web.json_response({"type": "error", "error": {"message": "?"}}, status=404)
        body = FILES.get(request.match_info["path"])
        if body is None:
            return web.json_response({"type": "error", "error": {"message": "?"}}, status=404)
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get(prefix + "/pullrequests/7/diff", pull_diff)
    app.router.add_get(prefix + "/diff/{spec:.+}", spec_diff)
    app.router.add_get(prefix + "/commit/{commit}", commit)
    app.router.add_get(prefix + "/src/{commit}/{path:.+}", src)
    async with serve_app(app) as url:
        yield url


def test_fetch_event_material_follows_the_redirect_and_expands_the_hash() -> None:
    async def run() -> None:
        seen: list[str] = []
        async with serve(seen) as url:
            api = build_scm_api("bitbucket-cloud", base_url=url, token="me:app-password")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        basic = "Basic " + base64.b64encode(b"me:app-password").decode()
        assert diff == DIFF
        assert [f.status for f in parse_diff(diff)] == [
            "modified",
            "added",
            "deleted",
            "modified",
            "renamed",
        ]
        assert snapshots == [FileSnapshot(p, b.decode()) for p, b in FILES.items()]
        assert seen[:3] == [
            f"/2.0/repositories/acme/app/pullrequests/7/diff auth={basic}",
            f"/2.0/repositories/acme/app/diff/acme/app:{SHORT}\r0a1b2c3d4e5f auth={basic}",
            f"/2.0/repositories/acme/app/commit/{SHORT}",
        ]

    asyncio.run(run())


def test_a_full_hash_is_used_as_is_and_a_bearer_token_sent() -> None:
    async def run() -> None:
        seen: list[str] = []
        ref = PullRequestRef("t", "acme/app", 7, "opened", FULL, "", "", "", "")
        async with serve(seen) as url:
            api = build_scm_api("bitbucket-cloud", base_url=url, token="access")
            _, snapshots = await api.fetch_event_material(ref)
            await api.close()
        assert not any("/commit/" in path for path in seen)
        assert seen[0].endswith("auth=Bearer access")
        assert [s.content for s in snapshots] == [b.decode() for b in FILES.values()]

    asyncio.run(run())
