"""Turn pydantic's validation errors into located, actionable :class:`~ipabs.errors.Issue` s.

Pydantic reports each error with a ``loc`` that mixes the keys of the data with the labels of
the union branches it tried (``('target', 'Formula', 'shar')``). We walk each ``loc`` along the
schema's type annotations, so we know which parts are data keys (to locate them in the file)
and which are union branches (to keep only the branch that fits the data: a mapping is never
reported as "not a number").
"""

from __future__ import annotations

import datetime as dt
import difflib
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from ipabs.deal.source import SourceMap
from ipabs.errors import Issue, format_path

# --------------------------------------------------------------------------- suggestions


def suggest(word: str, options: typing.Iterable[str]) -> str:
    """A "did you mean" hint for a misspelt name, or ``""``."""
    match = difflib.get_close_matches(str(word), list(dict.fromkeys(options)), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else ""


def _close(word: str, options: list[str]) -> str | None:
    match = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    return match[0] if match else None


def show(value: Any) -> str:
    """A short rendering of a value from the deal file, for "got ..." in messages."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


# --------------------------------------------------------------------------- annotations

_NONE = type(None)


def _strip(tp: Any) -> Any:
    """Look through ``Annotated``."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    """Members of a union (``None`` excluded), or ``[tp]``."""
    tp = _strip(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(tp):
            if arg is not _NONE:
                out.extend(_members(arg))
        return out
    return [tp]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _shape(tp: Any) -> str:
    """``model``, ``list``, ``dict`` or ``scalar``."""
    tp = _strip(tp)
    if _is_model(tp):
        return "model"
    origin = typing.get_origin(tp)
    if origin is list:
        return "list"
    if origin is dict:
        return "dict"
    return "scalar"


def _data_shape(value: Any) -> str:
    if isinstance(value, dict):
        return "model"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _fits(member: Any, value: Any) -> bool:
    shape = _shape(member)
    return _data_shape(value) == ("model" if shape == "dict" else shape)


def _field(model: type[BaseModel], key: Any) -> Any:
    """The field of ``model`` spelt ``key`` (by alias or by name), or None."""
    for name, f in model.model_fields.items():
        if key == (f.alias or name) or key == name:
            return f
    return None


def field_names(model: type[BaseModel]) -> list[str]:
    """Keys a model accepts in YAML (aliases where defined)."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _describe(tp: Any) -> str:
    """What a member of a union looks like, for "expected ..." messages."""
    tp = _strip(tp)
    if _is_model(tp):
        return "a mapping {" + ", ".join(field_names(tp)) + "}"
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if tp is bool:
        return "true or false"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is dt.date:
        return "a date (YYYY-MM-DD)"
    if tp is str:
        return "text"
    return getattr(tp, "__name__", str(tp))


def _join_or(parts: list[str]) -> str:
    parts = list(dict.fromkeys(parts))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


# --------------------------------------------------------------------------- walking a loc


@dataclass
class _Tag:
    depth: int  # number of data path parts before the tag
    label: Any  # pydantic's label of the branch
    member: Any  # the annotation of that branch
    order: int  # position of the branch in the union
    members: list[Any]


@dataclass
class _Located:
    path: tuple[Any, ...]
    tags: list[_Tag]
    owner: type[BaseModel] | None  # model holding the last path part as a field
    at_key: bool  # the error is about a mapping key itself
    err: dict[str, Any]
    index: int
    extras: dict[str, Any] = field(default_factory=dict)


def _branch(members: list[Any], label: Any) -> tuple[int, Any]:
    """The union member pydantic labelled ``label``."""
    for i, m in enumerate(members):
        m0 = _strip(m)
        if _is_model(m0):
            if label == m0.__name__:
                return i, m
            kind = m0.model_fields.get("kind")
            if kind is not None and label in typing.get_args(_strip(kind.annotation)):
                return i, m
    text = str(label)
    for i, m in enumerate(members):
        shape = _shape(m)
        if shape in ("list", "dict") and text.startswith(shape + "["):
            return i, m
    for i, m in enumerate(members):
        m0 = _strip(m)
        if _shape(m0) == "scalar" and text == getattr(m0, "__name__", None):
            return i, m
    for i, m in enumerate(members):
        m0 = _strip(m)
        name = getattr(m0, "__name__", None)
        if _shape(m0) == "scalar" and name and name in text:
            return i, m
    scalars = [(i, m) for i, m in enumerate(members) if _shape(m) == "scalar"]
    return scalars[0] if scalars else (0, members[0])


def _locate_loc(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], list[_Tag], Any, bool, Any]:
    tp: Any = root
    path: list[Any] = []
    tags: list[_Tag] = []
    owner = None
    at_key = False
    for part in loc:
        members = _members(tp) if tp is not None else [None]
        if len(members) > 1:
            order, member = _branch(members, part)
            tags.append(_Tag(len(path), part, member, order, members))
            tp = member
            continue
        tp = _strip(members[0]) if members else None
        if part == "[key]":
            at_key = True
            continue
        path.append(part)
        if _is_model(tp):
            f = _field(tp, part)
            owner = tp
            tp = f.annotation if f is not None else None
        elif typing.get_origin(tp) in (list, dict):
            owner = None
            tp = typing.get_args(tp)[-1]
        else:
            owner = None
            tp = None
    return path, tags, owner, at_key, tp


def _as_written(data: Any, path: tuple[Any, ...]) -> tuple[Any, ...]:
    """``path`` as written in the file: a shorthand (``pay_principal: [a, b]`` for
    ``pay_principal: {tranches: [a, b]}``) has no mapping level for the wrapped field."""
    node = data
    out: list[Any] = []
    for i, part in enumerate(path):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif node is not None and not isinstance(node, dict) and isinstance(part, str):
            continue
        else:
            return (*out, *path[i:])
        out.append(part)
    return tuple(out)


def _value_at(data: Any, path: typing.Sequence[Any]) -> tuple[bool, Any]:
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return False, None
    return True, node


# --------------------------------------------------------------------------- pruning unions


def _key_score(model: Any, value: Any) -> float:
    """How well the keys of mapping ``value`` match the fields of ``model``."""
    model = _strip(model)
    if not (_is_model(model) and isinstance(value, dict)):
        return 0.0
    names = field_names(model) + list(model.model_fields)
    score = 0.0
    for key in value:
        if key in names:
            score += 1.0
        elif _close(str(key), names):
            score += 0.5
    return score


def _rank(errs: list[_Located], level: int, value: Any) -> tuple[Any, ...]:
    """Order of preference of a union branch: right shape, keys that match, fewer errors,
    earlier in the union."""
    member = errs[0].tags[level].member
    return (_fits(member, value), _key_score(member, value), -len(errs), -errs[0].tags[level].order)


def _prune(items: list[_Located], data: Any, level: int, out: list[_Located]) -> None:
    """Keep the errors of the union branch that fits the data, at union nesting ``level``."""
    groups: dict[tuple[Any, ...], list[_Located]] = {}
    for it in items:
        if len(it.tags) <= level:
            out.append(it)
            continue
        key = (it.path[: it.tags[level].depth], tuple(t.label for t in it.tags[:level]))
        groups.setdefault(key, []).append(it)
    for (base, _), group in groups.items():
        branches: dict[Any, list[_Located]] = {}
        for it in group:
            branches.setdefault(it.tags[level].label, []).append(it)
        _found, value = _value_at(data, base)
        tag0 = group[0].tags[level]

        ranked = sorted(branches.items(), key=lambda kv: _rank(kv[1], level, value), reverse=True)
        fitting = [(label, errs) for label, errs in ranked if _fits(errs[0].tags[level].member, value)]
        shallow = all(
            len(e.path) == len(base) and e.err["type"] not in ("value_error", "assertion_error")
            for _label, errs in fitting
            for e in errs
        )
        if not fitting or (len(fitting) > 1 and shallow):
            # nothing has the right shape: say what would
            fitting_members = [errs[0].tags[level].member for _l, errs in fitting]
            options = fitting_members or tag0.members
            first = group[0]
            combined = _Located(
                tuple(base),
                [],
                None,
                False,
                {"type": "union_mismatch", "msg": "", "input": value},
                first.index,
                {"expected": _join_or([_describe(m) for m in options])},
            )
            out.append(combined)
            continue
        _prune(fitting[0][1], data, level + 1, out)


# --------------------------------------------------------------------------- messages


def _clean(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg


_TYPE_WORDS = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}

_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _literal_options(expected: str) -> list[str]:
    parts = expected.replace(" or ", ", ").split(", ")
    return [p.strip().strip("'") for p in parts if p.strip()]


def _quantity_hint(text: Any) -> str:
    from ipabs.deal.types import GROUP_QUANTITIES, QUANTITIES

    if not isinstance(text, str):
        return ""
    head = text.split("(", 1)[0].strip()
    if "(" in text:
        if head in GROUP_QUANTITIES:
            return "write it as " + head + "(TRANCHE) or " + head + "(TRANCHE+TRANCHE)"
        match = _close(head, list(GROUP_QUANTITIES))
        return f"did you mean {match + text[len(text.split('(', 1)[0]) :]!r}?" if match else ""
    return suggest(head, [*QUANTITIES, *GROUP_QUANTITIES])


def _describe_error(it: _Located, value: Any, found: bool) -> tuple[str, str]:
    """Message and hint of a scalar (not key) error."""
    err = it.err
    typ = err["type"]
    ctx = err.get("ctx") or {}
    got = show(value if found else err.get("input"))
    if typ == "union_mismatch":
        return f"expected {it.extras['expected']}, got {got}", ""
    if typ in _TYPE_WORDS:
        hint = ""
        leaf = it.extras.get("leaf")
        if typ == "model_type" and _is_model(leaf) and isinstance(value, str):
            if value in field_names(leaf):
                hint = f"write `{value}: ...`"
            elif _close(value, field_names(leaf)):
                hint = f"write `{_close(value, field_names(leaf))}: ...`"
        return f"expected {_TYPE_WORDS[typ]}, got {got}", hint
    if typ.startswith("date") or typ.startswith("datetime"):
        return f"expected a date (YYYY-MM-DD), got {got}", ""
    if typ == "literal_error":
        options = _literal_options(str(ctx.get("expected", "")))
        quoted = ", ".join(repr(o) for o in options)
        return f"expected one of {quoted}, got {got}", suggest(str(value), options)
    if typ in _BOUNDS:
        name, words = _BOUNDS[typ]
        bound = ctx.get(name)
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        return f"{words} {bound}, got {got}", ""
    if typ == "too_short":
        n = ctx.get("min_length", 1)
        return f"needs at least {n} item{'s' if n != 1 else ''}", ""
    if typ == "too_long":
        n = ctx.get("max_length")
        return f"allows at most {n} item{'s' if n != 1 else ''}", ""
    if typ == "string_too_short":
        return "must not be empty", ""
    if typ == "union_tag_invalid":
        options = _literal_options(str(ctx.get("expected_tags", "")))
        disc = str(ctx.get("discriminator", "kind")).strip("'")
        expected = ", ".join(map(repr, options))
        tag = value.get(disc) if isinstance(value, dict) else ctx.get("tag")
        if not isinstance(tag, str):
            return f"expected one of {expected}, got {show(tag)}", ""
        return f"unknown {disc} {tag!r}; expected one of {expected}", suggest(tag, options)
    if typ in ("value_error", "assertion_error"):
        msg = _clean(str(err["msg"]))
        hint = ""
        if "is not a quantity" in msg:
            hint = _quantity_hint(value if found else err.get("input"))
            msg = msg.split(";", 1)[0] + "; use pool_balance, pool_balance_start, "
            msg += "original_pool_balance, notes_balance, balance(T), original_balance(T) "
            msg += "or interest_due(T), where T is TRANCHE or TRANCHE+TRANCHE"
        elif found and not isinstance(value, str) and msg.startswith(f"{value!r} "):
            msg = show(value) + msg[len(repr(value)) :]  # "[] is not ..." -> "a list is not ..."
        elif found and not isinstance(value, (dict, list, bool)) and value is not None:
            quoted = isinstance(value, str) and repr(value) in msg
            if not quoted and not msg.startswith(f"{value} "):
                msg += f", got {show(value)}"
        return msg, hint
    return _clean(str(err["msg"])), ""


def _refine(path: tuple[Any, ...], value: Any, msg: str) -> tuple[Any, ...]:
    """Point a model-level message at the field it is about.

    ``first_payment_date must be after closing_date`` is about ``first_payment_date``;
    ``waterfall 'x' has no steps`` is about the key ``x``.
    """
    if not isinstance(value, dict):
        return path
    first = msg.split(" ", 1)[0].strip("`")
    if first in value:
        return (*path, first)
    for word in msg.split():
        w = word.strip(",.:;")
        if len(w) > 2 and w[0] == w[-1] == "'" and w[1:-1] in value:
            return (*path, w[1:-1])
    return path


# --------------------------------------------------------------------------- translate


def translate(exc: ValidationError, data: Any, smap: SourceMap, root: type[BaseModel]) -> list[Issue]:
    """Convert a pydantic ``ValidationError`` into located issues.

    Parameters
    ----------
    exc : ValidationError
        The error raised by ``root.model_validate(data)``.
    data : Any
        The data that was validated (plain YAML objects).
    smap : SourceMap
        Positions of ``data`` in its file.
    root : type of BaseModel
        The model that was validated.

    Returns
    -------
    list of Issue
        One issue per problem, each with ``file:line:column``, field path, message and hint.
    """
    try:
        return _translate(exc, data, smap, root)
    except Exception:  # a schema shape this module does not know: still locate every error
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            n = len(loc)
            while n and not _value_at(data, loc[:n])[0]:
                n -= 1
            path = loc[:n]
            line, col = smap.locate(path)
            issues.append(Issue(smap.file, line, col, format_path(path), _clean(str(err["msg"]))))
        return issues


def _translate(exc: ValidationError, data: Any, smap: SourceMap, root: type[BaseModel]) -> list[Issue]:
    located: list[_Located] = []
    for i, err in enumerate(exc.errors(include_url=False)):
        path, tags, owner, at_key, leaf = _locate_loc(root, tuple(err["loc"]))
        located.append(_Located(tuple(path), tags, owner, at_key, err, i, {"leaf": _strip(leaf)}))
    kept: list[_Located] = []
    _prune(located, data, 0, kept)
    kept.sort(key=lambda it: it.index)

    # an unknown key that looks like a missing field explains that field's absence
    explained: set[tuple[Any, ...]] = set()
    for it in kept:
        if it.err["type"] == "extra_forbidden" and it.owner is not None and it.path:
            match = _close(str(it.path[-1]), field_names(it.owner))
            if match is not None:
                explained.add((*it.path[:-1], match))

    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for it in kept:
        issue = _issue(it, data, smap, explained)
        if issue is None:
            continue
        if (issue.path, issue.message) in seen:
            continue
        seen.add((issue.path, issue.message))
        issues.append(issue)
    return issues


def _issue(it: _Located, data: Any, smap: SourceMap, explained: set[tuple[Any, ...]]) -> Issue | None:
    path = _as_written(data, it.path)
    typ = it.err["type"]
    if typ == "extra_forbidden":
        key = path[-1] if path else it.err["loc"][-1]
        what = "step kind" if it.owner is not None and it.owner.__name__ == "Step" else "key"
        hint = ""
        if it.owner is not None:
            names = field_names(it.owner)
            hint = suggest(str(key), names) or "allowed keys: " + ", ".join(names)
        line, col = smap.locate(path, key=True)
        return Issue(smap.file, line, col, format_path(path), f"unknown {what} {key!r}", hint)
    if typ == "missing":
        if path in explained:
            return None
        parent = path[:-1]
        name = path[-1] if path else ""
        hint = f"add `{name}:`"
        if it.owner is not None:
            f = _field(it.owner, name)
            if f is not None and f.description:
                hint += f" - {f.description}"
        line, col = smap.locate(parent)
        return Issue(smap.file, line, col, format_path(parent), f"missing required field {name!r}", hint)
    if typ == "union_tag_not_found":
        disc = str((it.err.get("ctx") or {}).get("discriminator", "kind")).strip("'")
        tags = []
        for m in _members(it.extras.get("leaf")):
            f = _field(m, disc) if _is_model(m) else None
            if f is not None:
                tags += [repr(t) for t in typing.get_args(_strip(f.annotation))]
        hint = f"add `{disc}:`" + (f", one of {', '.join(tags)}" if tags else "")
        line, col = smap.locate(path)
        return Issue(smap.file, line, col, format_path(path), f"missing required field {disc!r}", hint)
    found, value = _value_at(data, path)
    msg, hint = _describe_error(it, value, found)
    if typ == "union_tag_invalid":
        disc = str((it.err.get("ctx") or {}).get("discriminator", "kind")).strip("'")
        if isinstance(value, dict) and disc in value:
            path = (*path, disc)
    elif typ in ("value_error", "assertion_error") and not it.at_key:
        path = _refine(path, value, msg)
    line, col = smap.locate(path, key=it.at_key)
    return Issue(smap.file, line, col, format_path(path), msg, hint)
