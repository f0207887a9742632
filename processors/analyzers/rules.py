"""Review rules kept as data: YAML files of regexes and tree-sitter queries.

A reviewer's checklist ("mutable default argument", "yaml.load without a
Loader", "merge conflict marker") changes far more often than the engine
that applies it, and people who are not Python programmers should be able to
read and extend it. So each rule is a YAML record, validated strictly when
the analyzer is built: a typo in a rule file fails at start-up with the file
and rule id, never silently at review time. Queries are compiled at load for
the same reason.

A rule either matches a regular expression (per line, or over the whole text
with ``multiline: true``), which works for every language, or a tree-sitter
query against a grammar we ship (Python today), whose ``@match`` capture is
the node reported. All queries of one language are compiled into ONE query,
so a file is parsed once and walked once whatever the number of rules; with
``focus`` the walk is limited to the focus lines' range, and files without
focus lines are not parsed at all.

``exclude_regex`` is tried against the source lines a match spans, so a rule
can skip comments, an explicit opt-out, or a safe variant of its pattern.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import tree_sitter_python
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from tree_sitter import Language, Node, Parser, Query, QueryCursor, QueryError

from processors.analyzers import RawIssue
from processors.languages import language_for
from schemas.errors import ProcessorError

ANY_LANGUAGE = "any"
_RULE_ID = r"^[a-z0-9][a-z0-9-]*$"


@functools.cache
def grammar(language: str) -> Language | None:
    """The tree-sitter grammar for ``language`` when we ship one, else None."""
    if language == "python":
        return Language(tree_sitter_python.language())
    return None


class Rule(BaseModel):
    """One rule as written in a rule file; unknown keys are an error, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=_RULE_ID)
    category: Literal["bug", "security", "secret", "style"]
    severity: Literal["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"]
    languages: list[str] = Field(min_length=1)
    regex: str | None = None
    multiline: bool = False
    query: str | None = None
    message: str = Field(min_length=1)
    fix: str = Field(min_length=1)
    exclude_regex: str | None = None
    paths_exclude: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if (self.regex is None) == (self.query is None):
            raise ValueError("needs exactly one of 'regex' or 'query'")
        if self.multiline and self.regex is None:
            raise ValueError("'multiline' applies to 'regex' rules only")
        for pattern in (self.regex, self.exclude_regex):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        if self.query is not None:
            missing = [name for name in self.languages if grammar(name) is None]
            if missing:
                raise ValueError(f"no tree-sitter grammar for {missing}; use 'regex'")
            if "@match" not in self.query:
                raise ValueError("a query must capture the reported node as @match")
        return self


@dataclass(frozen=True)
class CompiledRule:
    """A validated rule with its patterns compiled, ready to run."""

    rule: Rule
    regex: re.Pattern[str] | None
    exclude: re.Pattern[str] | None

    @property
    def rule_id(self) -> str:
        return f"rules:{self.rule.id}"

    def applies_to(self, path: str, language: str) -> bool:
        languages = self.rule.languages
        if ANY_LANGUAGE not in languages and language not in languages:
            return False
        return not any(fnmatch.fnmatch(path, glob) for glob in self.rule.paths_exclude)


@dataclass(frozen=True)
class _LanguageQuery:
    """All query rules of one language compiled together; pattern index -> rule."""

    query: Query
    rule_of_pattern: tuple[CompiledRule, ...]


def packaged_rule_files() -> list[Path]:
    """The rule files shipped in ``processors/rules/``, sorted by name."""
    folder = resources.files("processors").joinpath("rules")
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def load_rules(paths: Iterable[Path]) -> list[CompiledRule]:
    """Every rule of ``paths``, validated and compiled; a bad rule raises ProcessorError."""
    compiled: list[CompiledRule] = []
    seen: dict[str, Path] = {}
    for path in paths:
        for index, raw in enumerate(_records(path)):
            label = raw.get("id", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
            try:
                rule = Rule.model_validate(raw)
            except ValidationError as exc:
                raise ProcessorError(f"{path}: rule {label}: {_explain(exc)}") from exc
            if rule.id in seen:
                raise ProcessorError(
                    f"{path}: rule {rule.id}: duplicate id (also in {seen[rule.id]})"
                )
            seen[rule.id] = path
            if rule.query is not None:
                for language in rule.languages:
                    _compile_query(path, rule, language)
            compiled.append(
                CompiledRule(
                    rule=rule,
                    regex=re.compile(rule.regex, re.MULTILINE) if rule.regex else None,
                    exclude=re.compile(rule.exclude_regex) if rule.exclude_regex else None,
                )
            )
    return compiled


class RulesAnalyzer:
    """Applies the rule files to a PR's head files; every hit is a ``rules:<id>`` issue."""

    name = "rules"

    def __init__(self, rules: Sequence[CompiledRule] | None = None) -> None:
        self._rules = list(rules) if rules is not None else load_rules(packaged_rule_files())
        self._regex_rules = [r for r in self._rules if r.regex is not None]
        self._queries: dict[str, _LanguageQuery] = {}
        languages = {lang for r in self._rules if r.rule.query for lang in r.rule.languages}
        for language in sorted(languages):
            members = tuple(r for r in self._rules if r.rule.query and language in r.rule.languages)
            self._queries[language] = _combine(language, members)

    @property
    def rules(self) -> list[CompiledRule]:
        return list(self._rules)

    def analyze(
        self, files: Mapping[str, str], focus: Mapping[str, Collection[int]] | None = None
    ) -> list[RawIssue]:
        """Issues on the focus lines (every line when ``focus`` is None), sorted by place."""
        issues: dict[tuple[str, int, int, str], RawIssue] = {}
        for path, text in files.items():
            wanted = None if focus is None else frozenset(focus.get(path, ()))
            if not text or (wanted is not None and not wanted):
                continue
            language = language_for(path)
            lines = text.split("\n")
            hits = list(self._regex_hits(path, language, text, lines, wanted))
            if language in self._queries:
                hits.extend(self._query_hits(path, language, text, wanted))
            for rule, line, end_line in hits:
                if wanted is not None and not any(n in wanted for n in range(line, end_line + 1)):
                    continue
                if rule.exclude is not None and rule.exclude.search(
                    "\n".join(lines[line - 1 : end_line])
                ):
                    continue
                key = (path, line, end_line, rule.rule_id)
                issues.setdefault(key, _issue(path, line, end_line, rule))
        return [issues[key] for key in sorted(issues)]

    def _regex_hits(
        self, path: str, language: str, text: str, lines: list[str], wanted: frozenset[int] | None
    ) -> Iterable[tuple[CompiledRule, int, int]]:
        rules = [r for r in self._regex_rules if r.applies_to(path, language)]
        multiline = [r for r in rules if r.rule.multiline]
        single = [r for r in rules if not r.rule.multiline]
        for number, line in enumerate(lines, start=1):
            if wanted is not None and number not in wanted:
                continue
            for rule in single:
                assert rule.regex is not None
                if rule.regex.search(line):
                    yield rule, number, number
        if multiline:
            starts = _line_starts(text)
            for rule in multiline:
                assert rule.regex is not None
                for match in rule.regex.finditer(text):
                    first = _line_of(starts, match.start())
                    last = _line_of(starts, max(match.start(), match.end() - 1))
                    yield rule, first, last

    def _query_hits(
        self, path: str, language: str, text: str, wanted: frozenset[int] | None
    ) -> Iterable[tuple[CompiledRule, int, int]]:
        compiled = self._queries[language]
        if not any(r.applies_to(path, language) for r in compiled.rule_of_pattern):
            return
        grammar_ = grammar(language)
        assert grammar_ is not None
        tree = Parser(grammar_).parse(text.encode("utf-8", "surrogatepass"))
        cursor = QueryCursor(compiled.query)
        if wanted is not None:
            cursor.set_point_range((min(wanted) - 1, 0), (max(wanted), 0))
        for pattern, captures in cursor.matches(tree.root_node):
            rule = compiled.rule_of_pattern[pattern]
            if not rule.applies_to(path, language):
                continue
            for node in captures.get("match", []):
                yield rule, node.start_point.row + 1, _last_row(node) + 1


def _combine(language: str, members: tuple[CompiledRule, ...]) -> _LanguageQuery:
    """One query holding every member's patterns, in order, and who owns each pattern."""
    grammar_ = grammar(language)
    assert grammar_ is not None
    owners: list[CompiledRule] = []
    for member in members:
        assert member.rule.query is not None
        owners.extend([member] * Query(grammar_, member.rule.query).pattern_count)
    source = "\n".join(m.rule.query or "" for m in members)
    return _LanguageQuery(Query(grammar_, source), tuple(owners))


def _compile_query(path: Path, rule: Rule, language: str) -> Query:
    grammar_ = grammar(language)
    assert grammar_ is not None and rule.query is not None
    try:
        return Query(grammar_, rule.query)
    except QueryError as exc:
        raise ProcessorError(f"{path}: rule {rule.id}: bad {language} query: {exc}") from exc


def _records(path: Path) -> list[Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProcessorError(f"{path}: cannot read rule file: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"rules"} or not isinstance(data["rules"], list):
        raise ProcessorError(f"{path}: a rule file is a mapping with one key, 'rules', a list")
    return data["rules"]


def _explain(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'rule'}: {err['msg']}" for err in exc.errors()
    )


def _issue(path: str, line: int, end_line: int, rule: CompiledRule) -> RawIssue:
    return RawIssue(
        path=path,
        line=line,
        end_line=end_line,
        rule_id=rule.rule_id,
        category=rule.rule.category,
        severity=rule.rule.severity,
        message=f"{rule.rule.message} Fix: {rule.rule.fix}",
    )


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts.extend(m.end() for m in re.finditer("\n", text))
    return starts


def _line_of(starts: list[int], offset: int) -> int:
    """1-based line number of character ``offset``."""
    return bisect.bisect_right(starts, offset)


def _last_row(node: Node) -> int:
    row = node.end_point.row
    if node.end_point.column == 0 and row > node.start_point.row:
        row -= 1
    return row
