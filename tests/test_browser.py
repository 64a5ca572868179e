"""The learner's environment in a real browser: JupyterLab driven through Chromium, and the book.

The test starts ``jupyter lab`` from ``.venv`` (the settings ``make lab`` uses) on a free loopback
port with a token and fresh config, settings and workspace folders, over a temporary copy of a
teaching notebook and an exercise notebook (the repository's files are never touched). Through
playwright and Debian's Chromium it then

1. opens the teaching notebook, runs every cell with JupyterLab's own Run > Run All Cells, and
   checks that no cell shows a traceback and that the saved file has every output;
2. opens the exercise notebook, types a correct answer into a graded cell's editor, runs the
   notebook and reads full points under the answer's ``check(...)`` cell;
3. builds the course book from the notebook executed in step 1 and opens its page from
   ``file://``: a formula is typeset by the book's own MathJax and the plot image has loaded;
4. opens chapter 10 (HNSW), runs it, finds its index explorer (an ipywidgets slider over the
   measured values of ``ef``), presses the arrow key on the slider's handle, and checks that the
   explorer's printed point and its figure change.

Screenshots of each step go to ``build/screenshots/``.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from embedlab import book, lab
from embedlab.course import CHAPTERS

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TEACHING = "17_k_closest_points.ipynb"
EXPLORER = "10_hnsw.ipynb"  # a chapter with an index explorer (embedlab.widgets.explore)
EXERCISE = "17_k_closest_points.ipynb"
GRADED = "17.heap"
# A correct answer, typed into the graded cell: one pass over any iterable, a heap of k entries.
ANSWER = '''def sift_up(heap, pos):
    while pos > 0 and heap[pos] > heap[(pos - 1) // 2]:
        up = (pos - 1) // 2
        heap[pos], heap[up] = heap[up], heap[pos]
        pos = up


def sift_down(heap, pos):
    while 2 * pos + 1 < len(heap):
        child = 2 * pos + 1
        if child + 1 < len(heap) and heap[child + 1] > heap[child]:
            child += 1
        if not heap[child] > heap[pos]:
            break
        heap[pos], heap[child] = heap[child], heap[pos]
        pos = child


def k_closest_heap(points, k):
    if k < 1:
        raise ValueError("k must be at least 1")
    heap, n = [], 0
    for i, point in enumerate(points):
        n += 1
        item = (sum(float(x) * float(x) for x in point), i)
        if len(heap) < k:
            heap.append(item)
            sift_up(heap, len(heap) - 1)
        elif item < heap[0]:
            heap[0] = item
            sift_down(heap, 0)
    if k > n:
        raise ValueError("k is larger than the number of points")
    return [i for _, i in sorted(heap)]
'''
VISIBLE_NB = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook"
ALL_RUN = """() => {
  const nb = document.querySelector('NOTEBOOK');
  if (!nb) return false;
  const ps = [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .map(e => e.textContent.trim());
  return ps.length > 0 && !ps.some(t => t.includes('*')) && /\\[\\d+\\]/.test(ps[0]);
}""".replace("NOTEBOOK", VISIBLE_NB)
# Something has been queued or run: a prompt shows '*' or an execution count.
STARTED = r"""() => {
  const nb = document.querySelector('NOTEBOOK');
  if (!nb) return false;
  return [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')]
    .some(e => /\*|\d/.test(e.textContent));
}""".replace("NOTEBOOK", VISIBLE_NB)
# The notebook toolbar's kernel indicator once its kernel has started and answers.
KERNEL_IDLE = (".jp-NotebookPanel:not(.lm-mod-hidden) "
               ".jp-Notebook-ExecutionIndicator[data-status='idle']")


def _chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.fail("playwright (Python) is missing: `make setup` installs it from "
                    "requirements.lock (.venv/bin/python -m pip install -r requirements.lock)")
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is missing: install Debian's package with "
                    "`apt-get update && apt-get install -y chromium` (as root; .ci/run does it). "
                    "Playwright's own browser download is not used.")
    return path


def _wait_http(url: str, seconds: float, proc: subprocess.Popen, log: Path) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _server(home: Path):
    served = home / "course"
    (served / "notebooks").mkdir(parents=True)
    (served / "exercises").mkdir()
    shutil.copy(ROOT / "notebooks" / TEACHING, served / "notebooks" / TEACHING)
    shutil.copy(ROOT / "notebooks" / EXPLORER, served / "notebooks" / EXPLORER)
    shutil.copy(ROOT / "exercises" / EXERCISE, served / "exercises" / EXERCISE)
    settings = home / "settings"
    for plugin, values in {
        # every cell in the page (no virtual scrolling), so each one can be read
        "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                        "checkForUpdates": False},
    }.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    env = lab.lab_env(os.environ)
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend, as a learner gets it
    env.pop("EMBEDLAB_STATIC", None)  # live widgets: the explorer shows its sliders
    env["TQDM_DISABLE"] = "1"
    env.update(EMBEDLAB_PROFILE="ci", EMBEDLAB_REPORT=str(home / "records.jsonl"),
               JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "run"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(settings))
    port, token = lab.free_port(0), secrets.token_hex(16)
    log = home / "server.log"
    cmd = lab.lab_command(port, served) + [f"--IdentityProvider.token={token}", "--no-browser"]
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=served)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/status?token={token}", 120, proc, log)
        yield {"base": base, "token": token, "served": served, "home": home, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def _browser_page(server: dict):
    exe = _chromium()
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(server["home"] / "chromium-profile"), executable_path=exe, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            ctx.close()


def _open(page, server, path: str) -> None:
    page.goto(f"{server['base']}/lab/tree/{path}?token={server['token']}&reset")
    page.wait_for_selector(f"{VISIBLE_NB} .jp-CodeCell .cm-content")


def _menu(page, menu: str, item: str) -> None:
    """Click ``menu`` in JupyterLab's menu bar, then the item labelled ``item``."""
    page.locator(f"{VISIBLE_NB} .jp-Cell").first.click()
    page.locator(".lm-MenuBar-item", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-item:not(.lm-mod-disabled)",
                 has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$"))).click()


def _run_all_and_save(page, nb_file: Path, seconds: float) -> dict:
    """Run every cell from the menu, wait for the last, save. On a loaded machine a Run All
    clicked before the kernel is connected can be dropped (no cell queued, prompts stay
    "[ ]"), so wait for the kernel to report idle first, and click once more if nothing starts."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.wait_for_selector(KERNEL_IDLE, state="attached", timeout=120_000)
    _menu(page, "Run", "Run All Cells")
    try:
        page.wait_for_function(STARTED, timeout=30_000, polling=500)
    except PlaywrightTimeout:
        _menu(page, "Run", "Run All Cells")
    page.wait_for_function(ALL_RUN, timeout=seconds * 1000, polling=500)
    _menu(page, "File", "Save Notebook")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 20:
        nb = _read_saved(nb_file)
        codes = [c for c in nb["cells"] if c["cell_type"] == "code"]
        if codes and all(c.get("execution_count") for c in codes):
            return nb
        time.sleep(0.5)
    return _read_saved(nb_file)


def _read_saved(path: Path, seconds: float = 10.0) -> dict:
    """A notebook the server saves: a read that lands while it writes the file sees it
    truncated (CI saw an empty file), so read again until it parses."""
    t0 = time.monotonic()
    while True:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            if time.monotonic() - t0 > seconds:
                raise
            time.sleep(0.2)


def _tracebacks(page) -> list[str]:
    sel = (f"{VISIBLE_NB} .jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return [t for t in page.locator(sel).all_inner_texts() if "Traceback" in t]


def test_jupyterlab_and_the_book_in_a_browser(tmp_path) -> None:
    """One test, so that pytest-xdist keeps the three steps on one worker, in order."""
    _chromium()  # a missing browser fails here, before anything starts
    with _server(tmp_path) as server, _browser_page(server) as page:
        _teaching_notebook_runs(server, page)
        _exercise_answer_typed_in_the_editor_scores(server, page)
        _book_page_reads_offline(server, page, tmp_path)
        _explorer_slider_redraws(server, page)


def _teaching_notebook_runs(server: dict, page) -> None:
    _open(page, server, f"notebooks/{TEACHING}")
    nb = _run_all_and_save(page, server["served"] / "notebooks" / TEACHING, 240)
    page.screenshot(path=str(SHOTS / "lab_teaching_notebook.png"))
    assert not _tracebacks(page), f"a cell shows a traceback: {_tracebacks(page)[0][:2000]}"
    codes = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [o for c in codes for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{errors[0]['ename']}: {errors[0]['evalue']}"
    assert all(c.get("execution_count") for c in codes), "not every cell ran (or was saved)"
    images = [o for c in codes for o in c["outputs"] if "image/png" in o.get("data", {})]
    assert images, "the chapter's plots did not render inline"
    assert nb["metadata"]["kernelspec"]["name"] in {"python3", "embedlab"}
    log = server["log"].read_text()
    assert "Kernel started" in log
    assert "without encryption" not in log, "the kernel still warns about unencrypted TCP"


def _exercise_answer_typed_in_the_editor_scores(server: dict, page) -> None:
    nb_file = server["served"] / "exercises" / EXERCISE
    cells = json.loads(nb_file.read_text())["cells"]
    graded = next(i for i, c in enumerate(cells) if c["metadata"].get("exercise") == GRADED)
    check = next(i for i in range(graded + 1, len(cells))
                 if "check(" in "".join(cells[i]["source"]))
    _open(page, server, f"exercises/{EXERCISE}")
    cell = page.locator(f"{VISIBLE_NB} .jp-Cell").nth(graded)
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(ANSWER)  # the editor's own text input, as a paste or an IME does
    assert "sift_down(heap, 0)" in editor.inner_text()
    nb = _run_all_and_save(page, nb_file, 180)
    out = page.locator(f"{VISIBLE_NB} .jp-Cell").nth(check)
    out.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "lab_exercise_checked.png"))
    text = out.locator(".jp-OutputArea").inner_text()
    m = re.search(r"total\s+([\d.]+)\s*/\s*([\d.]+)", text)
    assert m, f"no score under the check cell:\n{text}"
    assert float(m.group(1)) == float(m.group(2)) > 0, f"the correct answer lost points:\n{text}"
    saved = "".join(nb["cells"][graded]["source"])
    assert "sift_down(heap, 0)" in saved, "the answer was not saved"


def _book_page_reads_offline(server: dict, page, tmp_path: Path) -> None:
    executed = server["served"] / "notebooks" / TEACHING
    nb = _read_saved(executed)
    if not any(c.get("execution_count") for c in nb["cells"] if c["cell_type"] == "code"):
        pytest.fail("the teaching notebook was not executed by the JupyterLab test")
    index = book.build_book(executed.parent, tmp_path / "book", only=["17"], quiet=True)
    assert index.exists()
    page_file = index.parent / "notebooks" / TEACHING.replace(".ipynb", ".html")
    assert page_file.exists(), "no page for the chapter"
    home = index.read_text(encoding="utf-8")
    missing = [title for _, title in CHAPTERS.values() if html.escape(title) not in home]
    assert not missing, f"the home page's chapter table lacks {missing}"
    assert not book.offline_problems(index.parent)
    page.goto(page_file.as_uri())
    page.wait_for_function(
        "() => document.querySelector('.MathJax, .MathJax_CHTML, .MathJax_Display, mjx-container')"
        " !== null", timeout=30_000)
    widths = page.eval_on_selector_all(
        ".jupyter-wrapper img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert widths and all(w > 0 for w in widths), f"plot images did not load: {widths}"
    page.locator(".jupyter-wrapper img").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "book_chapter_page.png"))


def test_book_without_executed_notebooks_says_what_to_run(tmp_path) -> None:
    with pytest.raises(book.BookError, match="make course"):
        book.build_book(tmp_path / "none", tmp_path / "book", quiet=True)


def test_book_links_point_at_pages() -> None:
    text = "[glossary](../docs/glossary.md#tau), [ch](01_x.ipynb), [ex](../exercises/01_x.ipynb)"
    assert book.rewrite_links(text) == ("[glossary](../docs/glossary.html#tau), [ch](01_x.html), "
                                        "[ex](../exercises/01_x.ipynb)")
    assert book.rewrite_links("[web](https://example.org/a.md)") == "[web](https://example.org/a.md)"


def test_kernels_are_encrypted_by_configuration() -> None:
    import zmq

    assert zmq.has("curve"), "pyzmq without CurveZMQ: kernels would fall back to plain TCP"
    assert lab.kernel_config().KernelManager.transport_encryption == "auto"
    spec = json.loads((Path(sys.prefix) / "share" / "jupyter" / "kernels" / "embedlab" /
                       "kernel.json").read_text())
    assert "curve" in spec["metadata"]["supported_encryption"]


def test_lab_port_busy_picks_another() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert not lab.port_is_free(busy)
        other = lab.free_port(busy)
        assert other != busy and lab.port_is_free(other)
    cmd = lab.lab_command(other)
    assert f"--ServerApp.root_dir={ROOT}" in cmd and "--ServerApp.port_retries=0" in cmd


def _explorer_slider_redraws(server: dict, page) -> None:
    """Chapter 10's index explorer in a live kernel: moving the ``ef`` slider redraws it."""
    _open(page, server, f"notebooks/{EXPLORER}")
    _run_all_and_save(page, server["served"] / "notebooks" / EXPLORER, 420)
    assert not _tracebacks(page), f"a cell shows a traceback: {_tracebacks(page)[0][:2000]}"
    cells = json.loads((server["served"] / "notebooks" / EXPLORER).read_text())["cells"]
    at = next(i for i, c in enumerate(cells) if "explore(" in "".join(c["source"]))
    cell = page.locator(f"{VISIBLE_NB} .jp-Cell").nth(at)
    cell.scroll_into_view_if_needed()
    handle = cell.locator(".widget-slider .noUi-handle").first
    handle.wait_for(state="visible", timeout=60_000)
    text = cell.locator(".widget-output")
    page.wait_for_function(
        "(el) => el.innerText.includes('recall@10')", arg=text.element_handle(), timeout=60_000)
    before = text.inner_text()
    image_before = cell.locator(".widget-output img").first.get_attribute("src")
    page.screenshot(path=str(SHOTS / "lab_explorer_before.png"))
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([el, old]) => el.innerText.includes('recall@10') && el.innerText !== old",
        arg=[text.element_handle(), before], timeout=60_000)
    after = text.inner_text()
    page.wait_for_function(  # the new figure, fully loaded, before the screenshot
        "([el, old]) => { const i = el.querySelector('img'); return i && i.src !== old && "
        "i.complete && i.naturalWidth > 0; }", arg=[text.element_handle(), image_before],
        timeout=60_000)
    page.wait_for_selector(KERNEL_IDLE, state="attached", timeout=60_000)  # the redraw ended
    page.evaluate("async (el) => { await el.querySelector('img').decode(); }",
                  text.element_handle())
    cell.scroll_into_view_if_needed()
    page.wait_for_timeout(3000)  # and the browser painted the decoded figure
    page.screenshot(path=str(SHOTS / "lab_explorer_after.png"))
    png = page.evaluate("(el) => el.querySelector('img').src.length", text.element_handle())
    assert png > len(image_before) // 3, "the redrawn figure is nearly blank"
    assert after != before and "ef=" in after, f"the explorer did not redraw:\n{after}"
    assert cell.locator(".widget-output img").first.get_attribute("src") != image_before
