"""Turn pydantic's validation errors into located, actionable :class:`~ipabs.errors.Issue` s."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from ipabs.deal.source import SourceMap
from ipabs.errors import Issue, format_path

_SCALAR_MISMATCH = {
    "float_type", "float_parsing", "int_type", "int_parsing", "string_type", "bool_type",
    "bool_parsing", "date_type", "date_parsing", "date_from_datetime_parsing", "model_type",
    "model_attributes_type", "dict_type", "list_type", "literal_error", "value_error",
    "union_tag_invalid", "int_from_float", "missing",
}


def _data_prefix(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], list[Any]]:
    """Split ``loc`` into the part that indexes ``data`` and the union tags pydantic inserted."""
    path: list[Any] = []
    tags: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not tags and part.isidentifier() and part[0].islower():
            # a missing or extra key below a real mapping
            path.append(part)
            node = None
        else:
            tags.append((len(path), part))
    return tuple(path), tags


def _unwrap(tp: Any) -> list[Any]:
    """Members of an annotation, looking through Annotated, Optional and unions."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            out.extend(_unwrap(arg))
        return out
    return [tp]


def _model_at(root: type[BaseModel], path: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` (for key suggestions)."""
    candidates: list[Any] = [root]
    node = data
    for part in path:
        nxt: list[Any] = []
        for cand in candidates:
            for tp in _unwrap(cand):
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    field = tp.model_fields.get(part) or next(
                        (f for f in tp.model_fields.values() if f.alias == part), None
                    )
                    if field is not None:
                        nxt.append(field.annotation)
                elif typing.get_origin(tp) is list and isinstance(part, int):
                    nxt.append(typing.get_args(tp)[0])
                elif typing.get_origin(tp) is dict:
                    nxt.append(typing.get_args(tp)[1])
        candidates = nxt
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
        )
    models = [tp for c in candidates for tp in _unwrap(c) if isinstance(tp, type) and issubclass(tp, BaseModel)]
    if not models:
        return None
    if len(models) > 1 and isinstance(node, dict):
        # pick the member sharing most keys with the data (e.g. the support `kind`)
        def score(m: type[BaseModel]) -> int:
            kind = node.get("kind")
            fields = m.model_fields
            if kind is not None and "kind" in fields and typing.get_args(fields["kind"].annotation) == (kind,):
                return 1000
            names = set(fields) | {f.alias for f in fields.values() if f.alias}
            return len(names & set(node))

        models.sort(key=score, reverse=True)
    return models[0]


def suggest(word: str, options: list[str]) -> str:
    """A "did you mean" hint for a misspelt name, or ``""``."""
    match = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    return msg


def translate(exc: ValidationError, data: Any, smap: SourceMap, root: type[BaseModel]) -> list[Issue]:
    """Convert a pydantic ``ValidationError`` into located issues.

    Errors from the branches of a union are pruned to the branch that fits the data: a mapping
    is never reported as "not a number", and of several model branches the one with the
    fewest errors is kept.
    """
    raw = exc.errors(include_url=False)
    parsed = []
    for err in raw:
        path, tags = _data_prefix(tuple(err["loc"]), data)
        parsed.append((path, tags, err))

    # prune union branches: group by (position of the first tag, path up to it)
    groups: dict[tuple[Any, ...], dict[Any, list[int]]] = {}
    for i, (path, tags, _err) in enumerate(parsed):
        if tags:
            depth, tag = tags[0]
            groups.setdefault(path[:depth], {}).setdefault(tag, []).append(i)
    drop: set[int] = set()
    for base, branches in groups.items():
        if len(branches) < 2:
            continue
        node: Any = data
        for p in base:
            node = node[p] if isinstance(node, (dict, list)) else None
        scored = []
        for tag, idx in branches.items():
            shallow = all(len(parsed[i][0]) == len(base) and parsed[i][2]["type"] in _SCALAR_MISMATCH for i in idx)
            penalty = 10_000 if (shallow and isinstance(node, (dict, list))) else 0
            scored.append((penalty + len(idx), tag))
        scored.sort(key=lambda s: s[0])
        keep = scored[0][1]
        for tag, idx in branches.items():
            if tag != keep:
                drop.update(idx)

    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for i, (path, _tags, err) in enumerate(parsed):
        if i in drop:
            continue
        where = format_path(path)
        if err["type"] == "extra_forbidden":
            key = path[-1] if path else err["loc"][-1]
            model = _model_at(root, path[:-1], data)
            hint = suggest(str(key), _field_names(model)) if model else ""
            if not hint and model:
                hint = "allowed keys: " + ", ".join(_field_names(model))
            line, col = smap.locate(path, key=True)
            msg = f"unknown key {key!r}"
        elif err["type"] == "missing":
            line, col = smap.locate(path[:-1])
            msg = f"missing required field {path[-1]!r}" if path else "missing required field"
            hint = "add it"
            where = format_path(path[:-1]) if path else where
        else:
            line, col = smap.locate(path)
            msg = _message(err)
            hint = ""
            if err["type"] == "literal_error":
                expected = err.get("ctx", {}).get("expected", "")
                got = err.get("input")
                options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",")]
                hint = suggest(str(got), [o for o in options if o])
        key = (where, msg)
        if key in seen:
            continue
        seen.add(key)
        issues.append(Issue(smap.file, line, col, where, msg, hint))
    return issues
