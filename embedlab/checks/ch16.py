"""Checks for chapter 16: splitting identifiers into words, and the code-pair extractor.

The identifier check builds each name from words it chose itself (snake_case, camelCase,
PascalCase, SCREAMING_CASE, acronyms, digits, leading and trailing underscores), so the expected
split is known by construction. The extractor check writes random modules (functions at module
level, methods, nested classes, functions inside functions, async functions, decorators, strings
that are not docstrings, docstrings of several shapes) and records, while writing them, each
function's dotted name, the first sentence of its docstring, its number of statements and its
text without the docstring: the expected pairs never come from walking a syntax tree. Inputs are
fresh on every run.
"""

from __future__ import annotations

import ast
import textwrap

import numpy as np

from embedlab.checks import exercise, raises

# --------------------------------------------------------------------------- 16.split_identifier
WORDS = ["read", "line", "parse", "header", "value", "file", "name", "max", "len", "get",
         "set", "item", "node", "tree", "cache", "path", "token", "buffer", "count", "merge"]
ACRONYMS = ["HTTP", "URL", "XML", "JSON", "IO", "UTF", "CSV"]
DIGITS = ["2", "8", "10", "64"]

split = exercise("16.split_identifier", name="split_identifier", points=3,
                 reference=("embedlab.codesearch:split_identifiers",))


def _identifier(rng: np.random.Generator) -> tuple[str, list[str]]:
    """A random identifier and the words it was built from, lower case."""
    n = int(rng.integers(1, 5))
    parts: list[tuple[str, str]] = []           # (kind, text): kind is word, acronym or digits
    for _ in range(n):
        kind = "acronym" if rng.random() < 0.25 and (not parts or parts[-1][0] != "acronym") \
            else "word"
        parts.append((kind, str(rng.choice(ACRONYMS if kind == "acronym" else WORDS))))
        if rng.random() < 0.2:
            parts.append(("digits", str(rng.choice(DIGITS))))
    style = str(rng.choice(["snake", "camel", "pascal", "upper"]))
    pieces = []
    for i, (kind, text) in enumerate(parts):
        if kind == "digits":
            pieces.append(text)                 # glued to the word before it
            continue
        if style in ("snake", "upper"):
            word = text.upper() if style == "upper" else text.lower()
            pieces.append(("_" if pieces else "") + word)
        elif kind == "acronym":
            pieces.append(text.lower() if style == "camel" and i == 0 else text)
        else:
            first = style == "camel" and i == 0
            pieces.append(text if first else text.capitalize())
    name = "".join(pieces)
    if rng.random() < 0.3:
        name = str(rng.choice(["_", "__"])) + name
    if rng.random() < 0.2:
        name += "__"
    return name, [t.lower() for _, t in parts]


def _words(result) -> list[str]:
    return [str(w) for w in list(result)]


@split.check("splits the examples: parseHTTPHeader_v2, read_line, MAX_LEN, __init__, XMLParser")
def _(fn):
    cases = {"parseHTTPHeader_v2": ["parse", "http", "header", "v", "2"],
             "read_line": ["read", "line"], "MAX_LEN": ["max", "len"], "__init__": ["init"],
             "XMLParser": ["xml", "parser"], "getURL": ["get", "url"], "x": ["x"]}
    for name, want in cases.items():
        got = _words(fn(name))
        assert got == want, f"{name!r}: got {got}, expected {want}"


@split.check("agrees with the words a random identifier was built from (snake, camel, Pascal, "
             "UPPER, acronyms, digits, leading and trailing underscores)")
def _(fn):
    rng = np.random.default_rng()
    for _ in range(300):
        name, want = _identifier(rng)
        got = _words(fn(name))
        assert got == want, f"{name!r}: got {got}, expected {want}"


@split.check("returns an empty list for a name of underscores only, and raises TypeError for "
             "a non-string")
def _(fn):
    assert _words(fn("__")) == [], "'__' holds no word"
    for bad in (42, None, ["name"]):
        assert raises(fn, bad, exc=TypeError), f"{bad!r} must raise TypeError"


# --------------------------------------------------------------------------- 16.code_pairs
pairs_ex = exercise("16.code_pairs", name="extract_code_pairs", points=6,
                    reference=("embedlab.codesearch:extract_pairs",
                               "embedlab.codesearch:first_sentence",
                               "embedlab.codesearch:stdlib_pairs"))

VERBS = ["Return", "Compute", "Parse", "Read", "Merge", "Count", "Build", "Check", "Split"]
NOUNS = ["the header", "a token", "every line", "the cache", "two buffers", "the tree",
         "a path", "the score", "each item"]


def _docstring(rng: np.random.Generator, pad: str) -> tuple[list[str], str]:
    """The lines of a docstring at indentation ``pad`` and the first sentence it should give."""
    a = f"{rng.choice(VERBS)} {rng.choice(NOUNS)}"
    b = f"{rng.choice(VERBS).lower()} {rng.choice(NOUNS)}"
    q = '"""' if rng.random() < 0.8 else "'''"
    shape = int(rng.integers(0, 7))
    if shape == 0:                                          # one sentence, one line
        return [f"{pad}{q}{a}.{q}"], a
    if shape == 1:                                          # no full stop at all
        return [f"{pad}{q}{a}{q}"], a
    if shape == 2:                                          # two sentences on one line
        return [f"{pad}{q}{a}. Then {b}.{q}"], a
    if shape == 3:                                          # a question, then more
        return [f"{pad}{q}{a}?  Yes, {b}.{q}"], a + "?"
    if shape == 4:                                          # the sentence runs over two lines
        return [f"{pad}{q}{a}", f"{pad}and {b}. Details follow.", f"{pad}{q}"], f"{a} and {b}"
    if shape == 5:                                          # summary line, blank line, body
        return [f"{pad}{q}{a}", "", f"{pad}More about {b}.", f"{pad}{q}"], a
    return [f"{pad}{q}", f"{pad}{a}! Really.", f"{pad}{q}"], a + "!"   # opens on its own line


def _statements(rng: np.random.Generator, pad: str, n: int, is_async: bool) -> list[str]:
    pool = ["total = 0", "value = len(items) + 1", "print(value)", "items.append(total)",
            "for item in items:\n{pad}    total += item", "if total > 3:\n{pad}    total = 3",
            "result = {{k: v for k, v in pairs}}", "assert value, 'empty'"]
    if is_async:
        pool.append("await sleep(0)")
    out = []
    for _ in range(n):
        out += [f"{pad}{ln}" for ln in str(rng.choice(pool)).format(pad=pad).split("\n")]
    return out


def _unparse_at(text: str, pad: str) -> str:
    """``ast.unparse`` of one function written at indentation ``pad``: parsed inside as many
    ``if True:`` blocks as it is indented, so the text inside its strings stays as written."""
    depth = len(pad) // 4
    header = "".join("    " * i + "if True:\n" for i in range(depth))
    node = ast.parse(header + text).body[0]
    for _ in range(depth):
        node = node.body[0]
    return ast.unparse(node)


class _Module:
    """Writes a random module and records what the extractor must find in it."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.count = rng, 0
        self.records: list[dict] = []      # name, query (None: no docstring), n, text, order

    def function(self, pad: str, prefix: str, depth: int) -> list[str]:
        rng = self.rng
        self.count += 1
        fname = f"f{self.count}"
        is_async = rng.random() < 0.15
        lines = []
        if rng.random() < 0.3:
            lines.append(pad + str(rng.choice(["@cache", "@staticmethod", "@tools.wrap(2)",
                                                "@property"])))
        lines.append(f"{pad}{'async ' if is_async else ''}def {fname}(items, pairs=None):")
        inner = pad + "    "
        kind = rng.choice(["doc", "doc", "doc", "none", "late", "fstring", "bytes"])
        doc: list[str] = []
        query = None
        if kind == "doc":
            doc, query = _docstring(rng, inner)
        n_body = int(rng.integers(0 if kind == "doc" else 1, 5))
        body: list[str] = []
        if kind == "late":                      # a string, but not the first statement
            body += [f"{inner}total = 1", f'{inner}"""{rng.choice(VERBS)} nothing."""']
        elif kind == "fstring":
            body.append(f'{inner}f"""{rng.choice(VERBS)} {{items}}."""')
        elif kind == "bytes":
            body.append(f'{inner}b"""{rng.choice(VERBS)} bytes."""')
        body += _statements(rng, inner, n_body, is_async)
        record = {"name": prefix + fname, "query": query, "order": self.count, "pad": pad}
        self.records.append(record)
        nested: list[str] = []
        if depth < 2 and rng.random() < 0.3:
            nested = self.function(inner, f"{prefix}{fname}.", depth + 1)
        own_body = textwrap.dedent("\n".join(body + nested))
        record["n"] = (1 if doc else 0) + (len(ast.parse(own_body).body) if own_body else 0)
        own = lines + body + nested
        record["text"] = "\n".join(own if body or nested else own + [f"{inner}pass"])
        return lines + doc + body + nested

    def klass(self, pad: str, prefix: str, depth: int) -> list[str]:
        self.count += 1
        cname = f"C{self.count}"
        out = [f"{pad}class {cname}:"]
        if self.rng.random() < 0.5:
            out.append(f'{pad}    """A class docstring is not a function\'s."""')
        for _ in range(int(self.rng.integers(1, 4))):
            if depth < 1 and self.rng.random() < 0.2:
                out += self.klass(pad + "    ", f"{prefix}{cname}.", depth + 1)
            else:
                out += self.function(pad + "    ", f"{prefix}{cname}.", depth + 1)
        return out

    def write(self) -> str:
        lines = ['"""A module docstring is not a function\'s."""', "import tools", ""]
        for _ in range(int(self.rng.integers(6, 12))):
            block = self.klass("", "", 0) if self.rng.random() < 0.35 else \
                self.function("", "", 0)
            lines += block + [""]
        lines.append("VALUE = 3")
        return "\n".join(lines) + "\n"

    def expected(self, min_statements: int) -> list[tuple[str, str, str]]:
        keep = [r for r in sorted(self.records, key=lambda r: r["order"])
                if r["query"] and r["n"] >= min_statements]
        return [(r["name"], r["query"], _unparse_at(r["text"], r["pad"])) for r in keep]


def _triples(result) -> list[tuple[str, str, str]]:
    rows = list(result)
    for r in rows:
        assert len(r) == 3, f"each pair must be (name, query, document), got {r!r}"[:200]
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def _compare(fn, min_statements: int, what: int, rounds: int = 25) -> None:
    rng = np.random.default_rng()
    labels = ("dotted name", "query", "document")
    for _ in range(rounds):
        mod = _Module(rng)
        source = mod.write()
        want = mod.expected(min_statements)
        got = _triples(fn(source, min_statements))
        got_names, want_names = [g[0] for g in got], [w[0] for w in want]
        assert got_names == want_names, (f"min_statements={min_statements}: found "
                                         f"{got_names}, expected {want_names}")
        for g, w in zip(got, want, strict=True):
            assert g[what] == w[what], (f"{w[0]}: {labels[what]} {g[what]!r}, expected "
                                        f"{w[what]!r}")[:600]


EXAMPLE = textwrap.dedent('''
    import functools

    @functools.cache
    def area(w, h):
        """Return the area. Both sides must be positive."""
        a = w * h
        return a

    class Shape:
        def grow(self, k):
            """Grow the shape
            by k? Only if it fits."""
            def clamp(x):
                """Keep x small."""
                y = min(x, 10)
                return y
            self.k = clamp(k)

    def untold(x):
        y = x
        return y
''')


@pairs_ex.check("finds the example's pairs: area, Shape.grow and Shape.grow.clamp, in line "
                "order, as (name, query, document)")
def _(fn):
    got = _triples(fn(EXAMPLE, 3))
    assert [g[0] for g in got] == ["area", "Shape.grow", "Shape.grow.clamp"], \
        f"names {[g[0] for g in got]}"
    assert [g[1] for g in got] == ["Return the area", "Grow the shape by k?", "Keep x small"], \
        f"queries {[g[1] for g in got]}"
    assert got[0][2] == "@functools.cache\ndef area(w, h):\n    a = w * h\n    return a", \
        f"document of area: {got[0][2]!r}"


@pairs_ex.check("finds every function of random modules (module level, methods, nested classes, "
                "functions inside functions, async) with its dotted name, in line order")
def _(fn):
    _compare(fn, 3, 0)


@pairs_ex.check("the query is the docstring's first sentence: the first paragraph on one line, "
                "cut after the first . ! or ? followed by a space, a final full stop dropped")
def _(fn):
    _compare(fn, 3, 1)


@pairs_ex.check("the document is ast.unparse of the function without its docstring statement "
                "(decorators kept; a nested function keeps its own docstring; an empty body "
                "becomes pass)")
def _(fn):
    _compare(fn, 3, 2)
    _compare(fn, 1, 2, rounds=10)


@pairs_ex.check("only real docstrings count (not a later string, an f-string or bytes), and the "
                "docstring counts as one of min_statements")
def _(fn):
    for m in (1, 2, 4, 5):
        _compare(fn, m, 0, rounds=8)


@pairs_ex.check("raises SyntaxError for source that does not parse, ValueError for "
                "min_statements < 1, and returns [] for a module without functions")
def _(fn):
    assert raises(fn, "def broken(:\n    pass\n", 3, exc=SyntaxError), \
        "source that does not parse must raise SyntaxError"
    assert raises(fn, EXAMPLE, 0, exc=ValueError), "min_statements=0 must raise ValueError"
    assert _triples(fn("x = 1\n", 3)) == [], "no function, no pair"
