"""Every SCM's REST API for the golden PRs, on one local server.

``FakeScmServers`` extends ``FakeGitHubApi`` (GitHub keeps working on the
same port) with the endpoints each non-GitHub client in ``sources/`` calls,
answering in each API's documented shape, so an end-to-end test exercises
the real client against the real wire format rather than a stub of it:

- GitLab v4: ``/api/v4/projects/:id/merge_requests/:iid/diffs`` (per-file
  JSON, hunks without git headers) and ``/repository/files/:path/raw``.
- Bitbucket Cloud 2.0: ``/pullrequests/:id/diff`` (a redirect to the diff
  resource, as the real API answers), ``/commit/:hash`` and ``/src/:commit/:path``.
- Bitbucket DC 1.0: ``/pull-requests/:id.diff`` and ``/raw/:path?at=``.
- Azure DevOps 7.1, under the organization ``/org``: iterations, iteration
  changes and ``/items``; Azure has no diff endpoint, so the base side of each
  file is served too (``files_before``, given to ``add``).
- Gerrit: ``/changes/:project~:n/revisions/:rev/files/`` (with the ``)]}'``
  guard), ``/patch`` (base64 of a format-patch mail) and ``/files/:path/content``.
- Gitea/Forgejo: ``/api/v1/repos/:owner/:name/pulls/:n.diff`` and ``/raw/:path?ref=``.

Per-file diffs are rebuilt from ``parse_diff(pr.diff)`` so the fake serves
exactly the golden change, split the way each vendor splits it.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from processors.diff import FileDiff, parse_diff
from sources.scm_api import split_file_sections
from tests.fakes.github import GOLDEN, FakeGitHubApi, GoldenPullRequest

AZURE_ORG = "org"
XSSI_PREFIX = ")]}'\n"


def load_files_before(case_id: str, path: Path = GOLDEN) -> dict[str, str]:
    """The base-side texts of golden case ``case_id`` (``load_golden`` drops them)."""
    with path.open() as fh:
        for line in fh:
            case = json.loads(line)
            if case["id"] == case_id:
                return dict(case["files_before"])
    raise KeyError(f"no golden case {case_id!r} in {path}")


def hunk_text(file_diff: FileDiff) -> str:
    """The file's hunks as unified-diff text (``@@`` headers and prefixed lines)."""
    out: list[str] = []
    for hunk in file_diff.hunks:
        out.append(f"@@ -{hunk.old_start},{hunk.old_len} +{hunk.new_start},{hunk.new_len} @@\n")
        out += [line if line.endswith("\n") else line + "\n" for line in hunk.lines]
    return "".join(out)


@dataclass
class FakeScmServers(FakeGitHubApi):
    """GitHub's API plus GitLab, Bitbucket Cloud/DC, Azure DevOps, Gerrit and Gitea's."""

    files_before: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)

    def add(self, pr: GoldenPullRequest, files_before: dict[str, str] | None = None) -> None:
        """Serve ``pr``; ``files_before`` (base texts) is needed only for Azure DevOps."""
        super().add(pr)
        if files_before is not None:
            self.files_before[(pr.repo, pr.number)] = dict(files_before)

    @property
    def azure_url(self) -> str:
        """The Azure DevOps organization URL (what its client takes as ``base_url``)."""
        return f"{self.url}/{AZURE_ORG}"

    def application(self) -> web.Application:
        app = super().application()
        self.routes(app)
        return app

    def _pr(self, repo: str, number: int | str) -> GoldenPullRequest:
        self.requests += 1
        if repo in self.failing:
            raise web.HTTPInternalServerError(text="injected failure")
        pr = self.prs.get((repo, int(number)))
        if pr is None:
            raise web.HTTPNotFound(text=f"no PR {repo}#{number}")
        return pr

    def _by_sha(self, repo: str, sha: str) -> GoldenPullRequest:
        self.requests += 1
        if repo in self.failing:
            raise web.HTTPInternalServerError(text="injected failure")
        for pr in self.prs.values():
            if pr.repo == repo and sha and pr.head_sha.startswith(sha):
                return pr
        raise web.HTTPNotFound(text=f"no commit {sha} in {repo}")

    def _text(self, repo: str, sha: str, path: str) -> str:
        """The text of ``path`` at ``sha``: a PR's head, or (Azure) a PR's base."""
        for pr in self.prs.values():
            if pr.repo != repo:
                continue
            if sha and pr.head_sha.startswith(sha) and path in pr.files:
                return pr.files[path]
            before = self.files_before.get((pr.repo, pr.number), {})
            if sha and pr.base_sha.startswith(sha) and path in before:
                return before[path]
        raise web.HTTPNotFound(text=f"{path} not found at {sha}")

    def routes(self, app: web.Application) -> None:
        """Register every vendor's endpoints on ``app``."""
        add = app.router.add_get
        gitlab = "/api/v4/projects/{project}"
        add(gitlab + "/merge_requests/{iid:\\d+}/diffs", self._gitlab_diffs)
        add(gitlab + "/repository/files/{path}/raw", self._gitlab_raw)
        cloud = "/2.0/repositories/{workspace}/{slug}"
        add(cloud + "/pullrequests/{id:\\d+}/diff", self._cloud_pull_diff)
        add(cloud + "/diff/{spec:.+}", self._cloud_diff)
        add(cloud + "/commit/{hash}", self._cloud_commit)
        add(cloud + "/src/{commit}/{path:.+}", self._cloud_src)
        dc = "/rest/api/1.0/projects/{key}/repos/{slug}"
        add(dc + "/pull-requests/{id:\\d+}.diff", self._dc_diff)
        add(dc + "/raw/{path:.+}", self._dc_raw)
        azure = f"/{AZURE_ORG}/{{project}}/_apis/git/repositories/{{name}}"
        add(azure + "/pullRequests/{id:\\d+}/iterations", self._azure_iterations)
        add(azure + "/pullRequests/{id:\\d+}/iterations/{it:\\d+}/changes", self._azure_changes)
        add(azure + "/items", self._azure_items)
        gerrit = "/changes/{change}/revisions/{revision}"
        add(gerrit + "/files/", self._gerrit_files)
        add(gerrit + "/patch", self._gerrit_patch)
        add(gerrit + "/files/{path}/content", self._gerrit_content)
        gitea = "/api/v1/repos/{owner}/{name}"
        add(gitea + "/pulls/{id:\\d+}.diff", self._gitea_diff)
        add(gitea + "/raw/{path:.+}", self._gitea_raw)

    # GitLab ------------------------------------------------------------------

    async def _gitlab_diffs(self, request: web.Request) -> web.Response:
        pr = self._pr(request.match_info["project"], request.match_info["iid"])
        items = []
        for f in parse_diff(pr.diff):
            items.append(
                {
                    "old_path": f.old_path or f.path,
                    "new_path": f.path,
                    "a_mode": "0" if f.status == "added" else "100644",
                    "b_mode": "0" if f.status == "deleted" else "100644",
                    "new_file": f.status == "added",
                    "renamed_file": f.status == "renamed",
                    "deleted_file": f.status == "deleted",
                    "generated_file": False,
                    "collapsed": False,
                    "too_large": False,
                    "diff": hunk_text(f),
                }
            )
        headers = {"X-Page": "1", "X-Total-Pages": "1", "X-Per-Page": str(len(items))}
        return web.json_response(items, headers=headers)

    async def _gitlab_raw(self, request: web.Request) -> web.Response:
        text = self._text(
            request.match_info["project"], request.query.get("ref", ""), request.match_info["path"]
        )
        return web.Response(text=text, content_type="text/plain")

    # Bitbucket Cloud -----------------------------------------------------------

    async def _cloud_pull_diff(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['workspace']}/{request.match_info['slug']}"
        pr = self._pr(repo, request.match_info["id"])
        spec = f"{repo}:{pr.head_sha[:12]}%0D{pr.base_sha[:12]}"
        location = f"{self.url}/2.0/repositories/{repo}/diff/{spec}?from_pullrequest_id={pr.number}"
        raise web.HTTPFound(location)

    async def _cloud_diff(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['workspace']}/{request.match_info['slug']}"
        pr = self._pr(repo, request.query.get("from_pullrequest_id", "0"))
        return web.Response(text=pr.diff, content_type="text/plain")

    async def _cloud_commit(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['workspace']}/{request.match_info['slug']}"
        pr = self._by_sha(repo, request.match_info["hash"])
        return web.json_response({"type": "commit", "hash": pr.head_sha})

    async def _cloud_src(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['workspace']}/{request.match_info['slug']}"
        text = self._text(repo, request.match_info["commit"], request.match_info["path"])
        return web.Response(text=text, content_type="text/plain")

    # Bitbucket Data Center -----------------------------------------------------

    async def _dc_diff(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['key']}/{request.match_info['slug']}"
        pr = self._pr(repo, request.match_info["id"])
        return web.Response(text=pr.diff, content_type="text/plain")

    async def _dc_raw(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['key']}/{request.match_info['slug']}"
        text = self._text(repo, request.query.get("at", ""), request.match_info["path"])
        return web.Response(text=text, content_type="text/plain")

    # Azure DevOps --------------------------------------------------------------

    def _azure_pr(self, request: web.Request) -> GoldenPullRequest:
        repo = f"{request.match_info['project']}/{request.match_info['name']}"
        return self._pr(repo, request.match_info["id"])

    async def _azure_iterations(self, request: web.Request) -> web.Response:
        pr = self._azure_pr(request)
        iteration = {
            "id": 1,
            "description": f"golden case {pr.case_id}",
            "author": {"displayName": "Golden Bot", "uniqueName": "golden-bot@example.com"},
            "sourceRefCommit": {"commitId": pr.head_sha},
            "targetRefCommit": {"commitId": pr.base_sha},
            "commonRefCommit": {"commitId": pr.base_sha},
            "hasMoreCommits": False,
            "reason": "create",
        }
        return web.json_response({"value": [iteration], "count": 1})

    async def _azure_changes(self, request: web.Request) -> web.Response:
        pr = self._azure_pr(request)
        kinds = {"added": "add", "deleted": "delete", "renamed": "rename", "modified": "edit"}
        entries = []
        for n, f in enumerate(parse_diff(pr.diff), start=1):
            entry: dict[str, object] = {
                "changeTrackingId": n,
                "changeId": n,
                "item": {"path": "/" + f.path, "gitObjectType": "blob"},
                "changeType": kinds[f.status],
            }
            if f.status == "renamed" and f.old_path:
                entry["originalPath"] = "/" + f.old_path
            entries.append(entry)
        return web.json_response({"changeEntries": entries, "nextSkip": 0, "nextTop": 0})

    async def _azure_items(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['project']}/{request.match_info['name']}"
        path = request.query.get("path", "").lstrip("/")
        text = self._text(repo, request.query.get("versionDescriptor.version", ""), path)
        return web.Response(body=text.encode(), content_type="application/octet-stream")

    # Gerrit --------------------------------------------------------------------

    def _gerrit_pr(self, request: web.Request) -> GoldenPullRequest:
        project, _, number = request.match_info["change"].rpartition("~")
        pr = self._pr(project, number)
        if pr.head_sha != request.match_info["revision"]:
            raise web.HTTPNotFound(text="no such revision")
        return pr

    async def _gerrit_files(self, request: web.Request) -> web.Response:
        pr = self._gerrit_pr(request)
        listing: dict[str, dict[str, object]] = {
            "/COMMIT_MSG": {"status": "A", "lines_inserted": 7, "size_delta": 551, "size": 551}
        }
        for f in parse_diff(pr.diff):
            status = {"added": "A", "deleted": "D", "renamed": "R"}.get(f.status)
            text = pr.files.get(f.path, "")
            info: dict[str, object] = {"size": len(text.encode()), "size_delta": 0}
            if status:
                info["status"] = status
            if f.status == "renamed":
                info["old_path"] = f.old_path
            listing[f.path] = info
        body = XSSI_PREFIX + json.dumps(listing)
        return web.Response(text=body, content_type="application/json")

    async def _gerrit_patch(self, request: web.Request) -> web.Response:
        pr = self._gerrit_pr(request)
        sections = "".join(split_file_sections(pr.diff))
        mail = (
            f"From {pr.head_sha} Mon Sep 17 00:00:00 2001\n"
            "From: Golden Bot <golden-bot@example.com>\n"
            "Date: Thu, 26 Nov 2026 10:00:00 +0000\n"
            f"Subject: [PATCH] golden case {pr.case_id}\n\n"
            f"Change-Id: I{pr.head_sha}\n---\n\n"
            f"{sections}"
            "-- \n2.43.0\n\n"
        )
        return web.Response(
            text=base64.b64encode(mail.encode()).decode(), content_type="text/plain"
        )

    async def _gerrit_content(self, request: web.Request) -> web.Response:
        pr = self._gerrit_pr(request)
        text = self._text(pr.repo, pr.head_sha, request.match_info["path"])
        return web.Response(
            text=base64.b64encode(text.encode()).decode(), content_type="text/plain"
        )

    # Gitea / Forgejo -------------------------------------------------------------

    async def _gitea_diff(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        pr = self._pr(repo, request.match_info["id"])
        return web.Response(text=pr.diff, content_type="text/plain")

    async def _gitea_raw(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        text = self._text(repo, request.query.get("ref", ""), request.match_info["path"])
        return web.Response(text=text, content_type="text/plain")
