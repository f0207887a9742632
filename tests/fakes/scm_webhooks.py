"""A "this PR was opened" webhook for every non-GitHub source, from a golden PR.

Each payload starts from the documented-shape fixture in
``tests/data/scm/<source>/`` (so the field names are the vendor's, not ours)
with the repository, number, commits and URLs replaced by the golden PR's,
the event time set to now (the ingest refuses deliveries older than its
replay window), and the credential each vendor sends: a token header
(GitLab, Gerrit), basic auth (Azure DevOps) or an HMAC-SHA256 of the body
(Bitbucket Cloud/DC ``sha256=<hex>``, Gitea/Forgejo bare hex).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.fakes.github import GoldenPullRequest

DATA = Path(__file__).resolve().parents[1] / "data" / "scm"

Payload = dict[str, Any]


def webhook_for(
    source: str,
    pr: GoldenPullRequest,
    *,
    secret: bytes,
    api_url: str,
    delivery: str | None = None,
) -> tuple[str, bytes, dict[str, str]]:
    """``(path, body, headers)`` of an "opened" webhook for ``pr`` from ``source``.

    ``path`` is the ingest route for the default tenant (``/webhooks/<source>``);
    ``api_url`` is the server the payload's URLs point at (for Azure DevOps,
    the organization URL).
    """
    if source not in _BUILDERS:
        raise ValueError(f"no webhook builder for {source!r}; have {sorted(_BUILDERS)}")
    delivery = delivery or str(uuid.uuid4())
    build, fixture = _BUILDERS[source]
    payload = json.loads((DATA / fixture).read_text())
    body, headers = build(payload, pr, secret, api_url, delivery)
    return f"/webhooks/{source}", body, {"Content-Type": "application/json", **headers}


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dump(payload: Payload) -> bytes:
    return json.dumps(payload).encode()


def _hmac_hex(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _gitlab(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    project = payload["project"]
    project.update(
        name=pr.repo.split("/")[-1],
        path_with_namespace=pr.repo,
        namespace=pr.repo.split("/")[0],
        web_url=f"{api_url}/{pr.repo}",
        homepage=f"{api_url}/{pr.repo}",
        git_http_url=f"{api_url}/{pr.repo}.git",
    )
    attrs = payload["object_attributes"]
    attrs.update(
        iid=pr.number,
        title=f"golden case {pr.case_id}",
        updated_at=_now_iso(),
        url=f"{api_url}/{pr.repo}/-/merge_requests/{pr.number}",
        action="open",
    )
    attrs["last_commit"].update(id=pr.head_sha, url=f"{api_url}/{pr.repo}/-/commit/{pr.head_sha}")
    headers = {
        "X-Gitlab-Event": "Merge Request Hook",
        "X-Gitlab-Event-UUID": delivery,
        "X-Gitlab-Token": secret.decode(),
    }
    return _dump(payload), headers


def _bitbucket_cloud(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    repo_api = f"{api_url}/2.0/repositories/{pr.repo}"
    pull = payload["pullrequest"]
    repositories = [payload["repository"], pull["source"]["repository"]]
    repositories.append(pull["destination"]["repository"])
    for repository in repositories:
        repository.update(name=pr.repo.split("/")[-1], full_name=pr.repo)
        repository["links"]["self"]["href"] = repo_api
    pull.update(id=pr.number, title=f"golden case {pr.case_id}", updated_on=_now_iso())
    # Bitbucket Cloud payloads carry 12-digit abbreviated hashes (documented).
    pull["source"]["commit"]["hash"] = pr.head_sha[:12]
    pull["destination"]["commit"]["hash"] = pr.base_sha[:12]
    pull["links"]["self"]["href"] = f"{repo_api}/pullrequests/{pr.number}"
    body = _dump(payload)
    headers = {
        "X-Event-Key": "pullrequest:created",
        "X-Request-UUID": delivery,
        "X-Hub-Signature": "sha256=" + _hmac_hex(secret, body),
    }
    return body, headers


def _bitbucket_dc(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    key, _, slug = pr.repo.partition("/")
    pull = payload["pullRequest"]
    pull.update(id=pr.number, title=f"golden case {pr.case_id}")
    for side, sha in (("fromRef", pr.head_sha), ("toRef", pr.base_sha)):
        pull[side]["latestCommit"] = sha
        pull[side]["repository"].update(slug=slug, name=slug)
        pull[side]["repository"]["project"].update(key=key, name=key)
    pull["links"]["self"] = [
        {"href": f"{api_url}/projects/{key}/repos/{slug}/pull-requests/{pr.number}"}
    ]
    payload["date"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    body = _dump(payload)
    headers = {
        "X-Event-Key": "pr:opened",
        "X-Request-Id": delivery,
        "X-Hub-Signature": "sha256=" + _hmac_hex(secret, body),
    }
    return body, headers


def _azure_devops(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    project, _, name = pr.repo.partition("/")
    repo_api = f"{api_url}/{project}/_apis/git/repositories/{name}"
    resource = payload["resource"]
    resource["repository"].update(name=name, url=repo_api)
    resource["repository"]["project"]["name"] = project
    resource.update(
        pullRequestId=pr.number,
        status="active",
        title=f"golden case {pr.case_id}",
        url=f"{repo_api}/pullRequests/{pr.number}",
    )
    resource["lastMergeSourceCommit"] = {"commitId": pr.head_sha}
    resource["lastMergeTargetCommit"] = {"commitId": pr.base_sha}
    payload.update(id=delivery, createdDate=_now_iso())
    credentials = base64.b64encode(b"codereview:" + secret).decode("ascii")
    return _dump(payload), {"Authorization": f"Basic {credentials}"}


def _gerrit(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    now = int(time.time())
    change = payload["change"]
    change.update(
        project=pr.repo,
        number=pr.number,
        subject=f"golden case {pr.case_id}",
        url=f"{api_url}/c/{pr.repo}/+/{pr.number}",
    )
    payload["patchSet"].update(
        number=1,
        revision=pr.head_sha,
        parents=[pr.base_sha],
        ref=f"refs/changes/{pr.number % 100:02d}/{pr.number}/1",
        createdOn=now,
    )
    payload.update(project=pr.repo, eventCreatedOn=now)
    # Gerrit sends no delivery id; the delivery is its body, so keep it unique.
    change_id = "I" + hashlib.sha1(delivery.encode()).hexdigest()
    change["id"] = change_id
    payload["changeKey"]["id"] = change_id
    return _dump(payload), {"X-Gerrit-Secret": secret.decode()}


def _gitea_payload(payload: Payload, pr: GoldenPullRequest, api_url: str) -> bytes:
    owner, _, name = pr.repo.partition("/")
    repo_api = f"{api_url}/api/v1/repos/{pr.repo}"
    pull = payload["pull_request"]
    repositories = [payload["repository"], pull["base"]["repo"], pull["head"]["repo"]]
    for repository in repositories:
        repository.update(
            name=name,
            full_name=pr.repo,
            url=repo_api,
            html_url=f"{api_url}/{pr.repo}",
            clone_url=f"{api_url}/{pr.repo}.git",
        )
        repository["owner"]["login"] = owner
    payload.update(action="opened", number=pr.number)
    pull.update(
        number=pr.number,
        title=f"golden case {pr.case_id}",
        url=f"{api_url}/{pr.repo}/pulls/{pr.number}",
        html_url=f"{api_url}/{pr.repo}/pulls/{pr.number}",
        diff_url=f"{api_url}/{pr.repo}/pulls/{pr.number}.diff",
        merge_base=pr.base_sha,
        updated_at=_now_iso(),
    )
    pull["head"]["sha"] = pr.head_sha
    pull["base"]["sha"] = pr.base_sha
    return _dump(payload)


def _gitea(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    body = _gitea_payload(payload, pr, api_url)
    headers = {
        "X-Gitea-Event": "pull_request",
        "X-Gitea-Event-Type": "pull_request",
        "X-Gitea-Delivery": delivery,
        "X-Gitea-Signature": _hmac_hex(secret, body),
    }
    return body, headers


def _forgejo(
    payload: Payload, pr: GoldenPullRequest, secret: bytes, api_url: str, delivery: str
) -> tuple[bytes, dict[str, str]]:
    body = _gitea_payload(payload, pr, api_url)
    signature = _hmac_hex(secret, body)
    headers = {}
    # Forgejo sends its own headers and, for compatibility, Gitea's as well.
    for vendor in ("Forgejo", "Gitea"):
        headers.update(
            {
                f"X-{vendor}-Event": "pull_request",
                f"X-{vendor}-Event-Type": "pull_request",
                f"X-{vendor}-Delivery": delivery,
                f"X-{vendor}-Signature": signature,
            }
        )
    return body, headers


_Builder = Callable[[Payload, GoldenPullRequest, bytes, str, str], tuple[bytes, dict[str, str]]]
_BUILDERS: dict[str, tuple[_Builder, str]] = {
    "gitlab": (_gitlab, "gitlab/merge_request_open.gitlab-docs.json"),
    "bitbucket-cloud": (
        _bitbucket_cloud,
        "bitbucket_cloud/pullrequest_created.atlassian-docs.json",
    ),
    "bitbucket-dc": (_bitbucket_dc, "bitbucket_dc/pr_opened.atlassian-dc-docs.json"),
    "azure-devops": (_azure_devops, "azure_devops/git_pullrequest_created.ms-learn-docs.json"),
    "gerrit": (_gerrit, "gerrit/patchset_created.gerrit-docs.json"),
    "gitea": (_gitea, "gitea/pull_request_opened.gitea-docs.json"),
    "forgejo": (_forgejo, "gitea/pull_request_opened.gitea-docs.json"),
}
SOURCES = tuple(_BUILDERS)
