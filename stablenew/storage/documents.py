"""Versioned YAML documents: safe loading with file/line/field errors, and safe dumping.

Every file format of StableNew (settings, presets, packs, profiles, nodes) goes through
`load_yaml_model`, so a bad file always yields a `DocumentError` that names the file, the
line and the field, and never a traceback or a half-loaded object.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from stablenew.errors import StableNewError
from stablenew.storage.validation import Problem, plain_problems

M = TypeVar("M", bound=BaseModel)

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
# Counted with aliases expanded: a "billion laughs" file is refused long before it explodes.
MAX_EXPANDED_NODES = 200_000


class DocumentError(StableNewError):
    """A file that cannot be used, with where (file, line, field) and what to do."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        reason: str,
        *,
        line: int | None = None,
        field: str | None = None,
        problems: list[tuple[int | None, Problem]] | None = None,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = reason
        self.line = line
        self.field = field
        self.problems = problems or []
        super().__init__(self.describe())

    def describe(self) -> str:
        where = [str(self.path) if self.path else "<text>"]
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field '{self.field}'")
        text = ", ".join(where) + f": {self.reason}"
        extra = len(self.problems) - 1
        if extra > 0:
            text += f" (and {extra} more problem{'s' if extra > 1 else ''})"
        return text


def _check_node_count(node: yaml.Node, path: str | os.PathLike[str] | None) -> None:
    budget = MAX_EXPANDED_NODES
    stack = [node]
    while stack:
        current = stack.pop()
        budget -= 1
        if budget < 0:
            raise DocumentError(
                path,
                "The file expands to too many values (it may be a YAML 'billion laughs' bomb). "
                "StableNew refused to read it; remove the & / * references.",
                line=current.start_mark.line + 1,
            )
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                stack.append(key)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at *loc*, or of the deepest existing parent."""
    if node is None:
        return None
    best = node.start_mark.line + 1
    current: yaml.Node = node
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = value if not isinstance(value, yaml.ScalarNode) else value
                    best = key.start_mark.line + 1
                    break
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(current.value):
                nxt = current.value[part]
                best = nxt.start_mark.line + 1
        if nxt is None:
            break
        current = nxt
    return best


def read_document_text(path: str | os.PathLike[str]) -> str:
    """Read a document file as text, refusing huge or binary files with a clear reason."""
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise DocumentError(p, "The file does not exist.") from None
    except OSError as exc:
        raise DocumentError(p, f"The file cannot be read ({exc.strerror}).") from exc
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            p,
            f"The file is {size / 1_048_576:.1f} MB; StableNew reads documents up to "
            f"{MAX_DOCUMENT_BYTES // 1_048_576} MB. Is this the right file?",
        )
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DocumentError(p, f"The file cannot be read ({exc.strerror}).") from exc
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(p, "The file is saved as UTF-16 text; StableNew reads UTF-8. Save it "
                               "again as UTF-8 in your text editor.")
    if b"\x00" in raw:
        raise DocumentError(p, "This is not a text file (it contains binary data). Check that "
                               "you named the right file.", line=raw.count(b"\n", 0, raw.index(b"\x00")) + 1)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(
            p, f"The file is not UTF-8 text (byte 0x{raw[exc.start]:02X} at position {exc.start} "
               "cannot be read). Save it again as UTF-8 in your text editor.",
            line=raw.count(b"\n", 0, exc.start) + 1) from None


#: libyaml's safe loader where PyYAML was built with it (its wheels are), else the pure-Python
#: one: a pipeline config of 70 lines parses in 0.5 ms instead of 4.5 (every start reads some).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, path: str | os.PathLike[str] | None = None) -> tuple[Any, yaml.Node | None]:
    """Parse YAML safely (a safe loader only); returns the data and its node tree for line
    lookups."""
    # The reader checks for unprintable characters as it is built: build it inside the try.
    loader: yaml.SafeLoader | None = None
    try:
        loader = _SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None, None
        _check_node_count(node, path)
        return loader.construct_document(node), node
    except yaml.reader.ReaderError as exc:
        # libyaml counts the position in bytes of the UTF-8 text, the Python reader in characters
        at = max(0, exc.position)
        line = (text.encode("utf-8")[:at].count(b"\n") if _SafeLoader is not yaml.SafeLoader
                else text.count("\n", 0, at)) + 1
        raise DocumentError(path, f"The file contains a control character ({_char_name(exc.character)}) "
                            "that YAML does not allow. Delete it in a text editor (it is often "
                            "invisible) and save the file again.", line=line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"This is not valid YAML: {exc.problem or exc.context}."
        raise DocumentError(path, reason, line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as exc:
        raise DocumentError(path, f"This is not valid YAML: {exc}.") from None
    finally:
        if loader is not None:
            loader.dispose()


def _char_name(character: str | int) -> str:
    code = character if isinstance(character, int) else ord(character)
    names = {0x0C: "form feed", 0x0B: "vertical tab", 0x08: "backspace", 0x1B: "escape", 0x7F: "delete"}
    return f"{names[code]}, U+{code:04X}" if code in names else f"U+{code:04X}"


def parse_yaml_model(
    text: str,
    model: type[M],
    *,
    path: str | os.PathLike[str] | None = None,
    migrate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """Validate YAML *text* into *model*; *migrate* upgrades older `version`s first."""
    data, node = parse_yaml(text, path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DocumentError(path, "The file must hold named settings (a YAML mapping) at the top.",
                            line=node.start_mark.line + 1 if node else None)
    if migrate is not None:
        try:
            data = migrate(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise DocumentError(path, f"Cannot upgrade this file from its older format: {exc}",
                                field="version") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found: list[tuple[int | None, Problem]] = []
        raw = exc.errors(include_url=False)
        for problem, item in zip(plain_problems(exc, model), raw, strict=True):
            found.append((_line_of(node, tuple(item.get("loc", ()))), problem))
        line, first = found[0]
        raise DocumentError(path, first.message, line=line, field=first.field or None,
                            problems=found) from None


def load_yaml_model(
    path: str | os.PathLike[str],
    model: type[M],
    *,
    migrate: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> M:
    """Read and validate a YAML file; every failure is a DocumentError naming file/line/field."""
    return parse_yaml_model(read_document_text(path), model, path=path, migrate=migrate)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that keeps every string intact through a round-trip."""


# PyYAML treats NEL, LS, PS (and lone CR) as line breaks and mangles them in plain or block
# styles; the double-quoted style escapes them, so prompts pasted from anywhere survive.
_BREAKS = frozenset("\x85\u2028\u2029\r")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if any(ch in _BREAKS for ch in value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """YAML text as StableNew writes it: block style, keys in model order, unicode kept."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def keep_comments(old_text: str, new_text: str) -> str:
    """*new_text* with the comments and key order a person wrote into *old_text*, where they fit.

    Used when the app rewrites a document the user may have edited by hand: values come from
    *new_text* only; comments stay beside the keys they were written for (a removed key takes its
    comment with it), and new keys follow the order of *new_text*. Returns *new_text* unchanged
    when *old_text* cannot be read, or when the merged text would not read back as exactly the
    same data (the merge must never change what is saved).
    """
    try:
        old_data = yaml.safe_load(old_text)
        new_data = yaml.safe_load(new_text)
    except yaml.YAMLError:
        return new_text
    if not isinstance(old_data, dict) or not isinstance(new_data, dict) or "#" not in old_text:
        return new_text
    import io

    from ruamel.yaml import YAML, YAMLError  # only here: start-up never pays for it

    rt = YAML(typ="rt")
    rt.preserve_quotes = False
    rt.width = 4096
    rt.indent(mapping=2, sequence=2, offset=0)  # as dump_yaml writes lists
    try:
        document = rt.load(old_text)
        _lay_over(document, new_data)
        out = io.StringIO()
        rt.dump(document, out)
        merged = out.getvalue()
        if yaml.safe_load(merged) != new_data:
            return new_text
    except (YAMLError, yaml.YAMLError, TypeError, ValueError):
        return new_text
    return merged


def _lay_over(target: Any, new: dict[str, Any]) -> None:
    """Make the round-trip mapping *target* hold exactly *new*, keeping what carries comments."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    for key in [k for k in target if k not in new]:
        del target[key]
    for index, (key, value) in enumerate(new.items()):
        current = target.get(key) if key in target else None
        if isinstance(value, dict) and isinstance(current, CommentedMap):
            _lay_over(current, value)
        elif (isinstance(value, list) and isinstance(current, CommentedSeq) and len(value) == len(current)
              and all(isinstance(v, dict) and isinstance(c, CommentedMap)
                      for v, c in zip(value, current, strict=True))):
            for item, into in zip(value, current, strict=True):
                _lay_over(into, item)
        elif key in target:
            if current != value:
                target[key] = value
        else:
            target.insert(min(index, len(target)), key, value)
