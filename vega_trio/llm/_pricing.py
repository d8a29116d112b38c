"""What a model call costs: a price table kept as data.

The default table ships with the package as ``prices.json`` (USD per million
tokens, with the date it was checked against Anthropic's published list prices).
Settings override or extend it with :meth:`PriceTable.with_overrides`, e.g. for
OpenAI-compatible models. A model the table does not know is *reported* —
:meth:`PriceTable.cost` returns ``None`` — never silently priced (SPEC §3.5).

Cache writes cost ``input * 1.25`` and cache reads ``input * 0.10`` unless a model's
entry says otherwise. Costs are computed in decimal arithmetic and rounded to a
float once, so they are exact to the cent and beyond.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from ._protocol import Usage

__all__ = [
    "CACHE_READ_MULTIPLIER",
    "CACHE_WRITE_MULTIPLIER",
    "LongContextPrice",
    "ModelPrice",
    "PriceTable",
]

#: A (5-minute) cache write costs this many times the model's input price.
CACHE_WRITE_MULTIPLIER = Decimal("1.25")
#: A cache read costs this many times the model's input price.
CACHE_READ_MULTIPLIER = Decimal("0.10")

_MILLION = Decimal(1_000_000)
# USD per million tokens -> pico-USD (1e-12 USD) per token: times 1e12 / 1e6.
_PICO_PER_MILLION_RATE = Decimal(1_000_000)
_PICO_PER_USD = 10**12
_DATED = re.compile(r"(?:-|@)\d{8}$")
_LATEST = "-latest"
_PRICE_KEYS = frozenset({"input", "output", "cache_write", "cache_read"})
_MODEL_KEYS = _PRICE_KEYS | {"long_context", "aliases"}
_LONG_CONTEXT_KEYS = _PRICE_KEYS | {"above_tokens"}


def _dec(value: float) -> Decimal:
    # NOTE: through repr() so that 0.8 means 0.8, not its binary approximation.
    return Decimal(repr(value))


def _check_price(value: float, name: str) -> None:
    if value < 0:
        raise ValueError(f"{name} is {value}; a price must be zero or more")


@attrs.frozen(kw_only=True)
class ModelPrice:
    """A model's prices in USD per million tokens.

    ``cache_write`` and ``cache_read`` default to ``input * 1.25`` and
    ``input * 0.10``. ``long_context``, when set, replaces all four prices for a
    call whose prompt is above its threshold.
    """

    input: float
    output: float
    cache_write: float = attrs.field()
    cache_read: float = attrs.field()
    long_context: LongContextPrice | None = None
    # NOTE: cost() runs after every LLM call; convert the rates to Decimal once.
    _rates: tuple[Decimal, Decimal, Decimal, Decimal] = attrs.field(
        init=False, eq=False, repr=False, hash=False
    )
    _pico: tuple[int, int, int, int] | None = attrs.field(
        init=False, eq=False, repr=False, hash=False
    )

    @cache_write.default
    def _default_cache_write(self) -> float:
        return float(_dec(self.input) * CACHE_WRITE_MULTIPLIER)

    @cache_read.default
    def _default_cache_read(self) -> float:
        return float(_dec(self.input) * CACHE_READ_MULTIPLIER)

    def __attrs_post_init__(self) -> None:
        for name in ("input", "output", "cache_write", "cache_read"):
            _check_price(getattr(self, name), name)
        rates = (
            _dec(self.input),
            _dec(self.output),
            _dec(self.cache_write),
            _dec(self.cache_read),
        )
        object.__setattr__(self, "_rates", rates)
        # Rates in pico-USD per token are whole numbers for any price with at most six
        # decimals: then a call's cost is integer arithmetic plus one correctly rounded
        # division (the same float the Decimal path gives, several times faster).
        pico = tuple(rate * _PICO_PER_MILLION_RATE for rate in rates)
        exact = all(p == p.to_integral_value() for p in pico)
        object.__setattr__(self, "_pico", tuple(int(p) for p in pico) if exact else None)

    def rates_for(self, usage: Usage) -> ModelPrice:
        """The prices that apply to a call with this usage (the long-context
        prices when its prompt is above their threshold)."""
        long = self.long_context
        if long is not None and _prompt_tokens(usage) > long.above_tokens:
            return long.price
        return self

    def cost(self, usage: Usage) -> float:
        """What one call with this usage costs, in USD."""
        rates = self if self.long_context is None else self.rates_for(usage)
        if rates._pico is not None:
            pi, po, pw, pr = rates._pico
            pico_usd = (
                usage.input_tokens * pi
                + usage.output_tokens * po
                + usage.cache_creation_input_tokens * pw
                + usage.cache_read_input_tokens * pr
            )
            return pico_usd / _PICO_PER_USD
        input_rate, output_rate, write_rate, read_rate = rates._rates
        total = (
            usage.input_tokens * input_rate
            + usage.output_tokens * output_rate
            + usage.cache_creation_input_tokens * write_rate
            + usage.cache_read_input_tokens * read_rate
        )
        return float(total / _MILLION)


@attrs.frozen(kw_only=True)
class LongContextPrice:
    """Prices for calls whose prompt (input + cache writes + cache reads) is above
    ``above_tokens``; every token of such a call is billed at ``price``."""

    above_tokens: int
    price: ModelPrice


def _prompt_tokens(usage: Usage) -> int:
    return usage.input_tokens + usage.cache_creation_input_tokens + usage.cache_read_input_tokens


def _number(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> float | None:
    if key not in data:
        if required:
            raise ValueError(f"{where} is missing {key!r} (USD per million tokens)")
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}.{key} must be a number, got {value!r}")
    return float(value)


def _price_from_dict(data: Any, where: str, allowed: frozenset[str]) -> ModelPrice:
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be an object with 'input' and 'output' prices")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    kwargs: dict[str, Any] = {}
    for key in ("input", "output", "cache_write", "cache_read"):
        value = _number(data, key, where, required=key in ("input", "output"))
        if value is not None:
            kwargs[key] = value
    if "long_context" in data:
        long = data["long_context"]
        long_price = _price_from_dict(long, f"{where}.long_context", _LONG_CONTEXT_KEYS)
        above = long.get("above_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise ValueError(
                f"{where}.long_context.above_tokens must be a whole number of tokens, got {above!r}"
            )
        kwargs["long_context"] = LongContextPrice(above_tokens=above, price=long_price)
    try:
        return ModelPrice(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from None


def _canonical_candidates(model: str) -> list[str]:
    """``model`` and the ids it may be an alias of, most specific first."""
    candidates = [model]
    name = model
    if name.endswith(_LATEST):
        name = name[: -len(_LATEST)]
        candidates.append(name)
    undated = _DATED.sub("", name)
    if undated != name:
        candidates.append(undated)
    return candidates


def _price_map(models: Mapping[str, ModelPrice]) -> dict[str, ModelPrice]:
    return dict(models)


def _alias_map(aliases: Mapping[str, str]) -> dict[str, str]:
    return dict(aliases)


@attrs.frozen(kw_only=True)
class PriceTable:
    """Model prices, looked up by model id.

    Use :meth:`default` for the packaged table and :meth:`with_overrides` to adjust
    it. :meth:`lookup` accepts exact ids, dated snapshots
    (``claude-sonnet-4-20250514`` → ``claude-sonnet-4``), ``-latest`` aliases and the
    aliases listed in the table.
    """

    models: Mapping[str, ModelPrice] = attrs.field(converter=_price_map, hash=False)
    aliases: Mapping[str, str] = attrs.field(factory=dict, converter=_alias_map, hash=False)
    #: The day the prices were checked against their sources (``YYYY-MM-DD``).
    checked: str | None = None
    # NOTE: every spawn looks its model up; remember the answers (the table is frozen).
    _lookups: dict[str, ModelPrice | None] = attrs.field(
        init=False, factory=dict, eq=False, repr=False, hash=False
    )
    sources: tuple[str, ...] = ()

    @classmethod
    def default(cls) -> PriceTable:
        """The price table shipped with vega-trio (loaded once, then cached)."""
        return _default_table()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceTable:
        """Build a table from the ``prices.json`` form.

        Raises:
            ValueError: the data is malformed; the message names the entry.
        """
        models_data = data.get("models")
        if not isinstance(models_data, Mapping):
            raise ValueError("a price table needs a 'models' object mapping model ids to prices")
        models: dict[str, ModelPrice] = {}
        aliases: dict[str, str] = {}
        for model, entry in models_data.items():
            where = f"models[{model!r}]"
            models[model] = _price_from_dict(entry, where, _MODEL_KEYS)
            for alias in entry.get("aliases", ()):
                if not isinstance(alias, str):
                    raise ValueError(f"{where}.aliases must be a list of model ids")
                aliases[alias] = model
        checked = data.get("checked")
        return cls(
            models=models,
            aliases=aliases,
            checked=str(checked) if checked is not None else None,
            sources=tuple(str(s) for s in data.get("sources", ())),
        )

    def with_overrides(self, overrides: Mapping[str, ModelPrice | Mapping[str, Any]]) -> PriceTable:
        """A copy with some models' prices replaced or added.

        Each override replaces the model's whole entry; unless given, its cache
        prices follow from the new input price. Dicts take the ``prices.json`` form,
        e.g. ``{"openai:llama3": {"input": 0, "output": 0}}``.

        Raises:
            ValueError: an override is malformed; the message names it.
        """
        models = dict(self.models)
        for model, price in overrides.items():
            if not isinstance(price, ModelPrice):
                allowed = _MODEL_KEYS - {"aliases"}
                price = _price_from_dict(price, f"price override {model!r}", allowed)
            models[model] = price
        return attrs.evolve(self, models=models)

    def lookup(self, model: str) -> ModelPrice | None:
        """The prices of ``model``, or ``None`` when the table does not know it."""
        try:
            return self._lookups[model]
        except KeyError:
            pass
        found: ModelPrice | None = None
        for candidate in _canonical_candidates(model):
            price = self.models.get(candidate)
            if price is None and candidate in self.aliases:
                price = self.models.get(self.aliases[candidate])
            if price is not None:
                found = price
                break
        if len(self._lookups) < 1024:
            self._lookups[model] = found
        return found

    def cost(self, model: str, usage: Usage) -> float | None:
        """What one call of ``model`` with this usage costs in USD, or ``None`` for
        a model the table does not know (report it; do not guess)."""
        price = self.lookup(model)
        return None if price is None else price.cost(usage)


@functools.cache
def _default_table() -> PriceTable:
    text = importlib.resources.files("vega_trio.llm").joinpath("prices.json").read_text("utf-8")
    return PriceTable.from_dict(json.loads(text))
