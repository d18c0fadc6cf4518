"""The HTML template that lets `dvc plots show` / `dvc plots diff` render without the internet.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN. This template inlines
the bundle that ``vl-convert-python`` ships (it defines ``window.vegaEmbed``, which DVC's
plot snippets call) and drops DVC's CDN ``<script>`` tags by leaving out ``{scripts}``.
`.dvc/config` points ``plots.html_template`` at it. Regenerate after upgrading
vl-convert-python: ``python tools/offline_plots.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TEMPLATE_PATH = Path(".dvc/plots/offline.html")


def template_html() -> str:
    import vl_convert

    bundle = vl_convert.javascript_bundle().replace("</script", "<\\/script")
    return f"""<!DOCTYPE html>
<html>
<head>
    <meta charset="utf-8">
    {{refresh_tag}}
    <title>DVC Plot</title>
    <!-- Vega {vl_convert.get_vega_version()}, Vega-Embed {vl_convert.get_vega_embed_version()},
         bundled by vl-convert-python {vl_convert.__version__}; BSD-3-Clause licensed. -->
    <script type="text/javascript">
{bundle}
    </script>
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=TEMPLATE_PATH)
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(template_html(), encoding="utf-8")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
