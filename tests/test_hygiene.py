"""Notebook hygiene: committed clean, numbered, a markdown title first, the parameters cell next."""

import re
from pathlib import Path

import nbformat
import pytest

from embedlab.course import CHAPTERS, clean_notebook

ROOT = Path(__file__).resolve().parent.parent
ALL = sorted(p for d in ("notebooks", "solutions", "exercises")
             for p in (ROOT / d).glob("*.ipynb"))
PARAMETERS = ('from embedlab.profiles import profile_from_env, sizes\n\n'
              'profile = profile_from_env(default="standard")')


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_there_are_notebooks() -> None:
    assert (ROOT / "notebooks" / "00_welcome.ipynb").exists()
    assert (ROOT / "notebooks" / "17_k_closest_points.ipynb").exists()


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_committed_clean(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nbformat.writes(clean_notebook(nb)) + "\n" == text, (
        f"{_rel(path)} is not clean: run `embedlab clean {_rel(path)}`")


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_named_after_a_chapter(path: Path) -> None:
    m = re.fullmatch(r"(\d\d)_([a-z0-9_]+)\.ipynb", path.name)
    assert m, f"{path.name}: expected NN_topic.ipynb"
    number, stem = m.groups()
    assert number in CHAPTERS, f"{path.name}: no chapter {number}"
    assert stem == CHAPTERS[number][0], f"{path.name}: chapter {number} is '{CHAPTERS[number][0]}'"


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_title_then_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert re.match(rf"# {path.name[:2]} · \S", first.source), "first line must be '# NN · Title'"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code, "a notebook without code"
    assert "parameters" in code[0].metadata.get("tags", [])
    assert code[0].source.strip() == PARAMETERS
    assert not any("parameters" in c.metadata.get("tags", []) for c in code[1:])


@pytest.mark.parametrize("path", ALL, ids=_rel)
def test_sizes_come_from_profiles(path: Path) -> None:
    """The cell after the parameters cell reads this chapter's sizes from embedlab.profiles."""
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert len(code) > 1 and f'sizes("{path.name[:2]}", profile)' in code[1].source


def test_every_notebook_has_its_exercise_notebook_and_back() -> None:
    teach = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
    sols = {p.name for p in (ROOT / "solutions").glob("*.ipynb")}
    assert sols <= teach, f"solutions without a chapter notebook: {sorted(sols - teach)}"


def test_readme_lists_every_chapter_and_its_state() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    built = {p.name[:2] for p in (ROOT / "notebooks").glob("*.ipynb")}
    for number, (_, title) in CHAPTERS.items():
        row = next((ln for ln in readme.splitlines() if ln.startswith(f"| {number} ")), None)
        assert row, f"README has no row for chapter {number}"
        assert title in row
        if number in built:
            assert "coming" not in row, f"chapter {number} is built but README says coming"
        else:
            assert "coming" in row, f"chapter {number} is not built; README must say coming"


# --------------------------------------------------------------------------- typed numbers
"""No unbacked sentence: a number typed into prose is computed, or an external fact with a source.

Where the check reads:

* Markdown cells of ``notebooks/``, ``solutions/`` and ``exercises/``, ``README.md`` and
  ``docs/*.md``;
* the text templates of code cells: every f-string's literal parts (the ``{...}`` fields and
  their format specs are computed, so they are skipped), and the plain strings passed to
  ``print``, ``display``, ``Markdown``/``HTML``, ``claim``'s text, ``str.format``, figure titles and
  axis labels (``set_title``, ``set_xlabel``, ``set_ylabel``, ``suptitle``, ``title``, ``xlabel``,
  ``ylabel``, ``text``, ``annotate``, and the ``title``/``xlabel``/``ylabel``/``label`` keywords).
  The id of a ``record``/``claim`` and strings used as keys (``table["recall@10"]``) are skipped.

What counts as a typed number:

* a decimal (``0.78``), a decimal with a leading point (``.05``), scientific notation (``1e-4``);
* a percentage (``75%``, ``5 %``);
* a multiplier (``6x``, ``32×``);
* an integer with a magnitude (``2M``, ``10k``, ``100 M vectors``, ``2 million``);
* an integer with a unit of measure (``100 ms``, ``3 s``, ``400 GB``, ``6 tokens``,
  ``3 times``, ``384 dims``);
* an integer of 100 or more followed by a word that says what it counts (``800 articles``; not
  ``from 384 to 64``), and any integer written with a thousands separator (``3,824``).

What does not (documented exclusions):

* years (a bare four-digit 1900 to 2099), small counts (an integer below 100 with no unit:
  ``3 words``, ``2 workers``);
* references: a number after chapter/section/§/theorem/equation/table/figure/appendix/item/step/
  cell/line/page/exercise/question/LeetCode/arXiv/issue, and chapter ranges (``08-11``);
* versions: a number with two or more dots (``2.13.0``) or after Python/torch/numpy/CUDA/
  OpenBLAS/version/release, or written ``v2``;
* ids and code identifiers: numbers glued to letters, ``_``, ``@``, ``/`` or a word's hyphen
  (``L6``, ``fp16``, ``nDCG@10``, ``top-10``, ``SimLex-999``, ``ch08.x``), Markdown inline code and
  fenced code, URLs and link targets, and integers inside ``$...$`` math (decimals there still
  count); an integer after ``=`` is a setting (``M = 16``), and one after ``/``, ``×`` or ``*``
  is part of a formula (``d / 8 bytes``), not a result.

An allowed number is an external fact (a citation, a published figure, a dataset's size, an
arithmetic identity) or a stated estimate, listed in ``tests/typed_numbers_allow.txt`` with the
file, the literal, a snippet of its sentence and the source: it is allowed only in a sentence
containing that snippet. Files listed in ``tests/notebook_rules_pending.txt`` are exempt until
their owners remove their line.
"""

import ast  # noqa: E402

ALLOW_FILE = ROOT / "tests" / "typed_numbers_allow.txt"
PENDING_FILE = ROOT / "tests" / "notebook_rules_pending.txt"

_UNITS = (r"ms|s|sec|secs|seconds?|min|mins|minutes?|h|hours?|days?|µs|us|ns|"
          r"[kKMGT]i?B|B|bytes?|bits?|GB/s|MB/s|tokens?|times|dims?|dimensions?|"
          r"QPS|queries/s|GFLOP/s|cores?")
_MAGNITUDE = r"(?:[kKMBGT]|bn|thousand|million|billion|trillion)"
_REF_WORDS = (r"chapters?|sections?|§|theorems?|lemma|eq\.|equations?|tables?|figures?|fig\.|"
              r"appendix|items?|steps?|cells?|lines?|pages?|pp\.|p\.|exercises?|questions?|"
              r"leetcode|arxiv|issues?|python|torch|numpy|cuda|openblas|versions?|release|rule|"
              r"no\.|n[ºo]")
_TOKEN = re.compile(
    r"(?<![\w@/.\\])(?<!\w-)"                     # not glued to an identifier or a word's hyphen
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+(?:\.\d+)*|\.\d+|\d+(?:[eE][-+]?\d+)?)"
    r"(?P<tail>\s?%|[x×](?![\w])|" + _MAGNITUDE + r"(?![\w])|\s" + _MAGNITUDE + r"(?=\s+[A-Za-z])"
    r"|\s(?:" + _UNITS + r")(?![\w])|\s[A-Za-z]\w*)?")
_REF_BEFORE = re.compile(r"(?:\b(?:" + _REF_WORDS + r")\s*[#(]?|[=≤≥<>/×*÷]\s*)$",
                         re.IGNORECASE)
_UNIT_RE = re.compile(r"\s(?:" + _UNITS + r")$")
# words after a number that say nothing of what it counts ("from 384 to 64", "8888 is busy")
_FUNCTION_WORDS = {"to", "and", "or", "of", "in", "on", "at", "is", "are", "was", "were", "be",
                   "for", "by", "with", "from", "than", "as", "the", "a", "an", "per", "vs",
                   "against", "when", "where", "which", "that", "if", "it", "its", "then", "but",
                   "up", "down", "into", "each", "so", "not", "no"}


def _scrub_markdown(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Markdown with code, URLs, link targets and HTML comments blanked (same length), and the
    spans of ``$...$`` / ``$$...$$`` math."""
    def blank(m: re.Match) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    text = re.sub(r"```.*?```|~~~.*?~~~", blank, text, flags=re.S)
    text = re.sub(r"<!--.*?-->", blank, text, flags=re.S)
    text = re.sub(r"`[^`\n]*`", blank, text)
    text = re.sub(r"\]\([^)]*\)", blank, text)
    text = re.sub(r"https?://\S+", blank, text)
    math = [m.span() for m in re.finditer(r"\$\$.*?\$\$|\$[^$\n]+\$", text, flags=re.S)]
    return text, math


def typed_numbers(text: str, math: list[tuple[int, int]] | None = None) -> list[str]:
    """The typed numbers in ``text`` (see the rules above), each as written with its unit."""
    out = []
    for m in _TOKEN.finditer(text):
        num, tail = m.group("num"), m.group("tail") or ""
        start = m.start()
        before = text[max(0, start - 40):start]
        if _REF_BEFORE.search(before):
            continue
        if re.search(r"\d[-–]$", before) or re.search(r"v$", before):
            continue                                              # 08-11, v2
        if num.count(".") >= 2:
            continue                                              # a version, 2.13.0
        in_math = any(a <= start < b for a, b in (math or []))
        decimal = ("." in num) or bool(re.search(r"[eE]", num))
        percent = "%" in tail
        multiplier = tail[:1] in ("x", "×")
        magnitude = bool(re.fullmatch(r"\s?" + _MAGNITUDE, tail))
        unit = bool(_UNIT_RE.search(tail)) if tail.startswith(" ") else False
        word = (tail.startswith(" ") and not unit and not magnitude
                and tail.strip().lower() not in _FUNCTION_WORDS)
        value = float(num.replace(",", "")) if not decimal else None
        if decimal or percent:
            out.append(num + ("%" if percent else ""))
            continue
        if in_math:
            continue
        if value is not None and re.fullmatch(r"(19|20)\d\d", num) and not (
                multiplier or magnitude or unit):
            continue                                              # a year
        if multiplier or magnitude or unit:
            out.append((num + tail).strip())
        elif "," in num:
            out.append(num)
        elif word and value is not None and value >= 100:
            out.append((num + tail).strip())
    return out


def _sentences(text: str) -> list[str]:
    """Sentences of a Markdown text: paragraphs, table rows and list items split further at a full
    stop followed by a capital."""
    units = []
    for para in re.split(r"\n\s*\n", text):
        lines = para.splitlines()
        block: list[str] = []
        for ln in lines:
            if re.match(r"\s*(\||[-*+] |\d+[.)] |#)", ln) and block:
                units.append(" ".join(block))
                block = []
            block.append(ln.strip())
            if ln.lstrip().startswith(("|", "#")):
                units.append(" ".join(block))
                block = []
        if block:
            units.append(" ".join(block))
    out = []
    for u in units:
        out += re.split(r"(?<=[.!?])\s+(?=[A-Z(*`$])", u)
    return [re.sub(r"\s+", " ", s) for s in out if s.strip()]


def markdown_numbers(text: str) -> list[tuple[str, str]]:
    """``[(literal, sentence)]`` for every typed number in a Markdown text."""
    out = []
    for sentence in _sentences(text):
        scrubbed, math = _scrub_markdown(sentence)
        out += [(lit, sentence) for lit in typed_numbers(scrubbed, math)]
    return out


_TEMPLATE_CALLS = {"print", "display", "Markdown", "HTML", "set_title", "set_xlabel",
                   "set_ylabel", "suptitle", "title", "xlabel", "ylabel", "text", "annotate",
                   "format", "warn"}
_TEMPLATE_KEYWORDS = {"title", "xlabel", "ylabel", "label", "text"}


def _fstring_template(node: ast.JoinedStr) -> str:
    """An f-string's literal parts with ``{}`` for each computed field (format specs dropped)."""
    return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


def code_templates(source: str) -> list[str]:
    """The text templates of one code cell (see the rules above)."""
    source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln
                       for ln in source.splitlines())
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Subscript):
            skip |= {id(x) for x in ast.walk(n.slice)}
        elif isinstance(n, ast.Dict):
            skip |= {id(x) for k in n.keys if k is not None for x in ast.walk(k)}
        elif isinstance(n, ast.Call):
            name = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            if name in ("record", "claim") and n.args:
                skip |= {id(x) for x in ast.walk(n.args[0])}
        elif isinstance(n, ast.FormattedValue) and n.format_spec is not None:
            skip |= {id(x) for x in ast.walk(n.format_spec)}
    out: list[str] = []
    seen: set[int] = set()

    def take(node: ast.AST) -> None:
        for x in ast.walk(node):
            if id(x) in skip or id(x) in seen:
                continue
            if isinstance(x, ast.JoinedStr):
                seen.update(id(y) for y in ast.walk(x))
                out.append(_fstring_template(x))
            elif isinstance(x, ast.Constant) and isinstance(x.value, str):
                seen.add(id(x))
                out.append(x.value)

    for n in ast.walk(tree):
        if isinstance(n, ast.JoinedStr) and id(n) not in skip and id(n) not in seen:
            take(n)
        elif isinstance(n, ast.Call):
            name = n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
            if name == "claim":
                args = n.args[1:2] + [k.value for k in n.keywords if k.arg == "text"]
            elif name == "format" and isinstance(n.func, ast.Attribute):
                args = [n.func.value]
            elif name in _TEMPLATE_CALLS:
                args = list(n.args)
            else:
                args = []
            args += [k.value for k in n.keywords if k.arg in _TEMPLATE_KEYWORDS]
            for a in args:
                take(a)
    return out


def template_numbers(source: str) -> list[tuple[str, str]]:
    """``[(literal, template)]`` for every typed number in a code cell's text templates."""
    out = []
    for t in code_templates(source):
        flat = re.sub(r"\s+", " ", t)
        out += [(lit, flat) for lit in typed_numbers(flat.replace("{}", " "))]
    return out


def notebook_numbers(path: Path) -> list[tuple[int, str, str]]:
    """``[(cell index, literal, sentence or template)]`` for a notebook."""
    nb = nbformat.read(path, as_version=4)
    out = []
    for i, c in enumerate(nb.cells):
        found = markdown_numbers(c.source) if c.cell_type == "markdown" else (
            template_numbers(c.source) if c.cell_type == "code" else [])
        out += [(i, lit, ctx) for lit, ctx in found]
    return out


def file_numbers(path: Path) -> list[tuple[int, str, str]]:
    if path.suffix == ".ipynb":
        return notebook_numbers(path)
    return [(0, lit, ctx) for lit, ctx in markdown_numbers(path.read_text(encoding="utf-8"))]


def read_allow_list(path: Path = ALLOW_FILE) -> list[dict[str, str]]:
    """The allow-list: one entry a line, four tab-separated fields.

    ``file``: ``README.md``, ``docs/x.md``, a notebook's file name (it covers the same name in
    notebooks/, solutions/ and exercises/) or ``*`` (every file); ``literal``: the number as the
    check reports it (with its unit); ``snippet``: a piece of the sentence, containing the literal
    as written, that pins it to that sentence; ``source``: where the fact comes from. Blank lines
    and lines starting with ``#`` are comments.
    """
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 4 and all(f.strip() for f in fields), (
            f"{path.name}:{n}: expected 'file<TAB>literal<TAB>snippet<TAB>source', got {line!r}")
        file, literal, snippet, source = (f.strip() for f in fields)
        assert file == "*" or re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb|README\.md|docs/[\w-]+\.md",
                                           file), f"{path.name}:{n}: {file!r} is not a file"
        assert re.sub(r"\s+", " ", snippet) == snippet, f"{path.name}:{n}: one space at a time"
        entries.append({"file": file, "literal": literal, "snippet": snippet, "source": source,
                        "line": str(n)})
    return entries


def _allowed(entry: dict[str, str], path: Path, literal: str, context: str) -> bool:
    name = path.name if path.suffix == ".ipynb" or not path.is_relative_to(ROOT) else _rel(path)
    return (entry["file"] in ("*", name) and entry["literal"] == literal
            and entry["snippet"] in context)


def read_pending(path: Path = PENDING_FILE) -> set[str]:
    return {ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")}


PROSE = sorted([p for d in ("notebooks", "solutions", "exercises")
                for p in (ROOT / d).glob("*.ipynb")]
               + [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md")))
CHECKED = [p for p in PROSE if _rel(p) not in read_pending()]


def unbacked(path: Path, allow: list[dict[str, str]] | None = None) -> list[tuple[int, str, str]]:
    allow = read_allow_list() if allow is None else allow
    return [(i, lit, ctx) for i, lit, ctx in file_numbers(path)
            if not any(_allowed(e, path, lit, ctx) for e in allow)]


def test_typed_numbers_finds_each_kind() -> None:
    text = ("cos is 0.78 (see .05), about 75% or 5 %; 6x smaller, 32× less; 2M tokens, 100 M "
            "vectors, 2 million pairs; 100 ms and 3 s, 400 GB; 3,000 times, 800 articles; "
            "3 times faster; 1e-4 at the end")
    assert typed_numbers(text) == ["0.78", ".05", "75%", "5%", "6x", "32×", "2M", "100 M",
                                   "2 million", "100 ms", "3 s", "400 GB", "3,000 times",
                                   "800 articles", "3 times", "1e-4"]


def test_typed_numbers_leaves_references_versions_ids_and_small_counts() -> None:
    text = ("In 2013 chapter 13 (chapters 08-11) cites section 4.2 and theorem 3.2 of arXiv "
            "1603.09320; Python 3.11, torch 2.13.0, all-MiniLM-L6-v2, fp16, nDCG@10, top-10, "
            "SimLex-999, ch08.flat, v2; 3 words, 12 vectors, 2 workers; M = 16 and k = 100; "
            "d / 8 bytes.")
    assert typed_numbers(text) == []
    scrubbed, math = _scrub_markdown("code `n = 800 articles` and $2 - 2 a b$ but $0.78$; "
                                     "[a link](https://x.org/1603.09320) ```\n0.5\n```")
    assert typed_numbers(scrubbed, math) == ["0.78"]


def test_a_planted_markdown_number_fails(tmp_path: Path) -> None:
    from nbformat.v4 import new_markdown_cell, new_notebook

    path = tmp_path / "02_word2vec.ipynb"
    nbformat.write(new_notebook(cells=[new_markdown_cell(
        "# 02 · word2vec\n\nWe train on the news corpus, about 2M tokens, in a few minutes.")]),
        path)
    assert [(i, lit) for i, lit, _ in unbacked(path, [])] == [(0, "2M")]


def test_a_planted_fstring_number_fails(tmp_path: Path) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    path = tmp_path / "13_matryoshka.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(
        'n = len(docs)\nprint(f"we embed about 800 articles, {n:,} in this profile ({n:.1%})")\n'
        'ax.set_title("Recall after 6x truncation")\nrecord("ch13.x_800", n)\n'
        'value = table["recall@100"]')]), path)
    found = [(lit, ctx) for _, lit, ctx in unbacked(path, [])]
    assert [lit for lit, _ in found] == ["800 articles", "6x"]
    assert found[0][1] == "we embed about 800 articles, {} in this profile ({})"


def test_the_allow_list_is_keyed_by_sentence(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "x.md"
    path.parent.mkdir()
    path.write_text("MiniLM gives 384 dims vectors. Our run kept 384 dims here.\n")
    rel = path  # not under ROOT: compare by file name through a "*" entry
    entry = {"file": "*", "literal": "384 dims", "snippet": "MiniLM gives 384 dims",
             "source": "model card"}
    left = [ctx for _, lit, ctx in unbacked(rel, [entry])]
    assert left == ["Our run kept 384 dims here."]


@pytest.mark.parametrize("path", CHECKED, ids=_rel)
def test_no_unbacked_numbers(path: Path) -> None:
    bad = unbacked(path)
    assert not bad, (
        f"{_rel(path)}: typed numbers {[(i, lit) for i, lit, _ in bad]} in "
        + "; ".join(f"[{i}] {ctx[:120]!r}" for i, _, ctx in bad[:6])
        + ". Compute them (an f-string field, printed output, record/claim) or, for an external "
        f"fact with a source, add 'file, literal, snippet, source' to "
        f"{ALLOW_FILE.relative_to(ROOT)}")


def test_allow_list_is_short_and_every_entry_is_used() -> None:
    allow = read_allow_list()
    assert len(allow) <= 80, "the allow-list is for a few external facts, not measurements"
    found = {p: file_numbers(p) for p in PROSE}
    stale = [e for e in allow
             if not any(_allowed(e, p, lit, ctx) for p, rows in found.items()
                        for _, lit, ctx in rows)]
    assert not stale, ("allow-list entries no file writes any more (lines "
                       f"{[e['line'] for e in stale]}): {[e['snippet'] for e in stale]}")
    for e in allow:
        assert e["literal"] in e["snippet"] or e["literal"].replace(" ", "") in e["snippet"], (
            f"line {e['line']}: the snippet must contain the literal {e['literal']!r}")


def test_pending_list_names_existing_files() -> None:
    pending = read_pending()
    missing = [p for p in pending if not (ROOT / p).exists()]
    assert not missing, f"tests/notebook_rules_pending.txt lists missing files: {missing}"
    assert "notebooks/18_checklist_review.ipynb" not in pending
