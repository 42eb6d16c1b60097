"""Browser tests of the staff UI: Debian's Chromium driven by Playwright.

`playwright install` cannot download a browser here, so the tests launch
/usr/bin/chromium (`apt-get install -y chromium`). Without it the UI tests
are skipped with one loud line, except under CI=true, where a missing browser
is a failure: CI must never pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("ONHAND_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MISSING = (f"UI browser tests SKIPPED: no Chromium at {CHROMIUM}; install it with "
           "`apt-get install -y chromium` (CI=true makes this a failure)")


def _ui_items(items):
    here = Path(__file__).parent
    return [i for i in items if here in Path(str(i.fspath)).parents]


def pytest_collection_modifyitems(config, items):
    ui = _ui_items(items)
    if not ui or CHROMIUM.exists():
        return
    if os.environ.get("CI") == "true":
        return  # the browser fixture fails them
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(MISSING, yellow=True, bold=True)
    skip = pytest.mark.skip(reason=MISSING)
    for item in ui:
        item.add_marker(skip)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module. This replaces pytest-playwright's
    session-wide browser: Playwright's sync API keeps an event loop running
    in the main thread for as long as it lives, and the suite's asyncio tests
    that run after the UI tests would then fail ("Cannot run the event loop
    while another loop is running"). Ending it with each module ends that loop."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():  # only under CI=true: elsewhere the tests were skipped
        pytest.fail(f"CI=true and no Chromium at {CHROMIUM}: .ci/run installs it (apt-get install -y chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where the tests leave screenshots (tmp/artifacts/ui in the checkout)."""
    path = Path(os.environ.get("ONHAND_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "tmp" / "artifacts"))
    path = path / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def stack(redis_url, module_database_url):
    from tests.ui.support import ui_stack

    with ui_stack(redis_url, module_database_url) as s:
        yield s


@pytest.fixture(scope="module")
def admin_context(browser, stack):
    """A browser context signed in as the first admin (shared by a module's tests)."""
    from tests.ui.support import login

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    login(page, stack.base_url)
    page.close()
    yield context
    context.close()
