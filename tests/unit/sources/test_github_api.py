"""The GitHub client against a real local HTTP server speaking GitHub's shapes.

The server answers like the REST API does: the diff media type on the pulls
endpoint, raw bytes on the contents endpoint with the raw media type, GitHub's
JSON 404 body, and ``Retry-After`` on rate limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from processors.github_events import PullRequestRef
from schemas.records import FileSnapshot
from sources.github_api import DIFF_MEDIA_TYPE, RAW_MEDIA_TYPE, GitHubApi, SourceFetchError
from tests.fakes.local_http import serve_app

HEAD = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
DIFF = """\
diff --git a/src/app.py b/src/app.py
index 1111111..2222222 100644
--- a/src/app.py
+++ b/src/app.py
@@ -1,2 +1,2 @@
 import os
-print(os.sep)
+print(os.getcwd())
diff --git a/src/new.py b/src/new.py
new file mode 100644
index 0000000..3333333
--- /dev/null
+++ b/src/new.py
@@ -0,0 +1 @@
+VALUE = "caf\u00e9"
diff --git a/old.py b/old.py
deleted file mode 100644
index 4444444..0000000
--- a/old.py
+++ /dev/null
@@ -1 +0,0 @@
-gone = True
diff --git a/logo.png b/logo.png
index 5555555..6666666 100644
Binary files a/logo.png and b/logo.png differ
diff --git a/docs/a.md b/docs/b.md
similarity index 100%
rename from docs/a.md
rename to docs/b.md
diff --git a/data/latin1.txt b/data/latin1.txt
index 7777777..8888888 100644
--- a/data/latin1.txt
+++ b/data/latin1.txt
@@ -1 +1 @@
-old
+new
"""
CONTENTS: dict[tuple[str, str], bytes] = {
    ("src/app.py", HEAD): b"import os\nprint(os.getcwd())\n",
    ("src/new.py", HEAD): 'VALUE = "caf\u00e9"\n'.encode(),
    ("data/latin1.txt", HEAD): "caf\u00e9\n".encode("latin-1"),
    ("big.txt", HEAD): b"x" * 2_000_000,
}


@dataclass
class FakeGitHub:
    """State of the fake server: what it saw, and scripted failures."""

    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    scripted: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    in_flight: int = 0
    peak_in_flight: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v3/repos/{owner}/{name}/pulls/{number}", self.pull)
        app.router.add_get("/api/v3/repos/{owner}/{name}/pulls/{number}/files", self.files)
        app.router.add_get("/api/v3/repos/{owner}/{name}/contents/{path:.+}", self.contents)
        return app

    def _record(self, request: web.Request) -> web.Response | None:
        self.requests.append(
            (request.path_qs, request.headers["Accept"], request.headers.get("Authorization"))
        )
        script = self.scripted.get(request.path)
        if script:
            status, headers = script.pop(0)
            return web.json_response({"message": "scripted"}, status=status, headers=headers)
        return None

    async def pull(self, request: web.Request) -> web.StreamResponse:
        scripted = self._record(request)
        if scripted is not None:
            return scripted
        if (
            request.match_info["number"] == str(LARGE_PR)
            and request.headers["Accept"] == DIFF_MEDIA_TYPE
        ):
            return web.json_response(
                {"message": "Sorry, the diff exceeded the maximum number of files (300)."},
                status=406,
            )
        if request.match_info["number"] != "42":
            return _not_found()
        if request.headers["Accept"] != DIFF_MEDIA_TYPE:
            return web.json_response({"number": 42})
        return web.Response(text=DIFF, content_type="text/plain")

    async def files(self, request: web.Request) -> web.StreamResponse:
        """``GET /pulls/{n}/files``, as GitHub documents it: pages of 100, no patch for binaries."""
        self._record(request)
        if request.query.get("page") != "1":
            return web.json_response([])
        return web.json_response(LARGE_PR_FILES)

    async def contents(self, request: web.Request) -> web.StreamResponse:
        scripted = self._record(request)
        if scripted is not None:
            return scripted
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.05)
        finally:
            self.in_flight -= 1
        body = CONTENTS.get((request.match_info["path"], request.query.get("ref", "")))
        if body is None:
            return _not_found()
        if request.headers["Accept"] != RAW_MEDIA_TYPE:
            return web.json_response({"encoding": "base64"})
        return web.Response(body=body, content_type="application/octet-stream")


# A PR too large for the diff media type (GitHub answers 406), and its file list.
LARGE_PR = 77
LARGE_PR_FILES = [
    {
        "filename": "src/app.py",
        "status": "modified",
        "additions": 1,
        "deletions": 1,
        "patch": "@@ -1,2 +1,2 @@\n import os\n-print(os.getcwd())\n+print(os.listdir())",
    },
    {"filename": "src/new.py", "status": "added", "patch": "@@ -0,0 +1 @@\n+VALUE = 1"},
    {
        "filename": "docs/b.md",
        "previous_filename": "docs/a.md",
        "status": "renamed",
        "patch": "@@ -1 +1 @@\n-a\n+b",
    },
    {"filename": "logo.png", "status": "modified"},
]


def _not_found() -> web.Response:
    return web.json_response(
        {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
        status=404,
    )


@contextlib.asynccontextmanager
async def serve(fake: FakeGitHub) -> AsyncIterator[str]:
    async with serve_app(fake.app(), "/api/v3") as url:
        yield url


def run(
    scenario: Callable[[GitHubApi, FakeGitHub], Awaitable[None]],
    *,
    token: str = "tok",
    fake: FakeGitHub | None = None,
) -> FakeGitHub:
    fake = fake or FakeGitHub()

    async def main() -> None:
        async with serve(fake) as base_url, GitHubApi(base_url, token, timeout_s=5) as api:
            await scenario(api, fake)

    asyncio.run(main())
    return fake


def _ref() -> PullRequestRef:
    return PullRequestRef(
        tenant="acme",
        repo="octo-org/widgets",
        pr_number=42,
        action="opened",
        head_sha=HEAD,
        base_sha="c" * 40,
        title="t",
        author="mona",
        api_url="",
    )


def test_pull_diff_uses_the_diff_media_type_and_token() -> None:
    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        assert await api.pull_diff("octo-org/widgets", 42) == DIFF

    fake = run(scenario)
    assert fake.requests == [
        ("/api/v3/repos/octo-org/widgets/pulls/42", DIFF_MEDIA_TYPE, "Bearer tok")
    ]


def test_no_authorization_header_without_a_token() -> None:
    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        await api.pull_diff("octo-org/widgets", 42)

    assert run(scenario, token="").requests[0][2] is None


@pytest.mark.parametrize(
    ("path", "ref", "expected"),
    [
        ("src/app.py", HEAD, "import os\nprint(os.getcwd())\n"),
        ("src/new.py", HEAD, 'VALUE = "caf\u00e9"\n'),
        ("src/app.py", "0" * 40, None),  # 404: not at that ref
        ("nope.py", HEAD, None),
        ("data/latin1.txt", HEAD, None),  # not UTF-8
        ("big.txt", HEAD, None),  # over max_file_bytes
    ],
)
def test_file_content(path: str, ref: str, expected: str | None) -> None:
    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        assert await api.file_content("octo-org/widgets", path, ref) == expected

    fake = run(scenario)
    assert fake.requests[0][:2] == (
        f"/api/v3/repos/octo-org/widgets/contents/{path}?ref={ref}",
        RAW_MEDIA_TYPE,
    )


def test_fetch_event_material_fetches_only_reviewable_files_concurrently() -> None:
    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        diff, files = await api.fetch_event_material(_ref())
        assert diff == DIFF
        assert files == [
            FileSnapshot("src/app.py", "import os\nprint(os.getcwd())\n"),
            FileSnapshot("src/new.py", 'VALUE = "caf\u00e9"\n'),
            FileSnapshot("data/latin1.txt", None),
        ]

    fake = run(scenario)
    assert len(fake.requests) == 4  # the diff + three files; not deleted/binary/renamed
    assert fake.peak_in_flight > 1  # the three files were fetched concurrently


def test_rate_limit_waits_for_retry_after_then_succeeds() -> None:
    fake = FakeGitHub()
    fake.scripted["/api/v3/repos/octo-org/widgets/pulls/42"] = [(429, {"Retry-After": "1"})]

    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        started = time.monotonic()
        assert await api.pull_diff("octo-org/widgets", 42) == DIFF
        assert time.monotonic() - started >= 0.9

    assert len(run(scenario, fake=fake).requests) == 2


@pytest.mark.parametrize(
    ("status", "headers", "retryable", "attempts"),
    [
        (503, {"Retry-After": "0"}, True, 3),  # retried here, then left to the caller
        (429, {"Retry-After": "0"}, True, 3),
        (500, {}, True, 1),
        (502, {}, True, 1),
        (403, {"X-RateLimit-Remaining": "0"}, True, 1),  # primary limit: wait is too long
        (403, {}, False, 1),
        (401, {}, False, 1),
        (404, {}, False, 1),  # a missing PR is an error, unlike a missing file
        (422, {}, False, 1),
    ],
)
def test_errors_are_typed(
    status: int, headers: dict[str, str], retryable: bool, attempts: int
) -> None:
    fake = FakeGitHub()
    fake.scripted["/api/v3/repos/octo-org/widgets/pulls/42"] = [(status, headers)] * 5

    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        with pytest.raises(SourceFetchError) as caught:
            await api.pull_diff("octo-org/widgets", 42)
        assert caught.value.status == status
        assert caught.value.retryable is retryable
        assert str(status) in str(caught.value)

    assert len(run(scenario, fake=fake).requests) == attempts


def test_connection_refused_is_retryable() -> None:
    async def main() -> None:
        async with GitHubApi("http://127.0.0.1:9", "", timeout_s=2) as api:
            with pytest.raises(SourceFetchError) as caught:
                await api.pull_diff("octo-org/widgets", 42)
        assert caught.value.status is None and caught.value.retryable

    asyncio.run(main())


def test_close_is_idempotent_and_constructor_does_no_io() -> None:
    api = GitHubApi("http://127.0.0.1:9", "")  # no running loop needed

    async def main() -> None:
        await api.close()
        await api.close()

    asyncio.run(main())


def test_a_diff_too_large_for_github_is_rebuilt_from_the_file_list() -> None:
    from processors.diff import parse_diff, split_truncation_marker

    async def scenario(api: GitHubApi, fake: FakeGitHub) -> None:
        diff = await api.pull_diff("octo-org/widgets", LARGE_PR)
        files = {f.path: f for f in parse_diff(diff)}
        assert files["src/app.py"].added_lines == [2]
        assert files["src/new.py"].status == "added"
        assert (files["docs/b.md"].status, files["docs/b.md"].old_path) == ("renamed", "docs/a.md")
        assert "logo.png" not in files
        assert split_truncation_marker(diff)[1] == 1  # the binary has no patch: counted

    fake = run(scenario)
    assert any("/pulls/77/files?per_page=100&page=1" in path for path, _, _ in fake.requests)
