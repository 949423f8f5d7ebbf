"""Exact counts and indexable expansion of dynamicprompts templates, without enumerating.

`dynamicprompts` parses a template into its command tree and reads wildcard folders; this
module compiles that tree into a *space*: a node that knows how many prompts it makes from the
structure alone (products for sequences, sums for variants, k!·e_k(sizes) for `{k$$…}`
multi-picks, line counts for wildcards), produces the prompt of any rank in the same order as
dynamicprompts' CombinatorialPromptGenerator (`text(rank)`), and draws a weighted random
prompt (`sample`). Counting a 10^12 template is a few multiplications; prompt #10^11 costs
the same as prompt #0.

Where the library drops identical texts inside one variant (`{a|a|b}`, `{a|{a|b}}`), small
variants (up to FLATTEN_LIMIT prompts) are enumerated once at compile time and deduplicated
the same way, so counts agree exactly; larger variants are counted structurally.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from random import Random

from dynamicprompts.commands import (
    Command,
    LiteralCommand,
    SamplingMethod,
    SequenceCommand,
    VariantCommand,
    WildcardCommand,
    WrapCommand,
)
from dynamicprompts.commands.variable_commands import (
    VariableAccessCommand,
    VariableAssignmentCommand,
)
from dynamicprompts.parser.parse import parse
from dynamicprompts.wildcards import WildcardManager

from stablenew.randomizer.errors import (
    BadWeight,
    EmptyVariant,
    MissingWildcard,
    RecursiveTemplate,
    TemplateError,
    TemplateSyntaxError,
    UnbalancedBraces,
    UndefinedVariable,
)
from stablenew.randomizer.nodes import (
    Choice,
    Ctx,
    Drawn,
    Flat,
    Let,
    Lit,
    MultiPick,
    Node,
    Seq,
    VarRef,
    Wrap,
    join_results,
)

#: Variants making at most this many prompts are enumerated once to drop duplicate texts.
FLATTEN_LIMIT = 4096
_SPECIAL = re.compile(r"[#{}$%]|__")


# --- compiling ----------------------------------------------------------------------------


@dataclass
class _Var:
    immediate: bool
    command: Command | None = None
    env: dict[str, _Var] = field(default_factory=dict)


_PARSE_LOCK = threading.Lock()


@lru_cache(maxsize=512)
def _parse_cached(text: str) -> Command:
    return parse(text)


def parse_template(text: str, *, origin: str = "") -> Command:
    """dynamicprompts' parse, cached, with plain text short-circuited and errors typed."""
    if not text:
        return LiteralCommand("")
    if not _SPECIAL.search(text):
        return LiteralCommand(text)
    check_template(text, origin=origin)
    try:
        with _PARSE_LOCK:  # pyparsing grammars are shared objects; the GUI counts off-thread
            return _parse_cached(text)
    except Exception as exc:  # noqa: BLE001 - pyparsing raises its own hierarchy; any failure is a syntax error
        offset = getattr(exc, "loc", None)
        where = f" in wildcard '{origin}'" if origin else ""
        raise TemplateSyntaxError(
            f"The prompt{where} could not be read at {_at(text, offset)} (near "
            f"'{text[offset or 0:(offset or 0) + 12]}'). Check the braces {{ }}, '|' and '$$' "
            "there; '$', '%' and '#' start variables, wraps and comments.",
            template=text, offset=offset, wildcard=origin or None, detail=str(exc)) from None


def check_template(text: str, *, origin: str = "") -> None:
    """Problems dynamicprompts would silently accept or misreport: unbalanced braces and
    weights that are not numbers (`{x::a|b}` would otherwise become the literal "x::a")."""
    where = f" in wildcard '{origin}'" if origin else ""
    wildcard = origin or None
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}":
            if not stack:
                raise UnbalancedBraces(
                    f"The '}}' at {_at(text, i)}{where} has no '{{' before it. Remove it or "
                    "add the missing '{'.", template=text, offset=i, wildcard=wildcard)
            stack.pop()
        i += 1
    if stack:
        at = stack[-1]
        raise UnbalancedBraces(
            f"The '{{' at {_at(text, at)}{where} is never closed. Add the missing '}}' or "
            "remove the '{'.", template=text, offset=at, wildcard=wildcard)
    if "::" not in text:
        return
    for match in _OPTION_WEIGHT.finditer(text):
        raw = match.group("weight")
        inside = text.count("{", 0, match.start("weight")) > text.count("}", 0, match.start("weight"))
        if not inside:
            continue  # a '|' outside braces is text (or a prompt-matrix separator), not an option
        weight = _as_weight(raw)
        if weight is None:
            offset = match.start("weight")
            raise BadWeight(
                f"The weight '{raw.strip()}' at {_at(text, offset)}{where} is not a number. "
                "Write weights as {2::red|1::blue} with numbers of 0 or more.",
                template=text, offset=offset, wildcard=wildcard)


# An option start inside a variant (after '{', '{~', '{@', 'k$$' or '|') with a '::' weight.
_WEIGHT_NUMBER = re.compile(r"\+?(?:\d+\.\d*|\.\d+|\d+)")
_OPTION_WEIGHT = re.compile(r"(?:(?<!\$)(?<!%)\{[~@]?(?:[^{}|]*?\$\$)?|\|)(?P<weight>[^{}|:$]*)::")


def _as_weight(raw: str) -> float | None:
    # The forms dynamicprompts' weight grammar reads; anything else it would keep as text.
    if not _WEIGHT_NUMBER.fullmatch(raw.strip()):
        return None
    return float(raw)


def _at(text: str, offset: int | None) -> str:
    if offset is None:
        return "an unknown place"
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {column}"


class _Compiler:
    def __init__(self, template: str, manager: WildcardManager | None,
                 wildcard_weights: Mapping[str, Mapping[str, float]]) -> None:
        self.template = template
        self.manager = manager
        self.wildcard_weights = wildcard_weights
        self.wildcard_stack: list[str] = []
        self.var_stack: list[str] = []
        self.cache: dict[str, Node] = {}

    def compile(self, cmd: Command, env: dict[str, _Var]) -> Node:
        method = getattr(cmd, "sampling_method", None)
        if method in (SamplingMethod.RANDOM, SamplingMethod.CYCLICAL):
            inner = self._compile_plain(cmd, env)
            return Drawn(inner, cyclical=method is SamplingMethod.CYCLICAL)
        return self._compile_plain(cmd, env)

    def _compile_plain(self, cmd: Command, env: dict[str, _Var]) -> Node:
        if isinstance(cmd, LiteralCommand):
            return Lit(cmd.literal)
        if isinstance(cmd, SequenceCommand):
            return self._sequence(cmd, env)
        if isinstance(cmd, VariantCommand):
            return self._variant(cmd, env)
        if isinstance(cmd, WildcardCommand):
            return self._wildcard(cmd, env)
        if isinstance(cmd, VariableAccessCommand):
            return self._variable(cmd, env)
        if isinstance(cmd, WrapCommand):
            return Wrap(self.compile(cmd.wrapper, env), self.compile(cmd.inner, env))
        if isinstance(cmd, VariableAssignmentCommand):
            return self._sequence(SequenceCommand(tokens=[cmd]), env)
        raise TemplateSyntaxError(
            f"This prompt uses a feature StableNew cannot expand ({type(cmd).__name__}).",
            template=self.template)

    def _sequence(self, cmd: SequenceCommand, env: dict[str, _Var]) -> Node:
        assigns = [t for t in cmd.tokens if isinstance(t, VariableAssignmentCommand)]
        tokens = [t for t in cmd.tokens if not isinstance(t, VariableAssignmentCommand)]
        inner_env = dict(env)
        lets: list[tuple[str, Node]] = []
        for a in assigns:
            if not a.overwrite and a.name in env:
                continue
            if a.immediate:
                # Evaluated in the enclosing scope, as dynamicprompts does.
                lets.append((a.name, self.compile(a.value, env)))
                inner_env[a.name] = _Var(immediate=True)
            else:
                inner_env[a.name] = _Var(immediate=False, command=a.value)
        parts = [self.compile(t, inner_env) for t in tokens]
        node: Node = parts[0] if len(parts) == 1 else Seq(parts)
        for name, value in reversed(lets):
            node = Let(name, value, node)
        return node

    def _variable(self, cmd: VariableAccessCommand, env: dict[str, _Var]) -> Node:
        var = env.get(cmd.name)
        if var is None:
            if cmd.default is None:
                found = self.template.find("${" + cmd.name)
                offset = found if found >= 0 else None
                raise UndefinedVariable(
                    f"The variable '{cmd.name}' at {_at(self.template, offset)} is used but "
                    f"never set. Set it first with "
                    f"${{{cmd.name}=…}} or give a default: ${{{cmd.name}:default}}.",
                    template=self.template, offset=offset)
            return self.compile(cmd.default, env)
        if var.immediate:
            return VarRef(cmd.name)
        if cmd.name in self.var_stack:
            raise RecursiveTemplate(
                f"The variable '{cmd.name}' refers to itself, so it never ends. Change its value.",
                template=self.template)
        self.var_stack.append(cmd.name)
        try:
            assert var.command is not None
            return self.compile(var.command, env)
        finally:
            self.var_stack.pop()

    def _variant(self, cmd: VariantCommand, env: dict[str, _Var]) -> Node:
        values = cmd.values
        if not values or all(_is_empty(v) for v in values):
            match = re.search(r"(?<![$%])\{[^{}|$]*\$\$[\s|]*\}|(?<![$%])\{[~@]?[\s|]*\}",
                              self.template)
            offset = match.start() if match else None
            raise EmptyVariant(
                f"The variant at {_at(self.template, offset)} has nothing to choose from "
                "({} or {|}). Put options inside, like {red|blue}, or remove it.",
                template=self.template, offset=offset)
        if len(values) == 1 and isinstance(values[0], WildcardCommand):
            # `{__x__}` / `{2$$__x__}`: dynamicprompts turns the wildcard into a variant.
            wc = values[0]
            options, weights = self._wildcard_options(wc, env)
        else:
            options = [self.compile(v, env) for v in values]
            weights = list(cmd.weights)
        options, weights = _merge_equal_literals(options, weights)
        if cmd.min_bound == 1 and cmd.max_bound == 1:
            node: Node = Choice(options, weights)
        else:
            node = MultiPick(options, weights, cmd.min_bound, cmd.max_bound, cmd.separator)
        if isinstance(node, Choice) and node.literals is not None:
            return node  # already distinct
        if node.static and node.size <= FLATTEN_LIMIT:
            return Flat(_distinct_texts(node), node)
        return node

    def _wildcard(self, cmd: WildcardCommand, env: dict[str, _Var]) -> Node:
        options, weights = self._wildcard_options(cmd, env)
        return Choice(options, weights)

    def _wildcard_options(self, cmd: WildcardCommand, env: dict[str, _Var]
                          ) -> tuple[list[Node], list[float]]:
        name = self._wildcard_name(cmd, env)
        if self.manager is None or self.manager.path is None:
            raise MissingWildcard(
                f"The prompt uses the wildcard __{name}__ but no wildcards folder is set. "
                "Choose your wildcards folder (in the randomizer, or --wildcards DIR).",
                template=self.template, offset=self._find_wildcard(name), wildcard=name)
        values = self.manager.get_values(name)
        if not values:
            chain = "".join(f" (inside __{w}__)" for w in reversed(self.wildcard_stack))
            raise MissingWildcard(
                f"No wildcard file matches __{name}__{chain} in {self.manager.path}. Add "
                f"{name}.txt there or fix the name.",
                template=self.template, offset=self._find_wildcard(name), wildcard=name)
        if name in self.wildcard_stack:
            raise RecursiveTemplate(
                f"The wildcard __{name}__ uses itself, so it never ends. Edit its file.",
                template=self.template, offset=self._find_wildcard(name), wildcard=name)
        inner_env = env
        if cmd.variables:
            inner_env = {**env, **{k: _Var(False, v) for k, v in cmd.variables.items()}}
        bias = self.wildcard_weights.get(name, {})
        key = name if not inner_env else None
        self.wildcard_stack.append(name)
        try:
            options: list[Node] = []
            weights: list[float] = []
            for item in values.items:  # (its __iter__ is mis-annotated as returning an Iterable)
                line = str(item)
                if key is not None and (cached := self.cache.get(f"{key}\0{line}")) is not None:
                    node = cached
                else:
                    node = self.compile(parse_template(line, origin=name), inner_env)
                    if key is not None:
                        self.cache[f"{key}\0{line}"] = node
                options.append(node)
                weights.append(float(getattr(item, "weight", 1.0)) * float(bias.get(line, 1.0)))
        finally:
            self.wildcard_stack.pop()
        return options, weights

    def _wildcard_name(self, cmd: WildcardCommand, env: dict[str, _Var]) -> str:
        if isinstance(cmd.wildcard, str):
            return cmd.wildcard
        node = self.compile(cmd.wildcard, env)
        if not node.static or node.size != 1:
            raise TemplateSyntaxError(
                "A wildcard name that changes from prompt to prompt (like __{a|b}__) is not "
                "supported. Write the wildcards out: {__a__|__b__}.", template=self.template)
        return node.text(0, Ctx())

    def _find_wildcard(self, name: str) -> int | None:
        if self.wildcard_stack:
            return None
        for candidate in (f"__{name}__", f"__{name}", name):
            at = self.template.find(candidate)
            if at >= 0:
                return at
        return None


def _is_empty(cmd: Command) -> bool:
    if isinstance(cmd, LiteralCommand):
        return not cmd.literal.strip()
    if isinstance(cmd, SequenceCommand):
        return all(_is_empty(t) for t in cmd.tokens)
    return False


def _merge_equal_literals(options: list[Node], weights: list[float]
                          ) -> tuple[list[Node], list[float]]:
    seen: dict[str, int] = {}
    out: list[Node] = []
    out_w: list[float] = []
    for node, w in zip(options, weights, strict=True):
        if isinstance(node, Lit):
            at = seen.get(node.value)
            if at is not None:
                out_w[at] += w  # a repeated option is picked more often, as in the library
                continue
            seen[node.value] = len(out)
        out.append(node)
        out_w.append(w)
    return out, out_w


def _distinct_texts(node: Node) -> list[str]:
    """The texts dynamicprompts yields for a small variant, in its order, duplicates dropped."""
    ctx = Ctx()
    if isinstance(node, Choice):
        return list(dict.fromkeys(node.text(r, ctx) for r in range(node.size)))
    assert isinstance(node, MultiPick)
    option_texts = [o.all_texts() for o in node.options]
    seen: dict[str, None] = {}
    for k in range(node.k_min, node.k_max + 1):
        for combo in itertools.permutations(range(len(node.options)), k):
            for texts in itertools.product(*(option_texts[i] for i in combo)):
                if len(set(texts)) != k:
                    continue  # the library drops picks whose parts came out equal
                seen.setdefault(join_results(list(texts), node.sep), None)
    return list(seen)


# --- public API ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptSpace:
    """All prompts of one template: exact `size`, prompt by rank, weighted random draws."""

    template: str
    root: Node

    @property
    def size(self) -> int:
        return self.root.size

    def text(self, rank: int, ctx: Ctx | None = None) -> str:
        if not 0 <= rank < self.root.size:
            raise IndexError(f"prompt {rank} of {self.root.size}")
        if ctx is None:
            ctx = Ctx(cycle=rank) if self.root.static else Ctx(Random(rank), cycle=rank)
        return self.root.text(rank, ctx)

    def sample(self, rng: Random, ctx: Ctx | None = None) -> str:
        return self.root.sample(rng, ctx or Ctx(rng))

    def __iter__(self) -> Iterator[str]:
        for rank in range(self.root.size):
            yield self.text(rank)


def wildcard_manager(folder: str | Path | WildcardManager | None) -> WildcardManager | None:
    if folder is None or isinstance(folder, WildcardManager):
        return folder
    return WildcardManager(Path(folder))


def compile_template(
    template: str,
    *,
    wildcards: str | Path | WildcardManager | None = None,
    wildcard_weights: Mapping[str, Mapping[str, float]] | None = None,
    prompt_matrix: bool = False,
) -> PromptSpace:
    """Compile a template; raises a TemplateError naming the position on any problem."""
    compiler = _Compiler(template, wildcard_manager(wildcards), wildcard_weights or {})
    if prompt_matrix:
        root = _prompt_matrix(template, compiler)
    else:
        root = compiler.compile(parse_template(template), {})
    return PromptSpace(template, root)


def count_prompts(template: str, **kwargs: object) -> int:
    """The exact number of prompts a template makes (no enumeration)."""
    # *kwargs* are compile_template's own keywords, handed on as they came.
    return compile_template(template, **kwargs).size  # type: ignore[arg-type]


def split_top_level(template: str, sep: str = "|") -> list[str]:
    """Split at `sep` outside any braces (A1111's prompt matrix parts)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(template):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            parts.append(template[start:i])
            start = i + 1
    parts.append(template[start:])
    return parts


def _prompt_matrix(template: str, compiler: _Compiler) -> Node:
    """A1111's prompt matrix: `base|a|b` makes every subset of the parts after the first,
    joined with ', ', in A1111's order (subset number bits, first part lowest)."""
    check_template(template)
    raw = split_top_level(template)
    base, extras = raw[0].strip(), [p.strip().strip(",").strip() for p in raw[1:]]
    extras = [p for p in extras if p]
    base_node = compiler.compile(parse_template(base), {})
    optional: list[Node] = [
        Choice([Lit(""), compiler.compile(parse_template(p), {})], [1.0, 1.0]) for p in extras]
    bits = Seq(optional, ", ", skip_empty=True, first_fastest=True) if optional else Lit("")
    return Seq([base_node, bits], ", ", skip_empty=True)


__all__ = [
    "FLATTEN_LIMIT",
    "Ctx",
    "PromptSpace",
    "TemplateError",
    "check_template",
    "compile_template",
    "count_prompts",
    "join_results",
    "parse_template",
    "split_top_level",
    "wildcard_manager",
]
