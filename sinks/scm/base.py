"""What every SCM publisher does, behind one Protocol, and the registry that builds them.

The publish agent (``streams/publish.py``) never branches on vendors. For
one PR it asks the publisher which of our comments the PR already shows
(``existing``, read back through the hidden marker), posts the missing ones
in as few calls as the API allows (``post``), and resolves the thread of a
finding whose code is gone (``resolve``). GitHub also reports a check run
(``report``); the others have no such thing here and do nothing.

Exactly once is shared work: the agent's state table says what was posted,
and ``existing`` is the ground truth it falls back on whenever it cannot be
sure (first sight of a PR after a start, a post that failed ambiguously).
So ``existing`` must find every comment a previous ``post`` created, and
``post`` must put ``Comment.body`` (which carries the marker) in the
comment verbatim.

Errors: a refused or failed call raises ``SourceFetchError`` (from
``sources.http.ApiClient``) with ``retryable`` set; rate limits are honoured
inside the client.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from processors.publishing import Comment
from schemas.records import Finding
from sources.http import ApiClient, Sleep

# source -> "module:Class", imported on first use (the modules import this one).
PUBLISHERS = {
    "github": "sinks.scm.github:GitHubPublisher",
    "gitlab": "sinks.scm.gitlab:GitLabPublisher",
    "bitbucket-cloud": "sinks.scm.bitbucket_cloud:BitbucketCloudPublisher",
    "bitbucket-dc": "sinks.scm.bitbucket_dc:BitbucketDcPublisher",
    "azure-devops": "sinks.scm.azure_devops:AzureDevOpsPublisher",
    "gerrit": "sinks.scm.gerrit:GerritPublisher",
    "gitea": "sinks.scm.gitea:GiteaPublisher",
    "forgejo": "sinks.scm.gitea:ForgejoPublisher",
}
PUBLISHER_SOURCES = tuple(PUBLISHERS)


@dataclass(frozen=True, slots=True)
class PullRequestTarget:
    """The PR a batch of comments goes to: ``repo`` as the SCM names it, ``number`` its id.

    ``head_sha`` is the revision the findings were made on (GitHub's
    ``commit_id``, GitLab's position ``head_sha``, Gerrit's revision).
    """

    source: str
    tenant: str
    repo: str
    number: int
    head_sha: str


@dataclass(frozen=True, slots=True)
class PostedComment:
    """A comment of ours on the SCM: ``comment_id`` to edit it, ``thread_id`` to resolve it.

    ``resolved`` is True when the SCM shows its thread as resolved (or the
    comment as done/outdated), so a resolve is not sent twice.
    ``on_file`` is True when it fell back to a file-level or PR-level note
    because the line was outside the diff.
    """

    fingerprint: str
    comment_id: str
    thread_id: str = ""
    resolved: bool = False
    on_file: bool = False


class ScmPublisher(Protocol):
    """Posts, finds and resolves our comments on one SCM."""

    source: str

    async def existing(self, pr: PullRequestTarget) -> dict[str, PostedComment]:
        """Our comments on ``pr``, by fingerprint (found by their marker)."""
        ...

    async def post(
        self, pr: PullRequestTarget, comments: Sequence[Comment]
    ) -> dict[str, PostedComment]:
        """Post ``comments`` (batched into one review where the API allows); what was created.

        A comment whose line is outside the diff falls back to a note on the
        file (or the PR) rather than failing; the whole batch is posted or
        an exception is raised.
        """
        ...

    async def resolve(self, pr: PullRequestTarget, posted: PostedComment) -> None:
        """Mark the thread of ``posted`` resolved (or outdated): its code is gone."""
        ...

    async def report(
        self,
        pr: PullRequestTarget,
        findings: Sequence[Finding],
        *,
        conclusion: str,
        summary: str,
        check_id: str = "",
    ) -> str:
        """A PR-level status where the SCM has one (GitHub check run); returns its id.

        ``findings`` are the ones posted in this batch (annotations to add);
        ``conclusion`` ("success", "neutral", "failure") and ``summary`` cover
        every finding of ``pr.head_sha`` so far (the agent keeps count). With
        ``check_id`` (what an earlier call returned for the same head) the
        status is updated, otherwise created. SCMs without such a status
        return "" and make no call.
        """
        ...

    async def close(self) -> None:
        """Release the HTTP session; safe to call twice."""
        ...


class RestPublisher:
    """What every publisher shares: one ``ApiClient`` with the SCM's auth, no status, close.

    A subclass says how its SCM takes a token (``endpoint``) and implements
    ``existing``, ``post`` and ``resolve``; only GitHub overrides ``report``.
    """

    source = ""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 10.0,
        sleep: Sleep = asyncio.sleep,
        max_attempts: int = 4,
    ) -> None:
        root, headers = self.endpoint(base_url, token)
        self.http = ApiClient(
            root, headers=headers, timeout_s=timeout_s, sleep=sleep, max_attempts=max_attempts
        )

    def endpoint(self, base_url: str, token: str) -> tuple[str, dict[str, str]]:
        """The API root and the headers that carry ``token`` on this SCM."""
        raise NotImplementedError

    async def report(
        self,
        pr: PullRequestTarget,
        findings: Sequence[Finding],
        *,
        conclusion: str,
        summary: str,
        check_id: str = "",
    ) -> str:
        """No PR-level status on this SCM: no call, no id."""
        return ""

    async def close(self) -> None:
        await self.http.close()


def build_publisher(
    source: str, *, base_url: str, token: str, timeout_s: float = 10.0
) -> ScmPublisher:
    """The publisher for ``source`` (one of ``PUBLISHER_SOURCES``); ``ValueError`` otherwise.

    ``base_url`` follows ``sources.scm_api.build_scm_api``: GitHub's API root,
    Azure DevOps' organization URL, every other server's root.
    """
    if source not in PUBLISHERS:
        raise ValueError(f"no publisher for source {source!r}; expected one of {PUBLISHER_SOURCES}")
    module, _, name = PUBLISHERS[source].partition(":")
    publisher: ScmPublisher = getattr(importlib.import_module(module), name)(
        base_url, token, timeout_s=timeout_s
    )
    return publisher
