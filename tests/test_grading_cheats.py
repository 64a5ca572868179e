"""The grade certifies a build: the cheats a lazy learner tries score at most a quarter of the
exercise's points, and nothing an answer starts outlives the grading.

Each case takes the solution notebook's import cells and replaces one graded cell with a cheat,
then grades that cell alone (``grading.grade_cell``), as ``embedlab grade`` does.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

from embedlab import checks
from embedlab.grading import (
    GradeError,
    grade_cell,
    grade_notebook,
    graded_cells,
    tokens,
)

ROOT = Path(__file__).resolve().parent.parent
QUARTER = 0.25


def _solution(ex_id: str) -> tuple[str, list[str]]:
    chapter = ex_id.split(".")[0]
    path = next((ROOT / "solutions").glob(f"{chapter}_*.ipynb"))
    for got, src, setup in graded_cells(nbformat.read(path, as_version=4)):
        if got == ex_id:
            return src, setup
    raise KeyError(ex_id)


def _at_most_a_quarter(ex_id: str, cell: str, setup: list[str] | None = None,
                       timeout: float = 60.0) -> dict:
    if setup is None:
        setup = _solution(ex_id)[1]
    res = grade_cell(ex_id, cell, setup, timeout=timeout)
    assert res["points"] <= QUARTER * res["max"], (ex_id, res["points"], res["hints"])
    return res


# --------------------------------------------------------------------------- reference libraries
def test_sklearn_kmeans_in_an_ivf_build() -> None:
    src, _ = _solution("08.ivf")
    cheat = src.replace("        x = np.asarray(x, dtype=np.float64)\n        rng = ",
                        "        from sklearn.cluster import KMeans\n"
                        "        self.centroids = KMeans(self.nlist, n_init=1).fit(x)"
                        ".cluster_centers_\n        return\n        rng = ", 1)
    assert cheat != src
    res = _at_most_a_quarter("08.ivf", cheat)
    assert any("sklearn" in h for h in res["hints"]), res["hints"]


def test_faiss_index_pq_as_a_pq_build() -> None:
    cheat = textwrap.dedent("""\
        import faiss

        class PQ:
            def __init__(self, m, nbits=8, niter=20, seed=0):
                self.m, self.nbits = m, nbits

            def train(self, x):
                x = np.ascontiguousarray(x, dtype="float32")
                self.index = faiss.IndexPQ(x.shape[1], self.m, self.nbits)
                self.index.train(x)
                pq = self.index.pq
                self.codebooks = faiss.vector_to_array(pq.centroids).reshape(
                    pq.M, pq.ksub, pq.dsub)

            def encode(self, x):
                return self.index.pq.compute_codes(np.ascontiguousarray(x, dtype="float32"))

            def decode(self, codes):
                return self.index.pq.decode(np.ascontiguousarray(codes, dtype="uint8"))

            def add(self, x):
                self.index.add(np.ascontiguousarray(x, dtype="float32"))

            def search(self, q, k):
                d, i = self.index.search(np.ascontiguousarray(q, dtype="float32")[None], k)
                return d[0], i[0]
        """)
    res = _at_most_a_quarter("09.pq", cheat)
    assert any("faiss" in h for h in res["hints"]), res["hints"]


def test_sklearn_ndcg_score_for_ndcg() -> None:
    cheat = textwrap.dedent("""\
        def ndcg_at_k(scores, relevance, k):
            from sklearn.metrics import ndcg_score
            if k < 1:
                raise ValueError("k")
            return float(ndcg_score(relevance, scores, k=k))
        """)
    _at_most_a_quarter("04.ndcg", cheat)


def test_heapq_nsmallest_with_empty_sift_functions() -> None:
    cheat = textwrap.dedent("""\
        def sift_up(heap, pos):
            pass


        def sift_down(heap, pos):
            pass


        def k_closest_heap(points, k):
            if k < 1:
                raise ValueError("k")
            rows = ((sum(float(v) ** 2 for v in row), i) for i, row in enumerate(points))
            best = heapq.nsmallest(k, rows)
            if len(best) < k:
                raise ValueError("k")
            return [i for _, i in best]
        """)
    res = _at_most_a_quarter("17.heap", cheat)
    assert any("heapq" in h for h in res["hints"]), res["hints"]


def _hnsw_head() -> str:
    src, _ = _solution("10.hnsw")
    return src[:src.index("    def search_layer(self, q, entry, ef, layer, allowed=None):")]


BRUTE_FORCE_HNSW = '''\
    def search_layer(self, q, entry, ef, layer, allowed=None):
        ids = [p for p in self.layers[layer] if p not in self.deleted
               and (allowed is None or allowed[p])]
        d = self.dist(q, ids)
        order = np.argsort(d, kind="stable")[:ef]
        return [(float(d[j]), ids[j]) for j in order]

    def search(self, q, k, ef=64, allowed=None):
        if k < 1:
            raise ValueError("k")
        return [p for _, p in self.search_layer(q, self.entry, max(ef, k), 0, allowed)[:k]]

    def delete(self, i):
        if i in self.deleted:
            raise ValueError("twice")
        self.deleted.add(i)
'''


def test_brute_force_hnsw() -> None:
    res = _at_most_a_quarter("10.hnsw", _hnsw_head() + BRUTE_FORCE_HNSW)
    assert any("distances per" in h for h in res["hints"]), res["hints"]


def test_hnswlib_over_a_chain() -> None:
    cheat = textwrap.dedent("""\
        import hnswlib

        class HNSW:
            def __init__(self, M=8, ef_construction=64, seed=0):
                self.M, self.efc, self.seed = M, ef_construction, seed
                self.deleted, self.entry = set(), 0

            def add(self, x):
                self.x = np.asarray(x, dtype=np.float64)
                n = len(self.x)
                self.levels = [0] * n
                self.layers = [{i: [j for j in (i - 1, i + 1) if 0 <= j < n] for i in range(n)}]
                self.index = hnswlib.Index(space="l2", dim=self.x.shape[1])
                self.index.init_index(max_elements=n, M=self.M, ef_construction=self.efc)
                self.index.add_items(self.x, np.arange(n))

            def search_layer(self, q, entry, ef, layer, allowed=None):
                self.index.set_ef(max(ef, 1))
                ids, d = self.index.knn_query(np.asarray(q)[None], k=min(ef, len(self.x)))
                return list(zip(d[0].tolist(), ids[0].tolist()))

            def search(self, q, k, ef=64, allowed=None):
                return [i for _, i in self.search_layer(q, 0, max(ef, k), 0)[:k]]

            def delete(self, i):
                self.index.mark_deleted(i)
                self.deleted.add(i)
        """)
    res = _at_most_a_quarter("10.hnsw", cheat)
    assert any("hnswlib" in h for h in res["hints"]), res["hints"]


# --------------------------------------------------------------------------- routes to the package
ROUTES = {
    "import_module": """\
import importlib

def merge_k_best(lists, k):
    return importlib.import_module("embed" + "lab.heap").merge_k_best(lists, k)
""",
    "exec": """\
def merge_k_best(lists, k):
    ns = {}
    exec("from embed" + "lab.heap import merge_k_best as f", ns)
    return ns["f"](lists, k)
""",
    "__import__ and sys.modules": """\
import sys

def merge_k_best(lists, k):
    name = "embed" + "lab.heap"
    __import__(name)
    return sys.modules[name].merge_k_best(lists, k)
""",
    "exec of the package's source": """\
import importlib.util

def merge_k_best(lists, k):
    spec = importlib.util.find_spec("embed" + "lab")
    folder = list(spec.submodule_search_locations or [])
    if not folder:
        import importlib.metadata as md, json
        direct = md.distribution("embed" + "lab").read_text("direct_url.json")
        folder = [json.loads(direct)["url"].removeprefix("file://") + "/embed" + "lab"]
    ns = {"__name__": "heap_copy"}
    exec(open(folder[0] + "/heap.py").read(), ns)
    return ns["merge_k_best"](lists, k)
""",
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_routes_around_the_import_ban(route: str) -> None:
    _at_most_a_quarter("17.merge", ROUTES[route])


def test_an_extra_import_cell_above_the_answer() -> None:
    src, setup = _solution("17.merge")
    extra = setup + ["from embedlab.heap import merge_k_best as _ready\n"]
    cheat = "def merge_k_best(lists, k):\n    return _ready(lists, k)\n"
    res = _at_most_a_quarter("17.merge", cheat, setup=extra)
    assert any("package" in h for h in res["hints"]), res["hints"]
    # the same import, hidden from a reading of the source, meets the import hook
    hidden = setup + ["import embedlab.heap\n"]
    cheat = ("import sys\n\ndef merge_k_best(lists, k):\n"
             "    return sys.modules['embed' + 'lab.heap'].merge_k_best(lists, k)\n")
    res = _at_most_a_quarter("17.merge", cheat, setup=hidden)


def test_a_wrapper_around_the_packages_anisotropic_encode() -> None:
    cheat = ("def anisotropic_encode(x, codebooks, eta, n_iter=10):\n"
             "    from embedlab.index import anisotropic as a\n"
             "    return a.anisotropic_encode(x, codebooks, eta, n_iter)\n")
    _at_most_a_quarter("11.encode", cheat)


# --------------------------------------------------------------------------- pasted code
def test_two_adjacent_teaching_cells_pasted() -> None:
    src, _ = _solution("02.sgns_epoch")
    nb = nbformat.read(next((ROOT / "notebooks").glob("02_*.ipynb")), as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    mine = tokens(src)
    pair = max(range(len(code) - 1),
               key=lambda i: sum((tokens(code[i] + "\n" + code[i + 1]) & mine).values()))
    pasted = (code[pair] + "\n\n" + code[pair + 1]).replace("\n", "\n    ")
    cheat = ("def sgns_epoch(corpus, W_in, W_out, window=5, negative=5, sample=1e-3, lr=0.025,\n"
             "               table_size=100_000, seed=0):\n    " + pasted + "\n    return []\n")
    res = _at_most_a_quarter("02.sgns_epoch", cheat)
    assert "notebooks/02_" in res["hints"][0], res["hints"]


def test_the_packages_body_pasted() -> None:
    from embedlab import glove

    body = inspect.getsource(glove._adagrad_epoch)
    body = "\n".join(ln for ln in body.splitlines() if "clip" not in ln)
    cheat = (body + "\n\n\ndef glove_epoch(params, grad_sq, rows, cols, x, order, lr=0.05,\n"
             "                x_max=100.0, alpha=0.75):\n"
             "    W, C, b, c = params\n    gW, gC, gb, gc = grad_sq\n"
             "    f = np.minimum(1.0, (np.asarray(x) / x_max) ** alpha)\n"
             "    return _adagrad_epoch(rows[order], cols[order], np.log(x)[order], f[order],\n"
             "                          W, C, b, c, gW, gC, gb, gc, lr)\n")
    res = _at_most_a_quarter("03.glove_epoch", cheat)
    assert "embedlab/glove.py" in res["hints"][0], res["hints"]


# ------------------------------------------------------------------- the grade is the grader's
def test_a_forged_result_file_scores_zero() -> None:
    cheat = textwrap.dedent("""\
        import json, os, sys, glob

        for target in sys.argv[1:] + glob.glob("/tmp/embedlab-grade-*/result.json"):
            try:
                with open(target, "w") as fh:
                    json.dump({"id": "17.heap", "points": 4, "max": 4, "hints": []}, fh)
            except OSError:
                pass
        os._exit(0)

        def k_closest_heap(points, k):
            return []
        """)
    res = grade_cell("17.heap", cheat, _solution("17.heap")[1])
    assert res["points"] == 0, res


def test_exiting_between_checks_keeps_no_more_points() -> None:
    src, setup = _solution("17.partition")
    cheat = src + "\n\nimport os\n_calls = [0]\n_real = partition\n\n" + textwrap.dedent("""\
        def partition(values, pivot_index):
            _calls[0] += 1
            if _calls[0] > 3:
                os._exit(0)
            return _real(values, pivot_index)
        """)
    res = grade_cell("17.partition", cheat, setup)
    assert res["points"] < res["max"]
    assert any("ended with exit code 0" in h for h in res["hints"]), res["hints"]


def test_a_monkeypatched_check_changes_nothing() -> None:
    cheat = textwrap.dedent("""\
        import sys
        for name, mod in list(sys.modules.items()):
            if name.startswith("embed" + "lab"):
                for attr in dir(mod):
                    if "check" in attr:
                        setattr(mod, attr, lambda *a, **k: None)

        def partition(values, pivot_index):
            return list(values), 0
        """)
    res = grade_cell("17.partition", cheat, _solution("17.partition")[1])
    assert res["points"] < res["max"] / 2, res


# --------------------------------------------------------------------------- processes
def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("how", ["setsid", "start_new_session", "double fork"])
def test_nothing_an_answer_starts_outlives_grading(tmp_path: Path, how: str) -> None:
    pidfile = tmp_path / "pid.txt"
    spawn = {
        "setsid": f"subprocess.Popen(['setsid', 'sh', '-c', 'echo $$ > {pidfile}; sleep 120'])",
        "start_new_session": ("subprocess.Popen(['sh', '-c', 'echo $$ > " + str(pidfile)
                              + "; sleep 120'], start_new_session=True)"),
        "double fork": ("subprocess.Popen(['sh', '-c', r'(sh -c \"echo \\$$ > "
                        + str(pidfile) + "; sleep 120\" &) ; exit 0'])"),
    }[how]
    src, setup = _solution("17.partition")
    cheat = f"import subprocess, time\n{spawn}\ntime.sleep(0.5)\n\n" + src
    res = grade_cell("17.partition", cheat, setup)
    assert res["points"] == res["max"], res  # a correct answer keeps its points
    for _ in range(50):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        time.sleep(0.1)
    pid = int(pidfile.read_text().split()[0])
    time.sleep(0.3)
    assert not _pid_alive(pid), f"{how}: process {pid} outlived the grading"


def test_a_sleeping_child_holding_the_pipes_costs_nothing() -> None:
    src, setup = _solution("17.partition")
    cheat = ("import subprocess, sys\n"
             "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n\n" + src)
    start = time.monotonic()
    res = grade_cell("17.partition", cheat, setup, timeout=30)
    assert res["points"] == res["max"], res
    assert time.monotonic() - start < 25, "the grader waited on the child's pipes"


def test_the_timeout_says_what_happened() -> None:
    cheat = "def partition(values, pivot_index):\n    while True:\n        pass\n"
    res = grade_cell("17.partition", cheat, _solution("17.partition")[1], timeout=5)
    assert res["points"] == 0
    assert re.search(r"stopped after 5 s while running the check '.+'", res["hints"][0]), res


# --------------------------------------------------------------------------- the command line
def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "embedlab.cli", "grade", *args],
                          capture_output=True, text=True, cwd=ROOT)


def test_missing_notebook_one_line_exit_2(tmp_path: Path) -> None:
    proc = _cli(str(tmp_path / "nope.ipynb"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no notebook at" in lines[0] and "check the path" in lines[0]


def test_truncated_notebook_one_line_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "17_k_closest_points.ipynb"
    text = (ROOT / "exercises" / "17_k_closest_points.ipynb").read_text()
    path.write_text(text[: len(text) // 2])
    proc = _cli(str(path))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a readable notebook" in lines[0] and "checkpoint" in lines[0]


def test_a_renamed_copy_grades_by_its_metadata(tmp_path: Path) -> None:
    path = tmp_path / "x16.ipynb"
    path.write_text((ROOT / "solutions" / "17_k_closest_points.ipynb").read_text())
    res = grade_notebook(path)
    assert res["total"] == res["max"] == 10
    empty = tmp_path / "mine.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, empty)
    with pytest.raises(GradeError, match="no graded cells"):
        grade_notebook(empty)


def test_declared_refusals_are_real_modules() -> None:
    import importlib.util

    for ex in checks.registry().values():
        for mod in ex.refuse:
            assert importlib.util.find_spec(mod) is not None, (ex.id, mod)
        for ref in ex.reference:
            assert ":" in ref, (ex.id, ref)
    assert os.path.exists(ROOT / "embedlab" / "_sandbox_child.py")


def test_the_grading_process_is_a_subreaper_only_while_a_sandbox_lives() -> None:
    # orphans of the answer are ours to kill while it runs; afterwards a server this process
    # starts (PostgreSQL daemonises) must be adopted by init, or its death leaves our zombie
    from embedlab import sandbox

    before = sandbox._prctl(37)
    assert before in (0, 1), "the course runs on Linux, where prctl answers"
    with sandbox.Sandbox(timeout=30):
        assert sandbox._prctl(37) == 1
    assert sandbox._prctl(37) == before


SCANS_WHEN_IT_CAN_SEE = '''
    def search(self, q, k, ef=64, allowed=None):
        # a scan while the vectors are readable, the graph only once the check hides them
        if k < 1:
            raise ValueError("k")
        if np.isnan(self.x).any():
            return self._walk(q, k, ef, allowed)
        ids = [p for p in range(len(self.levels)) if p not in self.deleted
               and (allowed is None or allowed[p])]
        d = ((self.x[ids] - np.asarray(q, dtype=np.float64)) ** 2).sum(axis=1)
        return [ids[j] for j in np.argsort(d, kind="stable")[:k]]
'''


def test_a_scan_that_walks_the_graph_only_when_counted() -> None:
    # recall is measured where the index sees its vectors, distances are counted with them
    # hidden: the counted searches must return the uncounted searches' ids
    src, setup = _solution("10.hnsw")
    walk = src.replace("    def search(self, q, k, ef=64, allowed=None):",
                       "    def _walk(self, q, k, ef=64, allowed=None):")
    assert walk != src
    end = "        ### END SOLUTION"
    cheat = walk.replace(end, SCANS_WHEN_IT_CAN_SEE + end)
    res = grade_cell("10.hnsw", cheat, setup, timeout=60)
    assert res["points"] <= 0.75 * res["max"], (res["points"], res["hints"])
    assert sum("other ids" in h for h in res["hints"]) >= 2, res["hints"]
