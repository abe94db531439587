"""The search page the service answers ``/`` with: one self-contained HTML file, ``static/index.html``
(no build step, no external assets), calling ``GET /search?q=…&explain=true`` and showing each hit's
title, snippet and score with the matched tokens highlighted, the tokens' contributions, and the latency.

Document text reaches the page only through ``textContent`` (never ``innerHTML``), so a corpus holding
markup cannot inject any.
"""

from __future__ import annotations

import json
from pathlib import Path

PAGE = Path(__file__).with_name("static") / "index.html"


def render_page(max_query_chars: int, max_k: int) -> str:
    """The page (``static/index.html``, shipped as package data), with the service's limits on the inputs."""
    page = PAGE.read_text(encoding="utf-8")
    return page.replace("__MAX_CHARS__", json.dumps(max_query_chars)).replace("__MAX_K__", json.dumps(max_k))
