"""The compiled form of a prompt template: nodes that know their exact size and can
produce the prompt of any rank, in dynamicprompts' combinatorial order, or a weighted random one.

Sizes are exact Python integers built from the structure (products, sums, k!·e_k for ordered
multi-picks), so nothing is ever enumerated to count.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from bisect import bisect_right
from random import Random

from dynamicprompts.commands.wrap_command import split_wrapper_string

_UNUSED_RNG = Random(0)


class Ctx:
    """Per-prompt state: values of `!` variables, the RNG for `~` nodes, the `@` cycle position."""

    __slots__ = ("vars", "rng", "cycle")

    def __init__(self, rng: Random | None = None, cycle: int = 0,
                 variables: dict[str, str] | None = None) -> None:
        self.vars = variables or {}
        # Only `~` nodes draw from it; rank-only spaces share one to save an allocation.
        self.rng = rng if rng is not None else _UNUSED_RNG
        self.cycle = cycle

    def with_var(self, name: str, value: str) -> Ctx:
        return Ctx(self.rng, self.cycle, {**self.vars, name: value})


class Node(ABC):
    """A compiled piece of a template: `size` prompts, each reachable by rank."""

    __slots__ = ("size", "static")

    size: int
    static: bool  # text depends only on rank (no `!` variables, no `~`/`@` nodes)

    @abstractmethod
    def text(self, rank: int, ctx: Ctx) -> str: ...

    @abstractmethod
    def sample(self, rng: Random, ctx: Ctx) -> str: ...

    def all_texts(self) -> list[str]:
        ctx = Ctx()
        return [self.text(r, ctx) for r in range(self.size)]


class Lit(Node):
    """Fixed text: one prompt."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value
        self.size = 1
        self.static = True

    def text(self, rank: int, ctx: Ctx) -> str:
        return self.value

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self.value


class Seq(Node):
    """Concatenation; the first part varies slowest (dynamicprompts' order) unless
    `first_fastest` (A1111's prompt matrix counts its parts like bits, first lowest)."""

    __slots__ = ("parts", "sep", "skip_empty", "first_fastest")

    def __init__(self, parts: list[Node], sep: str = "", *, skip_empty: bool = False,
                 first_fastest: bool = False) -> None:
        self.parts = parts
        self.sep = sep
        self.skip_empty = skip_empty
        self.first_fastest = first_fastest
        self.size = math.prod(p.size for p in parts)
        self.static = all(p.static for p in parts)

    def text(self, rank: int, ctx: Ctx) -> str:
        texts = [""] * len(self.parts)
        order = range(len(self.parts)) if self.first_fastest else range(len(self.parts) - 1, -1, -1)
        for i in order:
            part = self.parts[i]
            if part.size == 1:
                texts[i] = part.text(0, ctx)
            else:
                rank, sub = divmod(rank, part.size)
                texts[i] = part.text(sub, ctx)
        return self._join(texts)

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self._join([p.sample(rng, ctx) for p in self.parts])

    def _join(self, texts: list[str]) -> str:
        if self.skip_empty:
            texts = [t for t in texts if t]
        return self.sep.join(texts)


class Choice(Node):
    """Pick one of several options (a variant `{a|b}` or a wildcard's lines)."""

    __slots__ = ("options", "weights", "offsets", "literals")

    def __init__(self, options: list[Node], weights: list[float]) -> None:
        self.options = options
        self.weights = weights
        self.offsets = list(itertools.accumulate((o.size for o in options), initial=0))
        self.size = self.offsets[-1]
        self.static = all(o.static for o in options)
        literals = [o.value for o in options if isinstance(o, Lit)]
        self.literals = literals if len(literals) == len(options) else None

    def text(self, rank: int, ctx: Ctx) -> str:
        if self.literals is not None:
            return self.literals[rank]
        i = bisect_right(self.offsets, rank) - 1
        return self.options[i].text(rank - self.offsets[i], ctx)

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self.options[_weighted_index(rng, self.weights)].sample(rng, ctx)


class MultiPick(Node):
    """`{k$$a|b|c}` / `{m-n$$ sep $$…}`: ordered picks of distinct options, as dynamicprompts
    enumerates them (k ascending, option tuples in order, nested prompts first-slowest)."""

    __slots__ = ("options", "weights", "sizes", "k_min", "k_max", "sep", "blocks")

    def __init__(self, options: list[Node], weights: list[float], k_min: int, k_max: int,
                 sep: str) -> None:
        n = len(options)
        self.options = options
        self.weights = weights
        self.sizes = [o.size for o in options]
        self.k_min = max(0, min(k_min, n))
        self.k_max = max(0, min(k_max, n))
        self.sep = sep
        e = _elementary(self.sizes, self.k_max)
        self.blocks = [math.factorial(k) * e[k] for k in range(self.k_min, self.k_max + 1)]
        self.size = sum(self.blocks)
        self.static = all(o.static for o in options)

    def text(self, rank: int, ctx: Ctx) -> str:
        k = self.k_min
        for block in self.blocks:
            if rank < block:
                break
            rank -= block
            k += 1
        chosen, inner, _ = self._unrank(rank, k, list(range(len(self.options))))
        texts = [""] * len(chosen)
        for pos in range(len(chosen) - 1, -1, -1):
            option = self.options[chosen[pos]]
            inner, sub = divmod(inner, option.size)
            texts[pos] = option.text(sub, ctx)
        return join_results(texts, self.sep)

    def _unrank(self, rank: int, k: int, pool: list[int]) -> tuple[list[int], int, int]:
        """(option indices, rank within that tuple's nested product, that product's size)."""
        if k == 0:
            return [], rank, 1
        sizes = self.sizes
        e = _elementary([sizes[i] for i in pool], k - 1)
        fact = math.factorial(k - 1)
        for pos, a in enumerate(pool):
            sa = sizes[a]
            without = 1  # e_{k-1} of the pool without a, by e_j(S\a) = e_j(S) - s_a·e_{j-1}(S\a)
            for j in range(1, k):
                without = e[j] - sa * without
            block = sa * fact * without
            if rank < block:
                q = rank // sa
                rest, inner_q, product = self._unrank(q, k - 1, pool[:pos] + pool[pos + 1:])
                before = q - inner_q
                return [a, *rest], rank - sa * before, sa * product
            rank -= block
        raise IndexError("rank out of range")

    def sample(self, rng: Random, ctx: Ctx) -> str:
        k = rng.randint(self.k_min, self.k_max)
        pool = list(range(len(self.options)))
        weights = list(self.weights)
        picked: list[int] = []
        for _ in range(k):
            i = _weighted_index(rng, weights)
            picked.append(pool.pop(i))
            weights.pop(i)
        return join_results([self.options[i].sample(rng, ctx) for i in picked], self.sep)


class Flat(Node):
    """A small variant enumerated once, identical texts dropped (as dynamicprompts does);
    random draws still go through the original node so weights hold."""

    __slots__ = ("texts", "source")

    def __init__(self, texts: list[str], source: Node) -> None:
        self.texts = texts
        self.source = source
        self.size = len(texts)
        self.static = True

    def text(self, rank: int, ctx: Ctx) -> str:
        return self.texts[rank]

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self.source.sample(rng, ctx)


class Let(Node):
    """`${name=!…}`: evaluated once per prompt, so every use shows the same value; its values
    form one more axis of the space."""

    __slots__ = ("name", "value", "body")

    def __init__(self, name: str, value: Node, body: Node) -> None:
        self.name = name
        self.value = value
        self.body = body
        self.size = value.size * body.size
        self.static = False

    def text(self, rank: int, ctx: Ctx) -> str:
        vr, br = divmod(rank, self.body.size)
        return self.body.text(br, ctx.with_var(self.name, self.value.text(vr, ctx)))

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self.body.sample(rng, ctx.with_var(self.name, self.value.sample(rng, ctx)))


class VarRef(Node):
    """A use of a `!` variable: the value its Let chose for this prompt."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 1
        self.static = False

    def text(self, rank: int, ctx: Ctx) -> str:
        return ctx.vars[self.name]

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return ctx.vars[self.name]


class Wrap(Node):
    """`%{prefix...suffix$$inner}`: the inner prompt placed inside the wrapper."""

    __slots__ = ("wrapper", "inner")

    def __init__(self, wrapper: Node, inner: Node) -> None:
        self.wrapper = wrapper
        self.inner = inner
        self.size = wrapper.size * inner.size
        self.static = wrapper.static and inner.static

    def text(self, rank: int, ctx: Ctx) -> str:
        wr, ir = divmod(rank, self.inner.size)
        return self._wrap(self.wrapper.text(wr, ctx), self.inner.text(ir, ctx))

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self._wrap(self.wrapper.sample(rng, ctx), self.inner.sample(rng, ctx))

    @staticmethod
    def _wrap(wrapper: str, inner: str) -> str:
        prefix, suffix = split_wrapper_string(wrapper)
        return f"{prefix}{inner}{suffix}"


class Drawn(Node):
    """`{~…}` / `__~x__` (random) and `{@…}` / `__@x__` (cyclical): one prompt per
    combination, like dynamicprompts' combinatorial mode; the pick comes from the per-prompt
    RNG or cycle position, so a plan still reproduces from its seed."""

    __slots__ = ("inner", "cyclical")

    def __init__(self, inner: Node, cyclical: bool) -> None:
        self.inner = inner
        self.cyclical = cyclical
        self.size = 1
        self.static = False

    def text(self, rank: int, ctx: Ctx) -> str:
        if self.cyclical:
            return self.inner.text(ctx.cycle % self.inner.size, ctx)
        return self.inner.sample(ctx.rng, ctx)

    def sample(self, rng: Random, ctx: Ctx) -> str:
        return self.inner.sample(rng, ctx)


def join_results(texts: list[str], sep: str) -> str:
    """dynamicprompts' SamplingResult.joined: one result as is; else joined, one leading and
    one trailing separator removed."""
    if len(texts) == 1:
        return texts[0]
    joined = sep.join(texts)
    if sep:
        joined = joined.removeprefix(sep).removesuffix(sep)
    return joined


def _elementary(sizes: list[int], k: int) -> list[int]:
    """Elementary symmetric polynomials e_0..e_k of sizes (exact integers)."""
    e = [1] + [0] * k
    for s in sizes:
        for j in range(min(k, len(sizes)), 0, -1):
            e[j] += e[j - 1] * s
    return e


def _weighted_index(rng: Random, weights: list[float]) -> int:
    total = sum(weights)
    if total <= 0:
        return rng.randrange(len(weights))
    return rng.choices(range(len(weights)), weights=weights)[0]
