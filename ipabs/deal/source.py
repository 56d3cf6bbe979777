"""Read YAML while remembering where every value came from.

Validation errors must point at ``file:line:column``; PyYAML drops positions once it builds
Python objects, so we walk the composed node tree ourselves and keep a map from each value's
path (a tuple of keys and list indices) to its position.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ipabs.errors import DealError, Issue, format_path

Path_ = tuple[Any, ...]

MAX_FILE_BYTES = 32 * 1024 * 1024
"""Largest YAML file read (32 MiB): a deal is a few kilobytes; loans in bulk belong in a tape."""

MAX_DEPTH = 64
"""Deepest nesting of lists and mappings; a deal needs about ten levels."""

MAX_ALIAS_VALUES = 100_000
"""Most values that aliases (``*name``) may expand to in one file: a few aliases are handy,
nested aliases that multiply ("billion laughs") would exhaust memory."""


@dataclass
class SourceMap:
    """Positions of the values of one YAML document.

    Attributes
    ----------
    file : str
        File name as given by the user.
    values : dict
        Path -> (line, column) of the value, both 1-based.
    keys : dict
        Path -> (line, column) of the mapping key that introduces the value.
    """

    file: str
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        """Return the position of ``path`` (of its key with ``key=True``), or of its nearest
        located ancestor."""
        p = tuple(path)
        if key and p in self.keys:
            return self.keys[p]
        while p:
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))

    def has(self, path: Path_) -> bool:
        """Whether ``path`` is a value written in the file."""
        return tuple(path) in self.values


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    def __init__(self, loader: yaml.SafeLoader, smap: SourceMap):
        self.loader = loader
        self.smap = smap
        self.issues: list[Issue] = []
        self.active: set[int] = set()
        self.seen: set[int] = set()  # collections walked once: meeting one again is an alias
        self.in_alias = 0
        self.expanded = 0  # values built from aliases
        self.alias_at: Path_ = ()  # where the outermost alias being expanded is used

    def issue(self, node: yaml.Node, path: Path_, message: str, hint: str = "") -> None:
        line, col = _mark(node)
        self.issues.append(Issue(self.smap.file, line, col, format_path(path), message, hint))

    def scalar(self, node: yaml.Node, path: Path_) -> Any:
        """Construct a scalar; a value YAML cannot build (2024-13-01) becomes an issue."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            self.loader.recursive_objects.pop(node, None)
            text = getattr(node, "value", "")
            if node.tag == "tag:yaml.org,2002:timestamp":
                self.issue(node, path, f"invalid date {text!r}: {exc}", "write dates as YYYY-MM-DD")
            else:
                self.issue(node, path, f"invalid value {text!r}: {exc}")
            return text

    def refuse(self, path: Path_, message: str, hint: str) -> None:
        """Stop at once: the document is too big or too deep to build. Located at the key
        that holds ``path`` (an aliased value's own position is that of its anchor)."""
        holder = path
        while holder and holder not in self.smap.keys:
            holder = holder[:-1]
        line, col = self.smap.keys.get(holder) or self.smap.locate(path)
        raise DealError([Issue(self.smap.file, line, col, format_path(path), message, hint)])

    def walk(self, node: yaml.Node, path: Path_) -> Any:
        self.smap.values[path] = _mark(node)
        if self.in_alias:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_VALUES:
                self.refuse(
                    self.alias_at,
                    f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values",
                    "nested aliases multiply; write the values out, or alias fewer times",
                )
        if len(path) > MAX_DEPTH:
            self.refuse(
                path,
                f"values nested more than {MAX_DEPTH} levels deep",
                "a deal needs about ten levels; check the brackets and the aliases (*name)",
            )
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.active:
                self.issue(
                    node,
                    path,
                    "an alias refers to a value that contains it",
                    "YAML anchors (&) must not be used inside themselves",
                )
                return None
            alias = id(node) in self.seen
            self.seen.add(id(node))
            self.active.add(id(node))
            if alias and not self.in_alias:
                self.alias_at = path
            self.in_alias += alias
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.mapping(node, path)
                return [self.walk(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.active.discard(id(node))
                self.in_alias -= alias
        return self.scalar(node, path)

    def mapping(self, node: yaml.MappingNode, path: Path_) -> dict[Any, Any]:
        self.loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.issue(
                    key_node,
                    path,
                    "a mapping key must be a plain name",
                    "write `name: value`; a key cannot be a list or a mapping",
                )
                continue
            key = self.scalar(key_node, path)
            if key is None:
                self.issue(key_node, path, "empty mapping key", "write `name: value`")
                continue
            child = (*path, key)
            if key in out:
                first = self.smap.keys.get(child)
                where = f" (first at line {first[0]})" if first else ""
                self.issue(
                    key_node,
                    child,
                    f"duplicate key {key!r}{where}",
                    "each key may appear once in a mapping; remove or rename one",
                )
                continue
            self.smap.keys[child] = _mark(key_node)
            out[key] = self.walk(value_node, child)
        return out


def _quote_issue(file: str, text: str, exc: yaml.MarkedYAMLError) -> Issue | None:
    """An error on the line where a quoted value that began on an earlier line ends: most
    likely that value's closing quote is missing, and the quote swallowed the lines up to
    the next one. Located where the quote opens."""
    mark = exc.problem_mark
    if mark is None:
        return None
    scanner = yaml.SafeLoader(text)
    suspect = None
    try:
        # the scan stops with an error at the problem: what it saw before that counts
        with contextlib.suppress(yaml.YAMLError):
            while scanner.check_token():
                token = scanner.get_token()
                if token.end_mark.index > mark.index:
                    break
                if isinstance(token, yaml.ScalarToken) and token.style in ('"', "'"):
                    suspect = token if token.start_mark.line < token.end_mark.line else None
                elif isinstance(token, (yaml.KeyToken, yaml.ValueToken, yaml.BlockEntryToken)):
                    continue
                else:
                    suspect = None
    finally:
        scanner.dispose()
    if suspect is None or suspect.end_mark.line != mark.line:
        return None
    start, end = suspect.start_mark, suspect.end_mark
    return Issue(
        file,
        start.line + 1,
        start.column + 1,
        "",
        f"YAML syntax error: the quoted value opened here runs on to line {end.line + 1}, where "
        f"the next quote closes it; then: {exc.problem} (line {mark.line + 1}, column {mark.column + 1})",
        "close the quote on this line",
    )


def _syntax_issue(file: str, exc: yaml.MarkedYAMLError) -> Issue:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = exc.problem or exc.context or "invalid YAML"
    if isinstance(exc, yaml.constructor.ConstructorError):
        return Issue(
            file,
            line,
            col,
            "",
            f"unsupported YAML: {problem}",
            "deal files use plain YAML values; remove the !!tag",
        )
    hint = "check indentation and quoting near this position"
    cm = exc.context_mark
    if cm is not None and (exc.context or "").startswith("while scanning a quoted scalar"):
        # the scanner fails where it runs out of text; the mistake is the quote that opened
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "the end"
        return Issue(
            file,
            cm.line + 1,
            cm.column + 1,
            "",
            f"YAML syntax error: the quote opened here is not closed ({problem} at {where})",
            "close the quote on the same line, or escape a quote inside the value",
        )
    if "\\t" in problem or "\t" in problem:
        hint = "indent with spaces, not tabs"
    elif exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        cm = exc.context_mark
        hint = f"{exc.context} at line {cm.line + 1}, column {cm.column + 1}; {hint}"
    return Issue(file, line, col, "", f"YAML syntax error: {problem}", hint)


def parse_yaml(text: str, file: str = "<string>") -> tuple[Any, SourceMap]:
    """Parse YAML text into plain Python objects plus a :class:`SourceMap`.

    Parameters
    ----------
    text : str
        YAML document.
    file : str
        Name used in error messages.

    Returns
    -------
    data, source_map

    Raises
    ------
    DealError
        On a YAML syntax error, a duplicate key or a value YAML cannot build (an impossible
        date), each located in the file.
    """
    if len(text) > MAX_FILE_BYTES:
        raise DealError([_too_big(file, len(text.encode("utf-8", "surrogatepass")))])
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        # libyaml's parser, where PyYAML has it, is several times faster; a file with a
        # mistake is parsed again by the pure-Python parser, so that messages do not depend
        # on how PyYAML was built
        with contextlib.suppress(DealError):
            return _parse(text, file, fast)
    return _parse(text, file, yaml.SafeLoader)


def _parse(text: str, file: str, loader_class: type) -> tuple[Any, SourceMap]:
    smap = SourceMap(file)
    loader = None
    try:
        _check_depth(loader_class, text, file)
        loader = loader_class(text)
        walker = _Walker(loader, smap)
        node = loader.get_single_node()
        data = {} if node is None else walker.walk(node, ())
    except yaml.MarkedYAMLError as exc:
        raise DealError([_quote_issue(file, text, exc) or _syntax_issue(file, exc)]) from None
    except yaml.reader.ReaderError as exc:  # a control character
        before = text[: exc.position]
        line, col = before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1
        raise DealError(
            [
                Issue(
                    file,
                    line,
                    col,
                    "",
                    f"YAML error: {exc.reason} (#x{exc.character:04x})",
                    "remove the character or quote the value",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise DealError([Issue(file, 1, 1, "", f"YAML error: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    if walker.issues:
        raise DealError(walker.issues)
    return data, smap


def _check_depth(loader_class: type, text: str, file: str) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` before composing: the composers recurse
    once per level, and deep enough brackets overflow the stack (libyaml's crashes)."""
    parser = loader_class(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    m = event.start_mark
                    raise DealError(
                        [
                            Issue(
                                file,
                                m.line + 1,
                                m.column + 1,
                                "",
                                f"values nested more than {MAX_DEPTH} levels deep",
                                "a deal needs about ten levels; check the brackets [ ] and { }",
                            )
                        ]
                    )
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    finally:
        parser.dispose()


def _too_big(file: str, size: int) -> Issue:
    return Issue(
        file,
        0,
        0,
        "",
        f"file is {size / 2**20:.1f} MiB; a YAML file may be at most {MAX_FILE_BYTES // 2**20} MiB",
        "put loans in bulk in a loan tape (CSV or Excel) and refer to it with `tape:`",
    )


def not_utf8_issue(file: str, data: bytes, exc: UnicodeDecodeError) -> Issue:
    """Where the first byte of ``data`` that is not UTF-8 is, and what to do about it.

    Parameters
    ----------
    file : str
        Name of the file, for the issue.
    data : bytes
        The file's contents.
    exc : UnicodeDecodeError
        The error of ``data.decode("utf-8")``.

    Returns
    -------
    Issue
        At the line and column (in characters) of the bad byte; the hint says to re-save the
        file as UTF-8, and whether it reads as GBK/GB18030.
    """
    start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    line = data.count(b"\n", 0, start) + 1
    column = len(data[line_start:start].decode("utf-8", "replace")) + 1
    hint = "re-save the file as UTF-8"
    reads_as_gbk = True
    try:
        data.decode("gb18030")
    except UnicodeDecodeError:
        reads_as_gbk = False
    if reads_as_gbk:
        hint += "; it reads as GBK/GB18030 text, so reopen it as GBK in the editor and save it as UTF-8"
    return Issue(
        file,
        line,
        column,
        "",
        f"byte 0x{data[start]:02x} here is not valid UTF-8",
        hint,
    )


def read_text(path: str | Path, file: str | None = None, what: str = "a deal file") -> str:
    """Read an input file as UTF-8 text (a leading byte-order mark dropped), with located errors.

    Parameters
    ----------
    path : str or Path
    file : str, optional
        How to name the file in messages (default: ``path``).
    what : str
        What the file should be, for the message when it is a directory ("a rating table").

    Raises
    ------
    DealError
        For a missing file, a directory, a file larger than :data:`MAX_FILE_BYTES`, one that
        cannot be read, and one that is not UTF-8 (at the line and column of its first bad
        byte, with a hint to re-save it).
    """
    p = Path(path)
    file = str(path) if file is None else file

    def fail(message: str, hint: str) -> DealError:
        return DealError([Issue(file, 0, 0, "", message, hint)])

    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES and p.is_file():
            raise DealError([_too_big(file, size)])
        data = p.read_bytes()
        # utf-8-sig: spreadsheet programs often start a CSV with a byte-order mark
        return data.decode("utf-8-sig")
    except FileNotFoundError:
        raise fail("file not found", "check the path; it is read relative to the current directory") from None
    except IsADirectoryError:
        raise fail(f"is a directory, not {what}", "give the path of a file") from None
    except UnicodeDecodeError as exc:
        issue = not_utf8_issue(file, data, exc)
        raise DealError([replace(issue, message="file is not UTF-8 text: " + issue.message)]) from None
    except OSError as exc:
        raise fail(
            f"cannot read the file: {exc.strerror or exc}", "check the path and its permissions"
        ) from None


def read_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    """Read a YAML file; see :func:`read_text` and :func:`parse_yaml`."""
    return parse_yaml(read_text(path), str(path))
