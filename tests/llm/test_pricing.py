"""The price table: packaged data, model id matching, exact costs, overrides."""

from __future__ import annotations

import importlib.resources
import json

import pytest

from vega_trio.llm._pricing import LongContextPrice, ModelPrice, PriceTable
from vega_trio.llm._protocol import Usage


def test_default_table_is_packaged_data_with_its_check_date() -> None:
    """The default table is loaded once from prices.json shipped inside the package."""
    data = json.loads(
        importlib.resources.files("vega_trio.llm").joinpath("prices.json").read_text("utf-8")
    )
    table = PriceTable.default()
    assert table is PriceTable.default()
    assert table.checked == "2026-11-22" == data["checked"]
    assert set(table.models) == set(data["models"])
    assert table.sources[0] == "https://platform.claude.com/docs/en/about-claude/pricing"


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("claude-opus-4-5", ModelPrice(input=5, output=25, cache_write=6.25, cache_read=0.5)),
        ("claude-opus-4-1", ModelPrice(input=15, output=75, cache_write=18.75, cache_read=1.5)),
        ("claude-opus-5-5", ModelPrice(input=4, output=20, cache_write=5, cache_read=0.2)),
        ("claude-sonnet-5-5", ModelPrice(input=2, output=10, cache_write=2.5, cache_read=0.1)),
        ("claude-sonnet-4-6", ModelPrice(input=3, output=15, cache_write=3.75, cache_read=0.3)),
        ("claude-haiku-4-5", ModelPrice(input=1, output=5, cache_write=1.25, cache_read=0.1)),
        ("claude-3-5-haiku", ModelPrice(input=0.8, output=4, cache_write=1, cache_read=0.08)),
        ("claude-3-haiku", ModelPrice(input=0.25, output=1.25, cache_write=0.3, cache_read=0.03)),
    ],
)
def test_default_prices(model: str, price: ModelPrice) -> None:
    """List prices per million tokens, with cache prices derived or overridden per model."""
    assert PriceTable.default().lookup(model) == price


def test_every_default_price_is_sane() -> None:
    """Every packaged entry has non-negative prices and output costing more than input."""
    for model, price in PriceTable.default().models.items():
        assert price.input >= 0, model
        assert price.output > price.input, model
        assert 0 <= price.cache_read < price.input < price.cache_write, model


@pytest.mark.parametrize(
    ("model", "canonical"),
    [
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-0", "claude-opus-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
    ],
)
def test_lookup_matches_dated_ids_and_aliases(model: str, canonical: str) -> None:
    """Dated snapshots, Vertex-style @dates, -latest and listed aliases find their entry."""
    table = PriceTable.default()
    assert table.lookup(model) is table.models[canonical]


@pytest.mark.parametrize("model", ["gpt-4o", "claude-sonnet-9", "claude-sonnet-4-2025", ""])
def test_unknown_models_are_not_priced(model: str) -> None:
    """A model the table does not know has no price and no cost (reported, not guessed)."""
    table = PriceTable.default()
    assert table.lookup(model) is None
    assert table.cost(model, Usage(input_tokens=1000, output_tokens=1000)) is None


def test_cost_is_exact() -> None:
    """Input, output, cache-write and cache-read tokens are each billed at their price."""
    usage = Usage(
        input_tokens=1000,
        output_tokens=500,
        cache_creation_input_tokens=2000,
        cache_read_input_tokens=10_000,
    )
    # 1000 * 3 + 500 * 15 + 2000 * 3.75 + 10000 * 0.30 = 21000 USD per million tokens
    assert PriceTable.default().cost("claude-sonnet-4-5-20250929", usage) == 0.021
    # 1000 * 0.8 + 500 * 4 + 2000 * 1 + 10000 * 0.08 = 5600
    assert PriceTable.default().cost("claude-3-5-haiku-latest", usage) == 0.0056
    assert PriceTable.default().cost("claude-opus-4-5", Usage()) == 0.0


def test_cost_of_one_token_has_no_float_error() -> None:
    """Costs are computed in decimal, so small prices do not pick up binary noise."""
    assert PriceTable.default().cost("claude-3-5-haiku", Usage(input_tokens=3)) == 0.0000024
    assert PriceTable.default().cost("claude-3-haiku", Usage(cache_read_input_tokens=7)) == 2.1e-7


def test_long_context_prices_apply_above_the_threshold() -> None:
    """A prompt above the threshold (input + cache tokens) bills every token at the
    long-context prices; at the threshold the normal prices apply."""
    table = PriceTable.default()
    at = Usage(input_tokens=140_000, cache_read_input_tokens=60_000, output_tokens=1000)
    above = Usage(input_tokens=140_001, cache_read_input_tokens=60_000, output_tokens=1000)
    # 140000 * 3 + 60000 * 0.3 + 1000 * 15 = 453000
    assert table.cost("claude-sonnet-4-5", at) == 0.453
    # 140001 * 6 + 60000 * 0.6 + 1000 * 22.5 = 898506
    assert table.cost("claude-sonnet-4-5", above) == 0.898506
    # Haiku 5.5 costs five times more above 100k prompt tokens: 100001 * 0.5 + 10 * 2.5
    assert (
        table.cost("claude-haiku-5-5", Usage(input_tokens=100_001, output_tokens=10)) == 0.0500255
    )
    assert table.cost("claude-haiku-5-5", Usage(input_tokens=100_000, output_tokens=10)) == 0.010005


def test_with_overrides_replaces_and_adds_entries() -> None:
    """Overrides (dicts or ModelPrice) replace whole entries and leave the original table alone."""
    base = PriceTable.default()
    table = base.with_overrides(
        {
            "claude-sonnet-4-5": {"input": 2, "output": 8},
            "openai:llama3": ModelPrice(input=0, output=0),
            "my-model": {"input": 1, "output": 2, "cache_read": 0.5},
        }
    )
    assert table.lookup("claude-sonnet-4-5-20250929") == ModelPrice(
        input=2, output=8, cache_write=2.5, cache_read=0.2
    )
    assert table.cost("openai:llama3", Usage(input_tokens=10**6, output_tokens=10**6)) == 0.0
    assert table.lookup("my-model") == ModelPrice(
        input=1, output=2, cache_write=1.25, cache_read=0.5
    )
    assert base.lookup("claude-sonnet-4-5") == ModelPrice(
        input=3,
        output=15,
        long_context=LongContextPrice(above_tokens=200_000, price=ModelPrice(input=6, output=22.5)),
    )
    assert table.checked == base.checked


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"input": 1}, "price override 'm' is missing 'output' (USD per million tokens)"),
        (
            {"input": -1, "output": 2},
            "price override 'm'.input is -1.0; a price must be zero or more",
        ),
        ({"input": "1", "output": 2}, "price override 'm'.input must be a number, got '1'"),
        (
            {"input": 1, "output": 2, "cache": 1},
            "price override 'm' has unknown key(s) 'cache'; "
            "expected some of cache_read, cache_write, input, long_context, output",
        ),
        (3, "price override 'm' must be an object with 'input' and 'output' prices"),
        (
            {"input": 1, "output": 2, "long_context": {"input": 2, "output": 4}},
            "price override 'm'.long_context.above_tokens must be a whole number of tokens, "
            "got None",
        ),
    ],
)
def test_bad_overrides_say_what_is_wrong(override: object, error: str) -> None:
    """A malformed override raises ValueError naming the model and the field."""
    with pytest.raises(ValueError) as excinfo:
        PriceTable.default().with_overrides({"m": override})  # type: ignore[dict-item]
    assert str(excinfo.value) == error


def test_from_dict_rejects_a_table_without_models() -> None:
    """A price file without a 'models' object is refused with a hint."""
    with pytest.raises(ValueError) as excinfo:
        PriceTable.from_dict({"checked": "2026-01-01"})
    assert str(excinfo.value) == (
        "a price table needs a 'models' object mapping model ids to prices"
    )
