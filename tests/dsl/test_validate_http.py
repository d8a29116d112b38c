"""``vega-trio validate`` on http tools: a warning when the model picks the server and no
allow-list limits it; allow-list entries checked like the tool checks them."""

from __future__ import annotations

import pytest

from vega_trio.dsl import load_document, validate_text

DOCUMENT = """\
tools:
  fetch:
    description: Fetch a page.
    params:
      - {{name: target, type: string, required: true}}
    implementation:
      type: http
      url: "{url}"
{extra}agents:
  a:
    tools: [fetch]
"""


def _document(url: str, allowed: str | None = None) -> str:
    extra = "" if allowed is None else f"      allowed_hosts: {allowed}\n"
    return DOCUMENT.format(url=url, extra=extra)


def test_model_chosen_url_without_allow_list_warns() -> None:
    """``url: "{{target}}"`` without allowed_hosts is a warning at the url, naming the
    parameter and how to limit it; the document still loads."""
    text = _document("{{target}}")
    (diagnostic,) = validate_text(text, file="t.vega.yaml")
    assert diagnostic.severity == "warning"
    assert str(diagnostic).startswith(
        "t.vega.yaml:8:12: warning: tools.fetch.implementation.url: the parameter 'target' "
        "decides which server this http tool calls and it has no allowed_hosts"
    )
    assert "allowed_hosts: [api.example.com]" in str(diagnostic)
    assert load_document(text).tools[0].name == "fetch"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("{{target}}", "[api.example.com]"),
        ("{{.target}}", "['*.example.com', 10.0.0.0/8, '[::1]:8080']"),
        ("https://api.example.com/v1/{{target}}", None),
        ("https://api.example.com/search?q={{target}}", None),
    ],
)
def test_fixed_host_or_allow_list_does_not_warn(url: str, allowed: str | None) -> None:
    """A URL whose host is written out, or any allow-list, gives no warning."""
    assert validate_text(_document(url, allowed)) == []


@pytest.mark.parametrize("entry", ["'10.0.0.1/8'", "'https://api.example.com/'", "'x.test:99999'"])
def test_invalid_allow_list_entry_is_an_error(entry: str) -> None:
    """An allow-list entry the tool would refuse is a validation error at the tool."""
    (diagnostic,) = validate_text(_document("https://api.example.com/{{target}}", f"[{entry}]"))
    assert diagnostic.severity == "error"
    assert "allowed host" in diagnostic.message
