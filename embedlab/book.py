"""The course book: a static site of the executed chapters that reads with no network.

``build_book()`` (``make book``, ``embedlab book``) takes the executed notebooks of the last
``make course`` (``build/course/NN_*.ipynb``), stages them with the solutions, the exercise
notebooks (as downloads), the study guide and the glossary of ``docs/`` into ``build/book-src/``,
and builds ``build/book/`` with MkDocs, the Material theme and mkdocs-jupyter (``mkdocs.yml``).

Everything a page loads ships in the site: Material's own scripts and search, system fonts
(``theme.font: false``), MathJax 2 copied from the ``jupyter-server-mathjax`` package, and no
Mermaid loader (nbconvert's template would import Mermaid from a CDN; no chapter draws a Mermaid
diagram, so that script is removed). ``offline_problems()`` lists any ``http(s)://`` script or
stylesheet left in the site; the build fails when there is one.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

from embedlab.course import CHAPTERS

ROOT = Path(__file__).resolve().parent.parent
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


class BookError(RuntimeError):
    """The book cannot be built; the message says what to run."""


# --------------------------------------------------------------------------- staging
_LINK = re.compile(r"\]\((?!https?:|#|/|mailto:)([^)\s#]+)\.(md|ipynb)(#[^)\s]*)?\)")


def rewrite_links(text: str) -> str:
    """Relative links to ``.md`` pages and rendered notebooks point at their ``.html`` pages;
    links into ``exercises/`` stay ``.ipynb`` (the site offers those notebooks as downloads)."""

    def sub(m: re.Match) -> str:
        path, ext, anchor = m.group(1), m.group(2), m.group(3) or ""
        if ext == "ipynb" and "exercises/" in path:
            return m.group(0)
        return f"]({path}.html{anchor})"

    return _LINK.sub(sub, text)


def _stage_notebook(src: Path, dst: Path) -> None:
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = rewrite_links(text)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(nb, indent=1), encoding="utf-8")


def executed_chapters(src: Path, only: list[str] | None = None) -> dict[str, Path]:
    """Chapter number -> executed notebook in ``src``, for the chapters that have one."""
    found = {}
    for num, (stem, _) in CHAPTERS.items():
        if only and num not in only:
            continue
        path = src / f"{num}_{stem}.ipynb"
        if path.exists():
            found[num] = path
    return found


def _profile_of(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            m = re.search(r'profile\s*=\s*"(\w+)"', "".join(cell["source"]))
            if m:
                return m.group(1)
    return "standard"


def home_page(chapters: dict[str, Path], root: Path, built_from: str, profile: str) -> str:
    lines = [
        "# embedlab: the course book",
        "",
        "Embeddings, contrastive learning and vector search, built from scratch and measured. "
        "Each chapter page below is a notebook of the course as it ran, with its outputs and "
        f"plots (profile `{profile}`, from `{built_from}`). The notebooks themselves are in the "
        "repository: open them in JupyterLab with `make lab` to run and change them.",
        "",
        "New here? Read the [study guide](docs/study.md) first; terms are explained in the "
        "[glossary](docs/glossary.md).",
        "",
        "## Chapters",
        "",
        "| # | chapter | exercises | solutions |",
        "|---|---|---|---|",
    ]
    for num, (stem, title) in CHAPTERS.items():
        name = f"{num}_{stem}.ipynb"
        read = f"[{title}](notebooks/{name})" if num in chapters else \
            f"{title} (not executed yet: run `make course`)"
        built = num in chapters
        has_ex, has_so = ((root / d / name).exists() and built for d in ("exercises", "solutions"))
        ex = f"[download](exercises/{name})" if has_ex else ""
        so = f"[worked answers](solutions/{name})" if has_so else ""
        lines.append(f"| {num} | {read} | {ex} | {so} |")
    lines += [
        "",
        "The exercise notebooks are in `exercises/` of the repository; the links above download "
        "a copy. Grade your work with `.venv/bin/embedlab grade exercises/NN_topic.ipynb` "
        "(save the notebook first).",
        "",
    ]
    return "\n".join(lines)


def stage(src: Path, staging: Path, root: Path = ROOT, only: list[str] | None = None) -> dict:
    """Write the site's sources into ``staging``; returns the nav for mkdocs."""
    chapters = executed_chapters(src, only)
    if not chapters:
        raise BookError(
            f"no executed chapter notebooks in {src}/: run `make course` first (every chapter in "
            "the standard profile), or `make course PROFILE=ci` for a quick pass, then `make book`")
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "docs").mkdir(parents=True)
    for doc in sorted((root / "docs").glob("*.md")):
        (staging / "docs" / doc.name).write_text(doc.read_text(encoding="utf-8"), encoding="utf-8")
    nav_chapters, nav_solutions = [], []
    for num, path in chapters.items():
        _stage_notebook(path, staging / "notebooks" / path.name)
        nav_chapters.append({f"{num} · {CHAPTERS[num][1]}": f"notebooks/{path.name}"})
        sol = root / "solutions" / path.name
        if sol.exists():
            _stage_notebook(sol, staging / "solutions" / path.name)
            label = f"{num} · {CHAPTERS[num][1]}: solutions"
            nav_solutions.append({label: f"solutions/{path.name}"})
        ex = root / "exercises" / path.name
        if ex.exists():
            (staging / "exercises").mkdir(exist_ok=True)
            shutil.copy2(ex, staging / "exercises" / path.name)
    report = src / "REPORT.md"
    profile = _profile_of(next(iter(chapters.values())))
    try:
        built_from = str(src.resolve().relative_to(root))
    except ValueError:
        built_from = str(src)
    (staging / "index.md").write_text(home_page(chapters, root, built_from, profile),
                                      encoding="utf-8")
    nav: list = [{"Home": "index.md"}]
    nav += [{"Study guide": "docs/study.md"}] if (staging / "docs" / "study.md").exists() else []
    nav += [{"Glossary": "docs/glossary.md"}] if (staging / "docs" / "glossary.md").exists() else []
    nav.append({"Chapters": nav_chapters})
    if nav_solutions:
        nav.append({"Solutions": nav_solutions})
    if report.exists():
        (staging / "report.md").write_text(report.read_text(encoding="utf-8"), encoding="utf-8")
        nav.append({"Course report": "report.md"})
    return {"nav": nav, "chapters": chapters}


def _copy_mathjax(dst: Path) -> None:
    try:
        import jupyter_server_mathjax
    except ImportError as exc:
        raise BookError("the book needs a local MathJax: `make setup` installs "
                        "jupyter-server-mathjax from requirements.lock") from exc
    static = Path(jupyter_server_mathjax.__file__).parent / "static"
    # English only, and no accessibility explorer (a menu option): a third of the files
    shutil.copytree(static, dst, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("localization", "a11y"))


# --------------------------------------------------------------------------- offline
_MERMAID = re.compile(r'<script type="module">(?:(?!</script>).)*?mermaid(?:(?!</script>).)*?'
                      r"</script>", re.S)
_REMOTE = re.compile(r"<(script|link)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//", re.I)
_REMOTE_IMPORT = re.compile(r"import\(\s*[\"']https?://|@import\s+url\([\"']?https?://", re.I)


def strip_cdn_loaders(site: Path) -> int:
    """Remove nbconvert's Mermaid loader (it imports from a CDN); returns the pages changed."""
    changed = 0
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = _MERMAID.sub("", text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def offline_problems(site: Path) -> list[str]:
    """Every remote script, stylesheet or import in the site's HTML, CSS and JS."""
    problems = []
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for pattern in (_REMOTE, _REMOTE_IMPORT):
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{page.relative_to(site)}:{line}: {m.group(0)[:80]}")
    for sheet in sorted(site.rglob("*.css")):
        for m in re.finditer(r"@import\s+url\([\"']?https?://[^)]*\)", sheet.read_text("utf-8")):
            problems.append(f"{sheet.relative_to(site)}: {m.group(0)[:80]}")
    return problems


# --------------------------------------------------------------------------- build
def build_book(src: str | Path = "build/course", out: str | Path = "build/book",
               staging: str | Path | None = None, only: list[str] | None = None,
               root: Path = ROOT, quiet: bool = False) -> Path:
    """Build the site; returns the path of its ``index.html``."""
    import logging

    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    t0 = time.perf_counter()
    src, out = Path(src).resolve(), Path(out).resolve()
    staging = Path(staging).resolve() if staging else out.parent / f"{out.name}-src"
    staged = stage(src, staging, root, only)
    if not quiet:
        print(f"book: {len(staged['chapters'])} chapters from {src}", flush=True)
    logging.getLogger("mkdocs").setLevel(logging.WARNING if not quiet else logging.ERROR)
    cfg = load_config(str(root / "mkdocs.yml"), docs_dir=str(staging), site_dir=str(out),
                      nav=staged["nav"])
    jupyter = cfg.plugins.get("mkdocs-jupyter")
    if jupyter is not None:
        jupyter.config["cache_dir"] = str(out.parent / f"{out.name}-cache")
    build(cfg)
    _copy_mathjax(out / "assets" / "mathjax")  # after the build, which empties the site folder
    strip_cdn_loaders(out)
    problems = offline_problems(out)
    if problems:
        raise BookError("the book would load from the network:\n" + "\n".join(problems[:20]))
    index = out / "index.html"
    if not quiet:
        print(f"book: {index} ({time.perf_counter() - t0:.0f} s); it reads offline", flush=True)
    return index
