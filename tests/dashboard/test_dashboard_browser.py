"""The dashboard in a real headless Chromium (Debian's ``chromium`` driven through
``chromedriver`` by Selenium) against a real server running real tasks.

Few and meaningful: the list loads, a filter narrows it, a state change shows without a
reload, the task page shows executor logs, cancel works, and a hostile task's name,
tags and output stay inert text. Screenshots go to ``$TES_TEST_ARTIFACTS/dashboard``
(default: the test's temporary folder). scripts/test-services.sh installs the browser;
without it these tests skip, unless ``TES_REQUIRE_BROWSER`` is set (scripts/test sets it).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.api.support import NO_RUNTIME, create, executor, task
from tests.servers import TERMINAL, ServerProcess, server_env, wait_for_state

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = '<img src=x onerror="window.__pwned=1">'
WAIT = 30.0

pytestmark = pytest.mark.timeout(600)


def _browser_missing() -> str | None:
    for program in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(program):
            return f"{program} is not installed (scripts/test-services.sh installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    """One headless Chromium for the module."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("TES_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,900",
                     f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots are kept."""
    base = os.environ.get("TES_TEST_ARTIFACTS")
    folder = Path(base) / "dashboard" if base else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def tes(sqlite_server: ServerProcess) -> ServerProcess:
    """A server that runs tasks for real (the local backend)."""
    return sqlite_server


def root(server: ServerProcess) -> str:
    return server.url.removesuffix("/ga4gh/tes/v1")


def until(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except Exception as exc:  # the page is re-rendering: an element went stale
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def click(find: Callable[[], Any], what: str) -> None:
    """Click the element ``find()`` returns once it is there and enabled. Finding and
    clicking are tried again together: the page may re-render in between (stale element)."""

    def found_and_clicked() -> bool:
        element = find()
        if not element.is_enabled():
            return False
        element.click()
        return True

    until(found_and_clicked, what)


def rows(driver: Any) -> list[str]:
    """The task ids of the list's rows."""
    from selenium.webdriver.common.by import By

    return [tr.get_attribute("data-task-id")
            for tr in driver.find_elements(By.CSS_SELECTOR, "#task-rows tr[data-task-id]")]


def state_in_row(driver: Any, task_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(
        By.CSS_SELECTOR, f'#task-rows tr[data-task-id="{task_id}"] .state').text


def test_list_loads_filters_and_updates_live(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url
    quick = [create(url, task("true", name=f"dash-quick-{i}", tags={"group": "quick"}))
             for i in range(4)]
    slow = create(url, task("sleep", "3", name="dash-slow-1", tags={"group": "slow"}))
    for task_id in quick:
        wait_for_state(url, task_id, TERMINAL)
    browser.get(root(tes) + "/")
    until(lambda: set(quick + [slow]) <= set(rows(browser)), "every task in the list")
    assert "COMPLETE" in browser.find_element(By.ID, "counts").text
    browser.save_screenshot(str(shots / "list.png"))

    # The slow task finishes while the page stays open: its row changes without a reload.
    marker = browser.execute_script("window.__same_page = 1; return window.__same_page;")
    assert marker == 1
    until(lambda: state_in_row(browser, slow) == "COMPLETE", "the live state change", 60)
    assert browser.execute_script("return window.__same_page;") == 1
    # It came from the events stream (GET /events), not from polling.
    assert browser.execute_script("return document.body.dataset.live") == "events"

    # Filter by name prefix through the form (keyboard only).
    field = browser.find_element(By.ID, "f-name")
    field.clear()
    field.send_keys("dash-slow", "\n")
    until(lambda: rows(browser) == [slow], "the filtered list")
    # ... and by tag.
    browser.get(root(tes) + "/#/?tags=group%3Dquick")
    until(lambda: sorted(rows(browser)) == sorted(quick), "the tag-filtered list")
    browser.save_screenshot(str(shots / "list-filtered.png"))


def test_task_page_shows_logs_and_cancel_works(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url
    done = create(url, task("sh", "-c", "echo hello-from-stdout; echo oops-on-stderr >&2",
                            name="dash-logs"))
    wait_for_state(url, done, TERMINAL)
    browser.get(f"{root(tes)}/#/task/{done}")
    until(lambda: "hello-from-stdout" in browser.find_element(By.CSS_SELECTOR, "pre.stdout").text,
          "the stdout tail")
    assert "oops-on-stderr" in browser.find_element(By.CSS_SELECTOR, "pre.stderr").text
    assert "Exit code" in browser.find_element(By.ID, "executor-logs").text
    assert browser.find_element(By.ID, "cancel").get_attribute("disabled") is not None
    browser.save_screenshot(str(shots / "task.png"))

    running = create(url, task("sleep", "300", name="dash-cancel-me"))
    wait_for_state(url, running, {"RUNNING"})
    browser.get(f"{root(tes)}/#/task/{running}")
    click(lambda: browser.find_element(By.ID, "cancel"), "an enabled cancel button")
    browser.switch_to.alert.accept()
    wait_for_state(url, running, {"CANCELED"})
    until(lambda: "CANCELED" in browser.find_element(By.CSS_SELECTOR, ".heading .state").text,
          "the page to show CANCELED")
    browser.save_screenshot(str(shots / "task-canceled.png"))


def test_task_page_shows_a_running_executors_output_as_it_grows(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url
    counting = ("i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo live-line-$i; "
                "echo live-err-$i >&2; sleep 0.2; done")
    running = create(url, task("sh", "-c", counting, name="dash-live"))
    wait_for_state(url, running, {"RUNNING"})
    browser.get(f"{root(tes)}/#/task/{running}")

    def last_line() -> int:
        lines = browser.find_element(By.ID, "live-stdout").text.split()
        return int(lines[-1].removeprefix("live-line-")) if lines else 0

    first = until(last_line, "the running executor's stdout on the page")
    assert "live-line-1" in browser.find_element(By.ID, "live-stdout").text
    until(lambda: last_line() > first, "the page to show more lines while it runs")
    assert "live-err-" in browser.find_element(By.ID, "live-stderr").text
    assert "(running)" in browser.find_element(By.ID, "executor-logs").text
    browser.save_screenshot(str(shots / "task-live-output.png"))
    requests.post(f"{url}/tasks/{running}:cancel", timeout=WAIT)
    wait_for_state(url, running, TERMINAL)


def test_a_hostile_task_stays_text(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url
    hostile = create(url, {
        "name": HOSTILE,
        "description": "<script>window.__pwned=2</script>",
        "tags": {"ms-submitter-workflow-id": HOSTILE, "<b>k</b>": "<svg onload=alert(3)>"},
        "executors": [executor("sh", "-c", f"echo '{HOSTILE}'")],
    })
    wait_for_state(url, hostile, TERMINAL)
    for page in ("/", f"/#/task/{hostile}", "/#/workflow/" + requests.utils.quote(HOSTILE)):
        browser.get(root(tes) + page)
        until(lambda: HOSTILE in browser.find_element(By.ID, "main").text,
              f"the hostile name as text on {page}")
        assert browser.find_elements(By.CSS_SELECTOR, "#main img, #main svg, #main script") == []
        assert browser.execute_script("return window.__pwned === undefined")
        if "/task/" in page:  # the executor printed the same markup: a log is text too
            until(lambda: HOSTILE in browser.find_element(By.CSS_SELECTOR, "pre.stdout").text,
                  "the hostile stdout as text")
            browser.save_screenshot(str(shots / "hostile-task.png"))
    browser.save_screenshot(str(shots / "hostile-workflow.png"))


@pytest.fixture(scope="module")
def auth_tes(tmp_path_factory, idp) -> Iterator[ServerProcess]:
    """A server with bearer tokens on, trusting the test identity provider."""
    data_dir = tmp_path_factory.mktemp("tes-dashboard-auth")
    proc = ServerProcess(data_dir, server_env(data_dir, **idp.settings(), **NO_RUNTIME))
    yield proc.start()
    proc.stop()


def sign_in(driver: Any, token: str) -> None:
    """Paste ``token`` into the page's sign-in form, as a user does."""
    from selenium.webdriver.common.by import By

    def paste() -> bool:
        driver.find_element(By.ID, "token-input").send_keys(token, "\n")
        return True

    until(paste, "the sign-in form")


def test_a_second_user_sees_nothing_of_the_firsts(browser, auth_tes, idp, shots):
    from selenium.webdriver.common.by import By

    url = auth_tes.url
    alice = idp.token("alice")
    response = requests.post(f"{url}/tasks", json=task("true", name="alice-private"),
                             headers={"Authorization": f"Bearer {alice}"}, timeout=30)
    assert response.status_code == 200, response.text
    mine = response.json()["id"]

    browser.get(root(auth_tes) + "/")
    sign_in(browser, idp.token("bob"))
    until(lambda: "No tasks match." in browser.find_element(By.ID, "task-rows").text,
          "bob's empty list")
    assert "All: 0" in browser.find_element(By.ID, "counts").text
    browser.get(f"{root(auth_tes)}/#/task/{mine}")
    until(lambda: "no task" in browser.find_element(By.ID, "status").text, "a 404 for bob")
    assert "alice-private" not in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(shots / "second-user.png"))

    browser.find_element(By.XPATH, "//button[text()='Sign out']").click()
    browser.get(root(auth_tes) + "/")
    sign_in(browser, alice)
    until(lambda: rows(browser) == [mine], "alice's own task")
    until(lambda: "All: 1" in browser.find_element(By.ID, "counts").text, "alice's count")
    browser.execute_script("sessionStorage.clear()")


def test_workflow_page_draws_each_task_on_one_time_axis(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url
    tags = {"ms-submitter-workflow-id": "wf-dash-1", "ms-submitter-workflow-name": "align"}
    ids = [create(url, task("sleep", "1", name=f"align.call{i}", tags=tags)) for i in range(3)]
    for task_id in ids:
        wait_for_state(url, task_id, TERMINAL)
    browser.get(root(tes) + "/#/?tags=ms-submitter-workflow-id%3Dwf-dash-1")
    click(lambda: browser.find_element(By.LINK_TEXT, "align"), "the workflow link")
    until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#gantt li")) == 3, "three bars")
    bars = browser.find_elements(By.CSS_SELECTOR, "#gantt .ran.COMPLETE")
    assert len(bars) == 3
    assert all(bar.size["width"] > 0 for bar in bars)
    assert "COMPLETE: 3" in browser.find_element(By.ID, "main").text
    browser.save_screenshot(str(shots / "workflow.png"))


@pytest.fixture(scope="module")
def oidc_tes(tmp_path_factory, idp) -> Iterator[ServerProcess]:
    """A server with bearer tokens on whose dashboard signs users in at the provider."""
    data_dir = tmp_path_factory.mktemp("tes-dashboard-oidc")
    settings = idp.settings(TES_DASHBOARD_OIDC_CLIENT_ID="tes-dashboard",
                            TES_DASHBOARD_OIDC_SCOPE="openid api://tes-test/.default")
    proc = ServerProcess(data_dir, server_env(data_dir, **settings, **NO_RUNTIME))
    yield proc.start()
    proc.stop()


def test_signing_in_through_the_identity_provider(browser, oidc_tes, idp, shots):
    from selenium.webdriver.common.by import By

    url = oidc_tes.url
    idp.login_subject = "carol"
    response = requests.post(f"{url}/tasks", json=task("true", name="carols-task"),
                             headers={"Authorization": f"Bearer {idp.token('carol')}"},
                             timeout=30)
    assert response.status_code == 200, response.text
    carols = response.json()["id"]
    browser.get(root(oidc_tes) + "/")
    browser.execute_script("sessionStorage.clear()")
    browser.get(root(oidc_tes) + "/#/?name_prefix=carol")
    click(lambda: browser.find_element(By.ID, "oidc-signin"), "the sign-in button")
    # To the provider and back (a code, traded for a token with the PKCE verifier).
    until(lambda: rows(browser) == [carols], "carol's task after signing in")
    assert "code=" not in browser.current_url  # the code is gone from the address
    assert browser.current_url.endswith("#/?name_prefix=carol")  # back where she was
    assert not idp.codes  # the code was used, once
    browser.save_screenshot(str(shots / "oidc-signed-in.png"))
    browser.execute_script("sessionStorage.clear()")


def group_headings(driver: Any) -> list[tuple[str, list[str]]]:
    """The grouped list: each heading row's text and the task ids of the rows under it."""
    return driver.execute_script("""
        const groups = [];
        for (const tr of document.querySelectorAll("#task-rows tr")) {
            if (tr.classList.contains("group-row")) groups.push([tr.textContent, []]);
            else if (tr.dataset.taskId && groups.length) groups.at(-1)[1].push(tr.dataset.taskId);
        }
        return groups;""")


def test_list_groups_tasks_by_workflow_and_stage(browser, tes, shots):
    from selenium.webdriver.common.by import By

    url = tes.url

    def submitted(name: str, **tags: str) -> str:
        return create(url, task("true", name=name, tags={f"ms-submitter-{k}": v
                                                         for k, v in tags.items()}))

    # Created oldest first: the list (newest first) shows them in reverse.
    align = [submitted(f"grp-align-{i}", **{"workflow-id": "wf-g1", "workflow-name": "exome",
                                             "workflow-stage": "align"}) for i in range(2)]
    call = submitted("grp-call", **{"workflow-id": "wf-g1", "workflow-name": "exome",
                                     "workflow-stage": "call"})
    other = submitted("grp-other", **{"workflow-id": "wf-g2"})
    loose = create(url, task("true", name="grp-loose"))
    browser.get(root(tes) + "/#/?name_prefix=grp-")
    until(lambda: len(rows(browser)) == 5, "the five tasks, ungrouped")
    assert group_headings(browser) == []
    # Grouping is one checkbox of the filter form (keyboard: space, then Enter on Apply).
    box = browser.find_element(By.ID, "f-group")
    box.send_keys(" ")
    box.submit()
    until(lambda: "group=workflow" in browser.current_url, "the grouped list's address")
    groups = until(lambda: len(group_headings(browser)) == 4 and group_headings(browser),
                   "four groups")
    assert groups == [
        ["Workflow wf-g2 · no stage (1 task)", [other]],
        ["Workflow exome · stage call (1 task)", [call]],
        ["Workflow exome · stage align (2 tasks)", list(reversed(align))],
        ["No submitter workflow (1 task)", [loose]],
    ]
    link = browser.find_element(By.CSS_SELECTOR, "tr.group-row a")
    assert link.get_attribute("href").endswith("#/workflow/wf-g2")
    browser.save_screenshot(str(shots / "list-grouped.png"))


CONTRAST = """
// WCAG 2 contrast of every visible text against the background it is drawn on.
function channels(text) {
    const m = text.match(/rgba?\\(([^)]+)\\)/);
    const [r, g, b, a] = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return [r, g, b, a === undefined ? 1 : a];
}
function luminance([r, g, b]) {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
}
function over(top, bottom) {  // alpha compositing of two colours
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
}
function background(node) {
    const layers = [];
    for (let n = node; n && n.nodeType === 1; n = n.parentElement) {
        const bg = channels(getComputedStyle(n).backgroundColor);
        if (bg[3] > 0) layers.push(bg);
        if (bg[3] >= 1) break;
    }
    let colour = [255, 255, 255, 1];
    for (const layer of layers.reverse()) colour = over(layer, colour);
    return colour;
}
const failures = [];
let checked = 0;
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let t = walker.nextNode(); t; t = walker.nextNode()) {
    const node = t.parentElement;
    if (!t.textContent.trim() || !node || node.closest("option, [disabled], .skip")) continue;
    if (!node.getClientRects().length) continue;
    const style = getComputedStyle(node);
    if (style.visibility === "hidden") continue;
    const bg = background(node);
    const fg = over(channels(style.color), bg);
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
    const needed = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    checked += 1;
    if (ratio < needed) {
        const text = t.textContent.trim().slice(0, 40);
        failures.push(`${ratio.toFixed(2)} < ${needed}: "${text}" (${style.color} on ${bg})`);
    }
}
return [checked, failures];
"""


def test_phone_width_and_contrast(browser, tes, shots):
    url = tes.url
    tags = {"ms-submitter-workflow-id": "wf-phone", "ms-submitter-workflow-name": "a-rather-long"
            "-workflow-name-that-could-push-the-page-sideways", "ms-submitter-workflow-stage":
            "stage-with-a-long-name-too"}
    long_name = "phone-" + "x" * 120
    done = create(url, task("sh", "-c", "echo " + "y" * 300 + "; exit 3", name=long_name,
                            tags=tags))
    waiting = create(url, task("sleep", "30", name="phone-running", tags=tags))
    wait_for_state(url, done, TERMINAL)
    pages = {"list": "/#/?name_prefix=phone-", "grouped": "/#/?name_prefix=phone-&group=workflow",
             "task": f"/#/task/{done}", "workflow": "/#/workflow/wf-phone"}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 375, "height": 812, "deviceScaleFactor": 2, "mobile": True})
    try:
        for label, page in pages.items():
            browser.get(root(tes) + page)
            until(lambda: long_name in browser.find_element("id", "main").text
                  or "wf-phone" in browser.find_element("id", "main").text, f"the {label} page")
            until(lambda: browser.execute_script("return window.innerWidth") == 375,
                  "the phone viewport")
            widths = browser.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]")
            browser.save_screenshot(str(shots / f"phone-{label}.png"))
            assert widths[0] <= widths[1], f"{label}: the page scrolls sideways at 375 px {widths}"
            if label in ("list", "grouped"):  # the list itself is cards, not a wide table
                until(lambda: browser.find_element("id", "list-caption").text.endswith(
                    ": 2 on this page"), "this list's caption")
                table = browser.execute_script(
                    "const t = document.getElementById('tasks');"
                    "return [t.scrollWidth, t.parentElement.clientWidth]")
                assert table[0] <= table[1], f"{label}: the task list scrolls sideways {table}"
            checked, failures = browser.execute_script(CONTRAST)
            assert checked > 10, f"{label}: only {checked} texts found"
            assert not failures, f"{label}: text below WCAG AA contrast: {failures}"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        requests.post(f"{url}/tasks/{waiting}:cancel", timeout=30)
