"""Code search on the standard library: the ast pair extractor, the split by module, BM25's
identifier words and reciprocal rank fusion."""

import ast
import json
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedlab import codesearch as C

MODULE = textwrap.dedent('''
    """A module docstring is not a function's."""
    import functools


    def plain(a, b=2):
        """Add two numbers. The second defaults to two.

        More words here.
        """
        c = a + b
        return c


    def short(x):
        """Too short to keep."""
        return x


    def undocumented(x):
        y = x + 1
        z = y * 2
        return z


    @functools.lru_cache(maxsize=None)
    def decorated(n):
        """Return the n-th square
        number, computed once!  Then cached."""
        m = n * n
        return m


    class Outer:
        """A class docstring is not a function's."""

        def method(self, k):
            """Scale k by three? Yes."""
            k = k * 3
            return k

        @staticmethod
        def helper():
            """Nothing to see"""
            pass
            pass

        class Inner:
            async def fetch(self):
                """Fetch it asynchronously."""
                await self.go()
                return 1


    def outer_fn(v):
        """Wrap an inner function."""
        def inner(w):
            """Double w."""
            w = w * 2
            return w
        return inner(v)
''')


def test_extract_pairs_finds_every_kind_of_function_in_line_order() -> None:
    pairs = C.extract_pairs(MODULE, module="toy")
    assert [p.name for p in pairs] == ["plain", "decorated", "Outer.method", "Outer.helper",
                                       "Outer.Inner.fetch", "outer_fn", "outer_fn.inner"]
    assert [p.lineno for p in pairs] == sorted(p.lineno for p in pairs)
    assert {p.module for p in pairs} == {"toy"}
    queries = {p.name: p.query for p in pairs}
    assert queries["plain"] == "Add two numbers"
    assert queries["decorated"] == "Return the n-th square number, computed once!"
    assert queries["Outer.method"] == "Scale k by three?"
    assert queries["Outer.helper"] == "Nothing to see"
    # too few statements (the docstring counts as one) or no docstring: not kept
    assert not {"short", "undocumented"} & set(queries)


def test_document_is_the_function_without_its_docstring() -> None:
    pairs = {p.name: p for p in C.extract_pairs(MODULE)}
    doc = pairs["decorated"].document
    assert doc.startswith("@functools.lru_cache(maxsize=None)\ndef decorated(n):")
    assert "square" not in doc and "m = n * n" in doc
    assert ast.get_docstring(ast.parse(doc).body[0]) is None      # the docstring is gone
    fetch = pairs["Outer.Inner.fetch"].document
    assert fetch.startswith("async def fetch(self):") and "await self.go()" in fetch
    # a nested function keeps its own docstring inside the enclosing function's document
    assert "Double w." in pairs["outer_fn"].document
    assert "Double w." not in pairs["outer_fn.inner"].document
    # the document parses back to the same function minus the docstring
    node = ast.parse(pairs["plain"].document).body[0]
    original = ast.parse(MODULE).body[2]
    assert [ast.dump(n) for n in node.body] == [ast.dump(n) for n in original.body[1:]]


def test_min_statements_counts_the_docstring() -> None:
    names = [p.name for p in C.extract_pairs(MODULE, min_statements=2)]
    assert "short" in names and "undocumented" not in names
    assert [p.name for p in C.extract_pairs(MODULE, min_statements=4)] == []


def test_first_sentence() -> None:
    assert C.first_sentence("Return x.") == "Return x"
    assert C.first_sentence("  Split it.  Then join.") == "Split it"
    assert C.first_sentence("One line\ncontinued here. Two.") == "One line continued here"
    assert C.first_sentence("Title\n\nBody text.") == "Title"
    assert C.first_sentence("Version 3.11 is used, e.g. here.") == "Version 3.11 is used, e.g"
    assert C.first_sentence("") == ""
    with pytest.raises(TypeError, match="docstring"):
        C.first_sentence(None)


def test_extract_pairs_rejects_bad_input() -> None:
    with pytest.raises(SyntaxError):
        C.extract_pairs("def broken(:\n    pass\n")
    with pytest.raises(TypeError, match="source"):
        C.extract_pairs(b"def f(): pass")
    with pytest.raises(ValueError, match="min_statements"):
        C.extract_pairs(MODULE, min_statements=0)


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_stdlib_pairs_skips_and_counts_bad_files_and_leaves_out_tests(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBEDLAB_DATA", str(tmp_path / "cache"))
    lib = tmp_path / "lib"
    _write(lib, "good.py", MODULE)
    _write(lib, "pkg/__init__.py", MODULE)
    _write(lib, "pkg/copy.py", MODULE)                       # the same functions again
    _write(lib, "py2.py", 'print "hello"\n')                # does not parse
    (lib / "latin.py").write_bytes(b"# -*- coding: ascii -*-\nx = '\xe9'\n")  # does not decode
    for excluded in ("test/test_x.py", "idlelib/a.py", "lib2to3/b.py", "email/tests/c.py"):
        _write(lib, excluded, MODULE)
    files = C.stdlib_files(lib)
    assert sorted(C.module_name(f, lib) for f in files) == ["good", "latin", "pkg", "pkg.copy",
                                                            "py2"]
    result = C.stdlib_pairs(lib)
    assert result.n_files == 5
    assert sorted(result.skipped) == ["latin", "py2"]
    assert len(result.pairs) == 7                           # duplicates dropped
    assert {p.module for p in result.pairs} == {"good"}
    cached = list((tmp_path / "cache" / "derived").glob("codesearch-pairs-*.json"))
    assert len(cached) == 1 and len(json.loads(cached[0].read_text())["pairs"]) == 7
    again = C.stdlib_pairs(lib)
    assert again.pairs == result.pairs and again.skipped == result.skipped


def test_stdlib_files_of_the_running_interpreter() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = C.stdlib_files()
    names = {C.module_name(f, root) for f in files}
    assert {"json", "email.utils", "asyncio.tasks"} <= names
    assert not any(set(f.relative_to(root).parts) & {"test", "idlelib", "lib2to3"}
                   for f in files)
    json_pairs = C.extract_pairs((root / "json" / "__init__.py").read_text(), "json")
    dumps = next(p for p in json_pairs if p.name == "dumps")
    assert dumps.query.startswith("Serialize ``obj`` to a JSON formatted ``str``")
    assert dumps.document.startswith("def dumps(obj, *, skipkeys=False")
    with pytest.raises(ValueError, match="root"):
        C.stdlib_files(root / "no-such-directory")


def _pairs(modules: dict[str, int]) -> list[C.CodePair]:
    return [C.CodePair(f"q {m} {i}", f"d {m} {i}", m, f"f{i}", i)
            for m, n in modules.items() for i in range(n)]


def test_split_by_module_keeps_each_top_level_module_on_one_side() -> None:
    mods = {f"m{j}": 5 + j % 7 for j in range(40)}
    mods.update({"pkg.a": 4, "pkg.b": 6, "pkg.c.d": 3})
    pairs = _pairs(mods)
    split = C.split_by_module(pairs, test_fraction=0.2, seed=3)
    top = lambda p: p.module.split(".")[0]     # noqa: E731
    assert not {top(p) for p in split.train} & {top(p) for p in split.test}
    assert len(split.train) + len(split.test) == len(pairs)
    assert len(split.test) >= 0.2 * len(pairs)
    assert set(split.test_modules) == {top(p) for p in split.test}
    again = C.split_by_module(pairs, test_fraction=0.2, seed=3)
    assert again.test == split.test
    other = C.split_by_module(pairs, test_fraction=0.2, seed=4)
    assert other.test_modules != split.test_modules
    with pytest.raises(ValueError, match="test_fraction"):
        C.split_by_module(pairs, test_fraction=1.0)


def test_split_identifiers() -> None:
    assert C.split_identifiers("parseHTTPHeader_v2") == "parse http header v 2"
    assert C.split_identifiers("def read_lines(self, maxLen=10):") == \
        "def read lines self max len 10"
    assert C.split_identifiers("__init__ XMLParser getURL") == "init xml parser get url"
    assert C.split_identifiers("") == ""
    with pytest.raises(TypeError, match="code"):
        C.split_identifiers(["a"])


def test_reciprocal_rank_fusion_known_answer() -> None:
    a = np.array([[3.0, 2.0, 1.0], [0.0, 5.0, 1.0]])
    b = np.array([[1.0, 2.0, 3.0], [0.0, 5.0, 1.0]])
    fused = C.reciprocal_rank_fusion(a, b, k=0)
    # query 0: doc 0 ranks 1 and 3, doc 1 ranks 2 and 2, doc 2 ranks 3 and 1
    assert np.allclose(fused[0], [1 + 1 / 3, 1.0, 1 / 3 + 1])
    assert np.allclose(fused[1], [2 / 3, 2.0, 1.0])
    # only ranks count: a monotone change of one ranker's scores changes nothing
    assert np.allclose(C.reciprocal_rank_fusion(a ** 3 * 100, b), C.reciprocal_rank_fusion(a, b))
    assert np.allclose(C.reciprocal_rank_fusion(a, k=60), 1 / (60 + np.array([[1, 2, 3],
                                                                               [3, 1, 2]])))


def test_reciprocal_rank_fusion_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        C.reciprocal_rank_fusion()
    with pytest.raises(ValueError, match="shape"):
        C.reciprocal_rank_fusion(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        C.reciprocal_rank_fusion(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="k must"):
        C.reciprocal_rank_fusion(np.zeros((2, 2)), k=-1)
