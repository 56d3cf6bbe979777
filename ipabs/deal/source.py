"""Read YAML while remembering where every value came from.

Validation errors must point at ``file:line:column``; PyYAML drops positions once it builds
Python objects, so we walk the composed node tree ourselves and keep a map from each value's
path (a tuple of keys and list indices) to its position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ipabs.errors import DealError, Issue

Path_ = tuple[Any, ...]


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
        """Return the position of ``path``, or of its nearest located ancestor."""
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(
    loader: yaml.SafeLoader, node: yaml.Node, path: Path_, smap: SourceMap, issues: list[Issue]
) -> Any:
    smap.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, (list, dict)):
                line, col = _mark(key_node)
                issues.append(Issue(smap.file, line, col, _fmt(path), "a mapping key must be a scalar"))
                continue
            child = (*path, key)
            if key in out:
                line, col = _mark(key_node)
                issues.append(
                    Issue(smap.file, line, col, _fmt(child), f"duplicate key {key!r}",
                          "each key may appear once in a mapping; remove or rename one")
                )
            smap.keys[child] = _mark(key_node)
            out[key] = _walk(loader, value_node, child, smap, issues)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_walk(loader, item, (*path, i), smap, issues) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def _fmt(path: Path_) -> str:
    from ipabs.errors import format_path

    return format_path(path)


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
        On a YAML syntax error or a duplicate key, located in the file.
    """
    smap = SourceMap(file)
    issues: list[Issue] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = {} if node is None else _walk(loader, node, (), smap, issues)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "invalid YAML"
        raise DealError([Issue(file, line, col, "", f"YAML syntax error: {problem}",
                               "check indentation and quoting near this position")]) from None
    finally:
        loader.dispose()
    if issues:
        raise DealError(issues)
    return data, smap


def read_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    """Read a YAML file; see :func:`parse_yaml`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DealError([Issue(str(path), 0, 0, "", "file not found",
                               "check the path; it is read relative to the current directory")]) from None
    except UnicodeDecodeError as exc:
        raise DealError([Issue(str(path), 0, 0, "", f"file is not UTF-8 text ({exc.reason})",
                               "save the deal file as UTF-8")]) from None
    return parse_yaml(text, str(path))
