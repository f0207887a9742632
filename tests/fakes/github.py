"""A local GitHub for end-to-end tests and benchmarks.

Two halves: ``GoldenPullRequest``s built from the golden cases (read by path
from ../shared/golden, never copied), turned into signed ``pull_request``
webhooks shaped like GitHub's documented payload; and ``FakeGitHubApi``, a
real HTTP server on 127.0.0.1 that answers the two REST calls the normalizer
makes (the PR diff, and file contents at a ref) in GitHub's documented shape.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from processors.diff import parse_diff
from schemas.records import FileSnapshot, PullRequestEvent
from tests.fakes.local_http import ThreadedServer

GOLDEN = Path(__file__).resolve().parents[2] / ".." / "shared" / "golden" / "bugsinpy.jsonl"


@dataclass(frozen=True)
class GoldenPullRequest:
    case_id: str
    repo: str
    number: int
    head_sha: str
    base_sha: str
    diff: str
    files: dict[str, str]
    expected: list[dict]

    def to_event(self, tenant: str = "default", event_id: str = "golden") -> PullRequestEvent:
        """The PullRequestEvent the normalizer builds for this PR: diff + head files."""
        changed = {
            f.path for f in parse_diff(self.diff) if f.status != "deleted" and not f.is_binary
        }
        return PullRequestEvent(
            event_id=event_id,
            tenant=tenant,
            source="github",
            repo=self.repo,
            pr_number=self.number,
            action="opened",
            head_sha=self.head_sha,
            diff=self.diff,
            received_at_ms=0,
            files=[FileSnapshot(p, self.files.get(p)) for p in sorted(changed)],
        )


def load_golden(limit: int | None = None, path: Path = GOLDEN) -> list[GoldenPullRequest]:
    prs: list[GoldenPullRequest] = []
    with path.open() as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            case = json.loads(line)
            prs.append(
                GoldenPullRequest(
                    case_id=case["id"],
                    repo=case["repo"],
                    number=i + 1,
                    head_sha=case["head_commit"],
                    base_sha=case["base_commit"],
                    diff=case["diff"],
                    files=case["files_after"],
                    expected=case["expected"],
                )
            )
    return prs


def cycle_golden(count: int, path: Path = GOLDEN) -> Iterator[GoldenPullRequest]:
    """``count`` PRs: the golden cases in order, renumbered if more are needed than exist."""
    base = load_golden(path=path)
    for i in range(count):
        pr = base[i % len(base)]
        if i >= len(base):
            pr = GoldenPullRequest(
                pr.case_id,
                pr.repo,
                i + 1,
                f"{pr.head_sha}-{i}",
                pr.base_sha,
                pr.diff,
                pr.files,
                pr.expected,
            )
        yield pr


def webhook_payload(pr: GoldenPullRequest, api_url: str, action: str = "opened") -> dict:
    """A ``pull_request`` event body with the fields GitHub documents (trimmed)."""
    return {
        "action": action,
        "number": pr.number,
        "pull_request": {
            "url": f"{api_url}/repos/{pr.repo}/pulls/{pr.number}",
            "number": pr.number,
            "state": "open",
            "title": f"golden case {pr.case_id}",
            "user": {"login": "golden-bot"},
            "head": {"sha": pr.head_sha, "ref": "bug"},
            "base": {"sha": pr.base_sha, "ref": "main"},
        },
        "repository": {"full_name": pr.repo, "name": pr.repo.split("/")[-1]},
        "sender": {"login": "golden-bot"},
    }


def signed_request(
    payload: dict | bytes, secret: bytes, event: str = "pull_request", delivery: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": signature,
    }
    return body, headers


@dataclass
class FakeGitHubApi(ThreadedServer):
    """GitHub's REST API for the PRs it was given, on a free port, in a thread."""

    prs: dict[tuple[str, int], GoldenPullRequest] = field(default_factory=dict)
    requests: int = 0
    # Repos whose calls answer 500, to make a fetch fail on purpose.
    failing: set[str] = field(default_factory=set)
    port: int = 0

    def add(self, pr: GoldenPullRequest) -> None:
        self.prs[(pr.repo, pr.number)] = pr

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/repos/{owner}/{name}/pulls/{number}", self._pull)
        app.router.add_get("/repos/{owner}/{name}/contents/{path:.+}", self._contents)
        return app

    def _find(self, request: web.Request) -> GoldenPullRequest | None:
        self.requests += 1
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        if repo in self.failing:
            raise web.HTTPInternalServerError(text="injected failure")
        number = int(request.match_info.get("number", 0) or 0)
        if number:
            return self.prs.get((repo, number))
        ref = request.query.get("ref", "")
        return next((p for p in self.prs.values() if p.repo == repo and p.head_sha == ref), None)

    async def _pull(self, request: web.Request) -> web.Response:
        pr = self._find(request)
        if pr is None:
            return web.json_response({"message": "Not Found"}, status=404)
        if "diff" not in request.headers.get("Accept", ""):
            return web.json_response({"number": pr.number, "head": {"sha": pr.head_sha}})
        return web.Response(text=pr.diff, content_type="text/x-diff")

    async def _contents(self, request: web.Request) -> web.Response:
        pr = self._find(request)
        path = request.match_info["path"]
        if pr is None or path not in pr.files:
            return web.json_response({"message": "Not Found"}, status=404)
        return web.Response(body=pr.files[path].encode(), content_type="application/vnd.github.raw")
