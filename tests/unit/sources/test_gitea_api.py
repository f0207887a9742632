"""``GiteaApi`` against a local server answering like Gitea's ``/api/v1``.

The diff fixture follows the swagger operation ``repoDownloadPullDiffOrPatch``
(``GET /repos/{owner}/{repo}/pulls/{index}.diff``, plain git diff); raw files
follow ``repoGetRawFile`` (``GET /repos/{owner}/{repo}/raw/{filepath}?ref=``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from processors.diff import parse_diff
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.gitea_api import GiteaApi
from sources.github_api import SourceFetchError
from sources.scm_api import build_scm_api, split_truncation_marker
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "gitea"
DIFF = (DATA / "repoDownloadPullDiffOrPatch.api-v1-swagger.diff").read_text()
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
APP = b"import os\nprint(os.getcwd())\n"
REF = PullRequestRef("t", "acme/app", 7, "opened", HEAD, "b" * 40, "Title", "dev", "")


@contextlib.asynccontextmanager
async def serve(files: dict[str, bytes], seen: list[str]) -> AsyncIterator[str]:
    async def diff(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.path} auth={request.headers.get('Authorization')}")
        if request.match_info["index"] != "7.diff":
            return web.json_response({"message": "not found"}, status=404)
        return web.Response(text=DIFF, content_type="text/plain")

    async def raw(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        body = files.get(request.match_info["path"]) if request.query["ref"] == HEAD else None
        if body is None:
            return web.json_response({"message": "not found"}, status=404)
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/api/v1/repos/{owner}/{repo}/pulls/{index}", diff)
    app.router.add_get("/api/v1/repos/{owner}/{repo}/raw/{path:.+}", raw)
    async with serve_app(app) as url:
        yield url


NEW_FILE_CASES = [
    ("text", b"VALUE = 1\n", "VALUE = 1\n"),
    ("missing", None, None),
    ("binary", b"\x89PNG\0\0", None),
    ("too large", b"x" * 1_100_000, None),
]


@pytest.mark.parametrize(
    ("body", "expected"), [c[1:] for c in NEW_FILE_CASES], ids=[c[0] for c in NEW_FILE_CASES]
)
@pytest.mark.parametrize("source", ["gitea", "forgejo"])
def test_fetch_event_material(source: str, body: bytes | None, expected: str | None) -> None:
    async def run() -> None:
        files = {"src/app.py": APP}
        if body is not None:
            files["src/new.py"] = body
        seen: list[str] = []
        async with serve(files, seen) as url:
            api = build_scm_api(source, base_url=url, token="s3cret")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        assert [(f.path, f.status, f.is_binary) for f in parse_diff(diff)] == [
            ("src/app.py", "modified", False),
            ("src/new.py", "added", False),
            ("old.py", "deleted", False),
            ("logo.png", "modified", True),
            ("docs/b.md", "renamed", False),
        ]
        assert diff == DIFF
        assert snapshots == [
            FileSnapshot("src/app.py", APP.decode()),
            FileSnapshot("src/new.py", expected),
        ]
        assert seen[0] == "/api/v1/repos/acme/app/pulls/7.diff auth=token s3cret"

    asyncio.run(run())


def test_large_diff_keeps_whole_files_and_says_how_many_were_cut() -> None:
    async def run() -> None:
        async with serve({"src/app.py": APP}, []) as url:
            api = GiteaApi(url, "", max_diff_bytes=200)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert diff.endswith("# codereview: diff truncated: 4 files omitted\n")
        assert omitted == 4
        assert [f.path for f in parse_diff(plain)] == ["src/app.py"]
        assert snapshots == [FileSnapshot("src/app.py", APP.decode())]

    asyncio.run(run())


def test_unknown_pull_request_is_a_non_retryable_error() -> None:
    async def run() -> None:
        async with serve({}, []) as url:
            api = GiteaApi(url, "")
            with pytest.raises(SourceFetchError) as caught:
                await api.fetch_event_material(
                    PullRequestRef("t", "acme/app", 8, "opened", HEAD, "", "", "", "")
                )
            await api.close()
        assert caught.value.status == 404 and not caught.value.retryable

    asyncio.run(run())


@pytest.mark.parametrize(
    ("source", "expected"),
    [("github", "GitHubApi"), ("forgejo", "GiteaApi"), ("gitlab", "GitLabApi")],
)
def test_registry_builds_the_client_for_a_source(source: str, expected: str) -> None:
    api = build_scm_api(source, base_url="http://127.0.0.1:9", token="")
    assert type(api).__name__ == expected
    asyncio.run(api.close())


def test_registry_rejects_an_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown SCM source 'svn'"):
        build_scm_api("svn", base_url="http://127.0.0.1:9", token="")
