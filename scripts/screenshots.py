"""Screenshots of the example site plus a DPO and a GRPO run, for people to look at (and the README).

    PYTHONPATH=. .venv/bin/python scripts/screenshots.py [OUT_DIR]

Builds a site in a temporary folder from the three example checkpoints and the synthetic DPO, GRPO and
classification logs of the tests (`tests/test_pages.py` KIND_RUNS), serves it on loopback and saves the
index, an SFT, the DPO and the GRPO page (and the DPO page's evaluation table) in light and dark, at 1400x900 (desktop) and 390x844 (phone),
as `screenshots/<page>-<scheme>-<screen>.png` (the first screen of each page). Needs Chromium and
Playwright, like the browser tests.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from browser_support import build_site, chromium, serve  # noqa: E402
from test_browser_layout import SCHEMES, SCREENS, layout_project, open_page  # noqa: E402

PAGES = {"index": "", "sft": "models/qwen-7b/", "dpo": "models/dpo-run/", "grpo": "models/grpo-run/",
         "dpo-evaluation": "models/dpo-run/#evaluation"}  # its 9-column eval table


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else REPO / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="traindocs-screenshots-") as folder:
        site = build_site(layout_project(Path(folder)))
        with serve(site) as url, chromium() as browser:
            for page_name, path in PAGES.items():
                for scheme in SCHEMES:
                    for screen in SCREENS:
                        with open_page(browser, url + path, scheme, screen) as page:
                            target = out / f"{page_name}-{scheme}-{screen}.png"
                            page.screenshot(path=str(target))
                            print(target.relative_to(REPO) if target.is_relative_to(REPO) else target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
