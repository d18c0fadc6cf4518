import re

from helpers import REPO
from offline_plots import TEMPLATE_PATH, template_html


def test_the_committed_template_is_what_the_pinned_bundle_generates():
    # A stale template would render with an older Vega than the one pinned.
    assert (REPO / TEMPLATE_PATH).read_text(encoding="utf-8") == template_html()


def test_the_template_loads_nothing_from_the_network_and_keeps_dvcs_placeholder():
    html = (REPO / TEMPLATE_PATH).read_text(encoding="utf-8")
    assert "{plot_divs}" in html and "{scripts}" not in html  # DVC's CDN script tags are dropped
    assert not re.search(r"<script[^>]+src=", html)
    assert "window.vegaEmbed" in html
    assert "html_template = plots/offline.html" in (REPO / ".dvc" / "config").read_text()
