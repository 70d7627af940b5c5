"""Templates that need no inline script or style (the headers of every answer: tests/app/test_headers.py)."""

from __future__ import annotations

from importlib.resources import files

import pytest

from ..helpers import inline_problems

# --- Templates ----------------------------------------------------------------------------------

TEMPLATES = sorted(
    (entry.name if parent is None else f"{parent.name}/{entry.name}", entry)
    for parent, entries in [(None, list(files("usetix").joinpath("templates").iterdir()))]
    + [(d, list(d.iterdir())) for d in files("usetix").joinpath("templates").iterdir() if d.is_dir()]
    for entry in entries if entry.name.endswith(".html")
)


def test_templates_are_found():
    names = [name for name, _ in TEMPLATES]
    assert "base.html" in names and "dashboard/api_token_reveal.html" in names and len(names) >= 10


@pytest.mark.parametrize("name, template", TEMPLATES, ids=[name for name, _ in TEMPLATES])
def test_template_has_no_inline_script_or_style(name, template):
    assert inline_problems(template.read_text()) == []


def test_the_finder_finds_what_it_should():
    # The checks above are only as good as this parser.
    assert inline_problems('<script>alert(1)</script><style>p{}</style><p style="x" onclick="y">'
                           '<a href="JavaScript:alert(1)">') == [
        "inline <script>", "<style> element", "style attribute on <p>", "onclick handler on <p>",
        "javascript: URL in <a href>"]
    assert inline_problems('<script src="/static/reveal.js"></script>') == []
