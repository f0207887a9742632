"""``GitLabApi`` against a local server answering like GitLab's REST API v4.

Shapes from the Merge requests API, "List merge request diffs"
(``GET /projects/:id/merge_requests/:iid/diffs``: a JSON array of per-file
objects, paged with ``Link``/``X-Next-Page`` headers) and the Repository
files API, "Get raw file from repository"
(``GET /projects/:id/repository/files/:file_path/raw?ref=``, the path
URL-encoded so ``/`` arrives as ``%2F``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from processors.diff import parse_diff
from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.gitlab_api import GitLabApi
from sources.scm_api import build_scm_api, split_truncation_marker
from tests.fakes.local_http import serve_app

DATA = Path(__file__).resolve().parents[2] / "data" / "scm_api" / "gitlab"
PAGES = [
    json.loads((DATA / f"list-merge-request-diffs.api-merge_requests.page{n}.json").read_text())
    for n in (1, 2)
]
HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
FILES = {
    "src/app.py": b"import os\nprint(os.getcwd())\n",
    "src/new.py": b"VALUE = 1\n",
    "run.sh": b"echo hello",
}
# The MR hook carries no base revision: base_sha is empty and not needed here.
REF = PullRequestRef("t", "group/sub/app", 5, "opened", HEAD, "", "", "12", "")


@contextlib.asynccontextmanager
async def serve(seen: list[str]) -> AsyncIterator[str]:
    async def diffs(request: web.Request) -> web.StreamResponse:
        seen.append(f"{request.raw_path} token={request.headers.get('PRIVATE-TOKEN')}")
        page = int(request.query.get("page", "1"))
        headers = {"X-Page": str(page), "X-Total-Pages": "2", "X-Per-Page": "100"}
        if page == 1:
            headers["X-Next-Page"] = "2"
            headers["Link"] = f'<{request.url.update_query(page=2)}>; rel="next"'
        return web.json_response(PAGES[page - 1], headers=headers)

    async def raw(request: web.Request) -> web.StreamResponse:
        seen.append(request.raw_path)
        body = FILES.get(request.match_info["path"]) if request.query["ref"] == HEAD else None
        if body is None:
            return web.json_response({"message": "404 File Not Found"}, status=404)
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    prefix = "/api/v4/projects/{project}"
    app.router.add_get(prefix + "/merge_requests/5/diffs", diffs)
    app.router.add_get(prefix + "/repository/files/{path}/raw", raw)
    async with serve_app(app) as url:
        yield url


def test_fetch_event_material_rebuilds_git_headers_and_flags_the_unrendered_file() -> None:
    async def run() -> None:
        seen: list[str] = []
        async with serve(seen) as url:
            api = build_scm_api("gitlab", base_url=url, token="glpat")
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 1  # data/dump.sql came back too_large
        assert diff.endswith("# codereview: diff truncated: 1 files omitted\n")
        parsed = parse_diff(plain)
        assert [(f.path, f.old_path, f.status) for f in parsed] == [
            ("src/app.py", "src/app.py", "modified"),
            ("src/new.py", None, "added"),
            ("old.py", "old.py", "deleted"),
            ("docs/b.md", "docs/a.md", "renamed"),
            ("run.sh", "run.sh", "modified"),
        ]
        assert parsed[0].added_lines == [2]
        assert "old mode 100644\nnew mode 100755\n" in plain
        assert snapshots == [FileSnapshot(p, b.decode()) for p, b in FILES.items()]
        assert (
            seen[0]
            == "/api/v4/projects/group%2Fsub%2Fapp/merge_requests/5/diffs?per_page=100 token=glpat"
        )
        assert any("page=2" in line for line in seen)
        assert (
            f"/api/v4/projects/group%2Fsub%2Fapp/repository/files/src%2Fapp.py/raw?ref={HEAD}"
            in seen
        )

    asyncio.run(run())


def test_large_diff_counts_cut_files_with_the_ones_gitlab_left_out() -> None:
    async def run() -> None:
        async with serve([]) as url:
            api = GitLabApi(url, "", max_diff_bytes=150)
            diff, snapshots = await api.fetch_event_material(REF)
            await api.close()
        plain, omitted = split_truncation_marker(diff)
        assert omitted == 5  # four cut here, one too_large upstream
        assert [f.path for f in parse_diff(plain)] == ["src/app.py"]
        assert [s.path for s in snapshots] == ["src/app.py"]

    asyncio.run(run())
