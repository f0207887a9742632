"""``AzureDevOpsApi`` against a local server answering like Azure Repos (Git REST 7.1).

Shapes from the Pull Request Iterations "List" (``{"value": [...], "count"}``
with ``sourceRefCommit``/``commonRefCommit``), Pull Request Iteration Changes
"Get" (``changeEntries`` paged by ``$top``/``$skip`` with ``nextSkip`` and
``nextTop``, zero on the last page) and Items "Get" (raw bytes with
``$format=octetStream``). Azure has no diff endpoint: the client builds it.
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
from sources.azure_devops_api import AzureDevOpsApi
from sources.scm_api import build_scm_api, split_truncation_marker
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "azure_devops"
ITERATIONS = (DATA / "pull-request-iterations-list.git-rest-7.1.json").read_bytes()
CHANGES = [
    (DATA / f"pull-request-iteration-changes-get.git-rest-7.1.page{n}.json").read_bytes()
    for n in (1, 2)
]
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
MERGE_BASE = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
ITEMS = {
    ("/src/app.py", MERGE_BASE): b"import os\nprint(os.sep)\n",
    ("/src/app.py", HEAD): b"import os\nprint(os.getcwd())\n",
    ("/src/new.py", HEAD): b"VALUE = 1",
    ("/old.py", MERGE_BASE): b"gone = True\n",
    ("/logo.png", MERGE_BASE): b"\x89PNG\r\n\x1a\n\0\0old",
    ("/logo.png", HEAD): b"\x89PNG\r\n\x1a\n\0\0new",
    ("/docs/a.md", MERGE_BASE): b"# Docs\n",
    ("/docs/b.md", HEAD): b"# Docs\n",
}
REF = PullRequestRef(
    "t",
    "Fabrikam/app",
    11,
    "synchronize",
    HEAD,
    "4" * 40,
    "",
    "dev@example.com",
    "https://dev.azure.com/org/_apis/git/repositories/r/pullRequests/11",
)


@contextlib.asynccontextmanager
async def serve(seen: list[str]) -> AsyncIterator[str]:
    prefix = "/org/Fabrikam/_apis/git/repositories/app"

    async def iterations(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.path} auth={request.headers.get('Authorization')}")
        assert request.query["api-version"] == "7.1"
        return web.Response(body=ITERATIONS, content_type="application/json")

    async def changes(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        page = 0 if request.query["$skip"] == "0" else 1
        return web.Response(body=CHANGES[page], content_type="application/json")

    async def items(request: web.Request) -> web.StreamResponse:
        assert request.query["versionDescriptor.versionType"] == "commit"
        body = ITEMS.get((request.query["path"], request.query["versionDescriptor.version"]))
        if body is None:
            return web.json_response({"message": "TF401174: not found"}, status=404)
        return web.Response(body=body, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get(prefix + "/pullRequests/11/iterations", iterations)
    app.router.add_get(prefix + "/pullRequests/11/iterations/2/changes", changes)
    app.router.add_get(prefix + "/items", items)
    async with serve_app(app, "/org") as url:
        yield url


def test_fetch_event_material_builds_the_diff_from_both_sides() -> None:
    async def run() -> None:
        seen: list[str] = []
        async with serve(seen) as url:
            api = build_scm_api("azure-devops", base_url=url, token="pat")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        parsed = parse_diff(diff)
        assert [(f.path, f.old_path, f.status, f.is_binary) for f in parsed] == [
            ("src/app.py", "src/app.py", "modified", False),
            ("src/new.py", None, "added", False),
            ("old.py", "old.py", "deleted", False),
            ("logo.png", "logo.png", "modified", True),
            ("docs/b.md", "docs/a.md", "renamed", False),
        ]
        assert parsed[0].added_lines == [2] and parsed[0].removed_anchor_lines == [2]
        assert "+VALUE = 1\n\\ No newline at end of file\n" in diff
        assert snapshots == [
            FileSnapshot("src/app.py", "import os\nprint(os.getcwd())\n"),
            FileSnapshot("src/new.py", "VALUE = 1"),
        ]
        assert seen[0].endswith("auth=Basic " + base64.b64encode(b":pat").decode())
        assert any("%24skip=3" in line and "%24top=3" in line for line in seen)

    asyncio.run(run())


def test_large_diff_keeps_whole_files_and_marks_the_rest() -> None:
    async def run() -> None:
        async with serve([]) as url:
            api = AzureDevOpsApi(url, "", max_diff_bytes=300)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 3
        assert [f.path for f in parse_diff(plain)] == ["src/app.py", "src/new.py"]
        assert diff.endswith("# codereview: diff truncated: 3 files omitted\n")
        assert len(snapshots) == 2

    asyncio.run(run())


def test_a_head_file_over_the_size_limit_is_counted_as_omitted() -> None:
    async def run() -> None:
        async with serve([]) as url:
            api = AzureDevOpsApi(url, "", max_file_bytes=20)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 1  # src/app.py is 29 bytes at head; the others fit
        assert "src/app.py" not in {f.path for f in parse_diff(plain)}
        assert "src/app.py" not in {s.path for s in snapshots}

    asyncio.run(run())
