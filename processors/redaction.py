"""Secrets out of text before it leaves for an LLM provider.

Deep analysis sends changed code to a third party. A credential committed in
that code is already a finding (``processors.analyzers.secrets``); it must
not also become a copy in a vendor's logs. ``redact`` replaces each secret
VALUE, never the line around it, so the model still reads the code's shape
(``password = "<REDACTED:password:1>"``) and every line keeps its number:
no newline is ever added or removed.

Two sources of detection, because neither alone is enough:
- detect-secrets' format plugins (AWS, GitHub, Slack, Stripe, JWT, ...),
  their compiled patterns run over the whole text at once (one regex pass
  per plugin, not the per-line plugin machinery the analyzer needs), and
  its Shannon-entropy measure for values under weak names ("key", "salt");
- our own table: formats detect-secrets 1.5 lacks (GCP, Azure AD, new GitHub
  PATs, npm, Hugging Face, Anthropic/OpenAI project keys, ...), private key
  blocks over many lines, credentials in URLs, Authorization headers, and
  assignments to secret-ish names in Python/JS/YAML/JSON/.env/INI styles.

Placeholders are numbered per call, in order of first appearance: the same
value maps to the same number within one prompt (the model can see that two
uses are the same secret) and the number is a pure function of position, so
it leaks nothing about the value and needs no key. A hash, even salted,
would be an offline brute-force oracle for short passwords unless its key
were secret and rotated, which a pure function cannot hold; and stability
across prompts buys the model nothing.

Deliberately NOT redacted: git SHAs, UUIDs, lockfile integrity hashes and
other hex/base64 strings that are not assigned to a secret-ish name. They
are ordinary in code, a reviewer needs them, and a format plugin that fires
on them would blank half a lockfile.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.plugins.base import RegexBasedDetector
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString


def _word_set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# detect-secrets plugins not used here: public IPs are not secrets; private
# key headers and keyword/entropy plugins are covered by the rules below.
_SKIPPED_PLUGINS = _word_set(
    "IPPublicDetector PrivateKeyDetector KeywordDetector Base64HighEntropyString "
    "HexHighEntropyString"
)

_KEYWORD_PLUGINS = _word_set(
    "CloudantDetector IbmCloudIamDetector IbmCosHmacDetector SoftlayerDetector"
)

# (kind, pattern): the secret is the named group "v" when present, else the whole match.
_FORMATS: tuple[tuple[str, str], ...] = (
    (
        "aws-access-key",
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)"
        r"[A-Z0-9]{16}\b",
    ),
    ("gcp-api-key", r"AIza[0-9A-Za-z_\-]{35}(?![\w-])"),
    ("gcp-oauth-secret", r"GOCSPX-[A-Za-z0-9_\-]{28}(?![\w-])"),
    ("gcp-access-token", r"ya29\.[0-9A-Za-z_\-]{30,}"),
    ("azure-client-secret", r"Q~(?<=[A-Za-z0-9_~.]{3}\dQ~)[A-Za-z0-9_~.\-]{31,34}(?![\w~.-])"),
    ("azure-storage-key", r"AccountKey=(?P<v>[A-Za-z0-9+/]{86}==)"),
    ("azure-sas-signature", r"sig=(?P<v>[A-Za-z0-9%+/]{30,}(?:%3D|=){0,2})"),
    ("github-token", r"gh[pousr]_[A-Za-z0-9]{36,255}\b"),
    ("github-pat", r"github_pat_[A-Za-z0-9_]{22,255}\b"),
    ("gitlab-token", r"gl(?:pat|dt|ft|rt|soat|cbt|imt|ptt)-[A-Za-z0-9_\-]{20,}(?![\w-])"),
    ("slack-token", r"xox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("slack-app-token", r"xapp-\d-[A-Z0-9]+-\d+-[a-z0-9]+\b"),
    (
        "slack-webhook",
        r"https://hooks\.slack\.com/(?:services|workflows)/(?P<v>[A-Za-z0-9_/]{20,})",
    ),
    ("stripe-key", r"(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{24,99}\b"),
    ("stripe-webhook-secret", r"whsec_[A-Za-z0-9+/]{32,}"),
    ("twilio-api-key", r"SK[0-9a-fA-F]{32}\b"),
    ("sendgrid-key", r"SG\.[\w\-]{22}\.[\w\-]{43}\b"),
    ("npm-token", r"npm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", r"pypi-AgE[A-Za-z0-9_\-]{50,}"),
    ("jwt", r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("anthropic-key", r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{40,}"),
    ("openai-key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}"),
    ("openai-project-key", r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{40,}"),
    ("huggingface-token", r"hf_[A-Za-z0-9]{34,}\b"),
    ("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("digitalocean-token", r"do[por]_v1_[a-f0-9]{64}\b"),
    ("mailgun-key", r"key-[0-9a-zA-Z]{32}\b"),
    ("square-token", r"(?:sq0atp|sq0csp)-[0-9A-Za-z_\-]{22,43}"),
    ("facebook-token", r"EAA(?:CEdEose0cBA|[A-Za-z0-9]{3})[0-9A-Za-z]{60,}"),
    ("atlassian-token", r"ATATT3[A-Za-z0-9_\-=]{50,}"),
    ("databricks-token", r"dapi[a-f0-9]{32}(?:-\d)?\b"),
    ("doppler-token", r"dp\.(?:pt|st|sa|ct|scim)\.[A-Za-z0-9]{40,44}\b"),
    ("vault-token", r"hv[sb]\.[A-Za-z0-9_\-]{24,}"),
    ("terraform-token", r"\.atlasv1\.(?<=[A-Za-z0-9]{14}\.atlasv1\.)[A-Za-z0-9_\-=]{60,}"),
    ("newrelic-key", r"NR(?:AK|II|JS)-[A-Za-z0-9]{27}\b"),
    ("linear-key", r"lin_api_[A-Za-z0-9]{40}\b"),
    ("postman-key", r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}\b"),
    ("age-secret-key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
    ("sentry-token", r"sntry[su]_[A-Za-z0-9+/=_\-]{40,}"),
    ("grafana-token", r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}\b"),
    (
        "url-password",
        r"://[^\s:/@'\"<>]{0,128}:"
        r"(?P<v>[^\s@/'\"<>]{1,256})@",
    ),
    (
        "authorization-header",
        r"(?i)authorization[\"']?[ \t]*[:=,][ \t]*[\"']?"
        r"(?:bearer|token|basic|digest|apikey)[ \t]+(?P<v>[a-z0-9\-._~+/]{8,}=*)",
    ),
    ("bearer-token", r"(?i)bearer[ \t]+(?P<v>[a-z0-9\-._~+/]{20,}=*)"),
)

# Formats whose pattern starts after a fixed-width lookbehind: the secret starts that much earlier.
_BACK = {"azure-client-secret": 4, "terraform-token": 14}

_PRIVATE_KEY_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,20}PRIVATE KEY(?: BLOCK)?-----")
_PRIVATE_KEY_END = re.compile(r"-----END[ A-Z0-9]{0,20}PRIVATE KEY(?: BLOCK)?-----")
# Base64 in a key body; "(?<!\\)" keeps the "n" of an escaped "\n" out of it.
_KEY_BODY = re.compile(r"(?:(?<=\\n)|(?<![\\A-Za-z0-9+/]))[A-Za-z0-9+/]{4,}={0,2}")
_LONG_KEY_LINE = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
_MAX_KEY_CHARS = 16_000

# A name holding one of these words, then an operator, then a value.
_ASSIGNMENT = re.compile(
    r"(?<![A-Za-z0-9_\-.$@])"
    r"(?P<name>[A-Za-z0-9_\-.$@]{0,40}?(?i:pass|pwd|secret|token|key|auth|credential|salt)"
    r"[A-Za-z0-9_\-.]{0,40})"
    r"[\"'\]]?"
    r"(?:[ \t]*:[ \t]*[A-Za-z_][\w\[\]., |]{0,40}?(?=[ \t]*=[^=]))?"  # a Python type annotation
    r"[ \t]*(?P<op>:=|=>|[!=]==?|=|:)[ \t]*"
    r"(?:[rRbBuU]{0,2}(?P<q>[\"'`])(?P<quoted>(?:\\.|(?!(?P=q))[^\\\n]){1,512})(?P=q)"
    r"|(?P<bare>[^\s\"'`,;#]{1,512}))"
)
_NAME_WORD = re.compile(r"pass|pwd|pw|secret|token|key|auth|credential|salt")
_URL_HINT = re.compile(r"://")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_STRONG_WORDS = _word_set(
    "password passwd pwd pass passphrase passcode secret secrets token credential "
    "credentials apikey authtoken pw"
)
_STRONG_BEFORE_KEY = _word_set(
    "api access private secret auth account master signing encryption hmac session client "
    "app service consumer jwt cookie license webhook storage subscription"
)
_WEAK_WORDS = {"key", "salt", "auth"}
# A name whose last word is one of these holds something about a secret, not the secret.
_NOT_VALUE_WORDS = _word_set(
    "ttl length len min max size file files path dir url uri endpoint name names field "
    "fields header type id ids env var prefix suffix format regex re pattern count expires "
    "expiry expiration timeout hint label policy error errors message validator hash hashed "
    "algorithm alg column mode required enabled reset changed strength kind class cls index "
    "idx position version scope scopes location source provider manager store cache budget "
    "limit usage input prompt placeholder form widget lookup confirm ref reference arn"
)
_KEYWORD_VALUES = _word_set(
    "none null nil true false undefined required optional str string bytes int text secret "
    "password token env"
)
_TEMPLATE = re.compile(r"\$\{|\{\{|%\(|\{[A-Za-z_][\w.]*\}|^\$[A-Za-z_]|^<.*>$|^%[sd]$")
_REFERENCE = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*(?:\(|\[|$)")
_NUMBER = re.compile(r"^[\d.]+[a-z]{0,2}$")
_ENTROPY_CHARSET = re.compile(r"^[A-Za-z0-9+/=_\-]{16,}$")
_PLACEHOLDER = re.compile(r"<REDACTED:[a-z0-9\-]+:\d+>")


@dataclass(frozen=True, slots=True)
class Redacted:
    """Text with its secrets replaced; ``count`` replacements of ``kinds`` (sorted, distinct)."""

    text: str
    count: int
    kinds: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    kind: str
    rank: int = 0  # on overlap the lower rank wins: our formats, then assignments, then plugins


def redact(text: str) -> Redacted:
    """``text`` with every secret value found replaced by ``<REDACTED:kind:N>``.

    Pure and deterministic; newlines are never touched, so line numbers stay.
    Redacting already-redacted text changes nothing.
    """
    protected = [m.span() for m in _PLACEHOLDER.finditer(text)]
    hits = _non_overlapping(_find(text), protected)
    if not hits:
        return Redacted(text, 0, ())
    numbers: dict[str, int] = {}
    parts: list[str] = []
    position = 0
    for hit in hits:
        parts.append(text[position : hit.start])
        if hit.kind:
            number = numbers.setdefault(text[hit.start : hit.end], len(numbers) + 1)
            parts.append(f"<REDACTED:{hit.kind}:{number}>")
        position = hit.end
    parts.append(text[position:])
    counted = [h for h in hits if h.kind]
    return Redacted("".join(parts), len(counted), tuple(sorted({h.kind for h in counted})))


def _find(text: str) -> Iterator[_Hit]:
    """Every candidate span, from all detectors; overlaps are settled by the caller."""
    yield from _private_keys(text)
    keyword_lines = _lines_with(text, _NAME_WORD, text.lower())
    url_lines = _lines_with(text, _URL_HINT, text)
    for kind, pattern, back, keyed, rank in _format_patterns():
        spans = sorted(set(keyword_lines + url_lines)) if keyed else [(0, len(text))]
        for start, end in spans:
            for match in pattern.finditer(text, start, end):
                hit = _hit_of(match, kind, back, rank)
                if hit is not None:
                    yield hit
    # The assignment scan is slow per character; it runs only on lines naming a secret word.
    for start, end in keyword_lines:
        for match in _ASSIGNMENT.finditer(text, start, end):
            hit = _assigned_secret(match)
            if hit is not None:
                yield hit


def _lines_with(text: str, hint: re.Pattern[str], searched: str) -> list[tuple[int, int]]:
    """(start, end) of each line of ``text`` where ``hint`` occurs in ``searched`` (same length)."""
    spans: list[tuple[int, int]] = []
    done = -1
    for found in hint.finditer(searched):
        if found.start() < done:
            continue
        start = text.rfind("\n", 0, found.start()) + 1
        done = text.find("\n", found.end())
        done = len(text) if done < 0 else done
        spans.append((start, done))
    return spans


@lru_cache(maxsize=1)
def _format_patterns() -> tuple[tuple[str, re.Pattern[str], int, bool, int], ...]:
    """Our format table plus detect-secrets' format plugins, compiled once.

    Our patterns start with a literal (no leading ``\\b``, which would make
    the regex engine try every position: 50x slower); the word boundary
    before a match is checked in ``_hit_of`` instead. detect-secrets'
    keyword-style plugins (slow patterns led by lookbehinds) run only on lines
    holding a secret word or a URL, the only lines where they can match.
    """
    ours = [(kind, re.compile(p), _BACK.get(kind, 0), False, 0) for kind, p in _FORMATS]
    built = [
        cast(Any, plugin_class)()  # typed as an abstract class: mypy sees no constructor
        for plugin_class in get_mapping_from_secret_type_to_class().values()
        if plugin_class.__name__ not in _SKIPPED_PLUGINS
    ]
    plugins = [plugin for plugin in built if isinstance(plugin, RegexBasedDetector)]
    theirs = [
        (
            _kind_of(plugin.secret_type),
            regex,
            0,
            type(plugin).__name__ in _KEYWORD_PLUGINS,
            2,
        )
        for plugin in plugins
        for regex in plugin.denylist
    ]
    return tuple(ours + theirs)


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _kind_of(secret_type: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")


def _hit_of(match: re.Match[str], kind: str, back: int, rank: int) -> _Hit | None:
    """The secret part of a format match: group "v", else the last group, else all of it.

    ``back`` extends a match over the characters its lookbehind checked.
    """
    first = match.start() - back
    if first > 0 and _is_word(match.string[first]) and _is_word(match.string[first - 1]):
        return None  # inside a longer word: not this format
    if "v" in match.re.groupindex:
        start, end = match.span("v")
    elif match.re.groups:
        spans = [match.span(i) for i in range(1, match.re.groups + 1) if match.group(i)]
        if not spans:
            return None
        start, end = spans[-1]
    else:
        start, end = first, match.end()
    value = match.string[start:end]
    # detect-secrets' patterns include their delimiters (quotes, "=", spaces).
    stripped = value.strip(" \t\"':=")
    start += value.find(stripped) if stripped else 0
    end = start + len(stripped)
    if not stripped or "\n" in stripped or _TEMPLATE.search(stripped):
        return None
    if _PLACEHOLDER.search(stripped) or stripped.startswith("*"):
        return None
    return _Hit(start, end, kind, rank)


def _assigned_secret(match: re.Match[str]) -> _Hit | None:
    """The value assigned to a secret-ish name, when it looks like a literal secret."""
    words = _words(match.group("name"))
    if not words or words[-1] in _NOT_VALUE_WORDS or any(w.startswith("tokeniz") for w in words):
        return None
    strong = bool(_STRONG_WORDS.intersection(words)) or any(
        word == "key" and index > 0 and words[index - 1] in _STRONG_BEFORE_KEY
        for index, word in enumerate(words)
    )
    weak = not strong and bool(_WEAK_WORDS.intersection(words))
    if not strong and not weak:
        return None
    quoted = match.group("quoted")
    group = "quoted" if quoted is not None else "bare"
    value = match.group(group)
    if not _plausible(value, quoted=quoted is not None):
        return None
    if weak and not _high_entropy(value):
        return None
    kind = (
        "password"
        if {"password", "passwd", "pwd", "pass", "passphrase"} & set(words)
        else ("secret-assignment" if strong else "high-entropy-secret")
    )
    return _Hit(match.start(group), match.end(group), kind, 1)


def _words(name: str) -> list[str]:
    spaced = _CAMEL.sub("_", name.strip("$@.-_"))
    return [w for w in re.split(r"[_\-.]+", spaced.lower()) if w]


def _plausible(value: str, *, quoted: bool) -> bool:
    """Whether a literal could be a secret rather than a reference, a template or prose."""
    if len(value) < 4 or len(value) > 512 or any(c.isspace() for c in value):
        return False
    if value.lower() in _KEYWORD_VALUES or len(set(value)) == 1:
        return False
    if _TEMPLATE.search(value) or _PLACEHOLDER.search(value) or "://" in value:
        return False  # a URL's credentials, if any, are the url-password format's
    if quoted:
        return True
    if value[0] in "([{<" or value.endswith(("(", ")", "[", "]", "{", "}")):
        return False
    if _NUMBER.match(value):
        return False
    # An unquoted identifier or dotted name is a variable in code; with a digit it
    # may be a password in .env/INI/YAML ("hunter2"), so only then it goes.
    return not (_REFERENCE.match(value) and not any(c.isdigit() for c in value))


def _high_entropy(value: str) -> bool:
    """Random-looking enough to be key material, by detect-secrets' Shannon entropy."""
    if not _ENTROPY_CHARSET.match(value):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    entropy = _entropy_plugin().calculate_shannon_entropy(value)
    is_hex = all(c in "0123456789abcdefABCDEF" for c in value)
    return entropy > (3.0 if is_hex else 3.8)


def _private_keys(text: str) -> Iterator[_Hit]:
    """A private key's body, every base64 run of it; the BEGIN/END lines stay as context.

    Without an END line (a chunk cut mid-key), the body is the run of lines
    right after BEGIN that hold long base64.
    """
    for begin in _PRIVATE_KEY_BEGIN.finditer(text):
        end = _PRIVATE_KEY_END.search(text, begin.end(), begin.end() + _MAX_KEY_CHARS)
        if end is not None:
            body_end = end.start()
        else:
            body_end = begin.end()
            for line in text[begin.end() :].split("\n")[1:]:
                if not _LONG_KEY_LINE.search(line):
                    break
                body_end = text.index(line, body_end) + len(line)
        first = True
        for run in _KEY_BODY.finditer(text, begin.end(), body_end):
            yield _Hit(run.start(), run.end(), "private-key" if first else "")
            first = False


def _non_overlapping(hits: Iterator[_Hit], protected: list[tuple[int, int]]) -> list[_Hit]:
    """Hits by position; of overlapping ones, the earliest-starting, then the longest, wins.

    A hit touching a ``protected`` span (a placeholder already there) is dropped,
    so redacting twice changes nothing.
    """
    taken = list(protected)
    kept: list[_Hit] = []
    for hit in sorted(hits, key=lambda h: (h.rank, h.start, -(h.end - h.start))):
        if any(hit.start < end and start < hit.end for start, end in taken):
            continue
        taken.append((hit.start, hit.end))
        kept.append(hit)
    return sorted(kept, key=lambda h: h.start)


@lru_cache(maxsize=1)
def _entropy_plugin() -> Base64HighEntropyString:
    return Base64HighEntropyString()
