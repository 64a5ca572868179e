"""The ``embedlab`` command: course, grade, exercises, doctor, data, bench, book, clean,
capstone."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

DOCTOR_PACKAGES = ("numpy", "torch", "faiss-cpu", "hnswlib", "gensim", "sentence-transformers",
                   "scikit-learn", "numba", "papermill", "nbval", "jupyterlab")


def doctor_report() -> dict:
    """Versions, threads, CUDA and the data cache, as a dict (``embedlab doctor`` prints it)."""
    from embedlab import data

    versions = {}
    for pkg in DOCTOR_PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "missing"
    import torch

    cache = data.cache_dir()
    datasets = {}
    for name in data.REGISTRY:
        try:
            data.paths(name)
            datasets[name] = "ok"
        except data.DataError as exc:
            datasets[name] = f"problem: {exc}"
    return {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)",
        "profile": os.environ.get("EMBEDLAB_PROFILE", "(unset: notebooks use standard)"),
        "data_cache": str(cache),
        "packages": versions,
        "datasets": datasets,
    }


def _print_doctor(rep: dict) -> None:
    for key, value in rep.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k:<24} {v}")
        else:
            print(f"{key:<26} {value}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="embedlab", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    c = sub.add_parser("course", help="run every notebook with papermill and write REPORT.md")
    c.add_argument("--profile", default=os.environ.get("EMBEDLAB_PROFILE", "standard"))
    c.add_argument("--out", default="build/course")
    c.add_argument("--only", nargs="*", help="chapter numbers, e.g. 00 16")

    g = sub.add_parser("grade", help="grade an exercise notebook")
    g.add_argument("path", nargs="+")
    g.add_argument("--json", action="store_true", help="print the result as JSON")
    g.add_argument("--timeout", type=float, default=60.0, help="seconds per exercise")

    e = sub.add_parser("exercises", help="exercise notebooks from solutions/")
    e.add_argument("action", choices=["build", "check"])
    e.add_argument("--src", default="solutions")
    e.add_argument("--dst", default="exercises")

    sub.add_parser("doctor", help="versions, threads, CUDA, data cache")

    d = sub.add_parser("data", help="list or fetch the datasets; prepare the shared embeddings")
    d.add_argument("action", choices=["list", "fetch", "prepare"])
    d.add_argument("names", nargs="*")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--profile", default=os.environ.get("EMBEDLAB_PROFILE", "standard"),
                   help="prepare: the profile whose chapters' shared data to compute")

    sub.add_parser("bench", help="run every script in benchmarks/")

    b = sub.add_parser("book", help="build the course book (build/book/) from executed notebooks")
    b.add_argument("--src", default="build/course", help="executed notebooks (make course)")
    b.add_argument("--out", default="build/book")

    cl = sub.add_parser("clean", help="strip outputs and metadata from notebooks")
    cl.add_argument("paths", nargs="+")

    cap = sub.add_parser("capstone", help="score a capstone notebook on the sealed queries")
    cap.add_argument("action", choices=["score"])
    cap.add_argument("path", help="the capstone notebook, e.g. exercises/20_capstone.ipynb")
    cap.add_argument("--profile", default=None, help="ci | standard | full (default: "
                     "$EMBEDLAB_PROFILE, else standard)")
    cap.add_argument("--out", default="build/capstone", help="where history.json and the plot go")
    cap.add_argument("--no-baselines", action="store_true", help="skip the three baselines")
    cap.add_argument("--warm-cache", action="store_true",
                     help="build with the data cache as it is (build_s is then not a cold build)")

    args = p.parse_args(argv)

    if args.cmd == "course":
        from embedlab.course import run_course

        return 1 if run_course(args.profile, out_dir=args.out, only=args.only) else 0
    if args.cmd == "grade":
        from embedlab.grading import GradeError, format_table, grade_notebook

        try:
            results = {path: grade_notebook(path, timeout=args.timeout) for path in args.path}
        except GradeError as exc:
            print(f"embedlab grade: {exc}", file=sys.stderr)
            return 2
        if args.json:
            out = results[args.path[0]] if len(args.path) == 1 else results
            print(json.dumps(out, indent=1))
        else:
            for path, res in results.items():
                print(f"\n{path}\n{format_table(res)}")
        return 0
    if args.cmd == "exercises":
        from embedlab.grading import build_exercises, out_of_step

        if args.action == "build":
            for path in build_exercises(args.src, args.dst):
                print(f"wrote {path}")
            return 0
        problems = out_of_step(args.src, args.dst)
        print("\n".join(problems) or "exercises are in step with solutions")
        return 1 if problems else 0
    if args.cmd == "doctor":
        _print_doctor(doctor_report())
        return 0
    if args.cmd == "data":
        from embedlab import data

        if args.action == "prepare":
            from embedlab.prepare import prepare, report_lines

            rec = prepare(args.profile, quiet=args.quiet)
            print(report_lines(rec)[2])
            return 0
        if args.action == "list":
            for name, entry in data.REGISTRY.items():
                print(f"{name:<18} {entry.kind:<8} {entry.description}")
            return 0
        status = data.fetch(args.names or None, verbose=not args.quiet)
        bad = {k: v for k, v in status.items() if v != "ok"}
        for k, v in bad.items():
            print(f"{k}: {v}", file=sys.stderr)
        return 1 if bad else 0
    if args.cmd == "book":
        from embedlab.book import BookError, build_book

        try:
            build_book(args.src, args.out)
        except BookError as exc:
            print(f"embedlab book: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.cmd == "bench":
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   OPENBLAS_NUM_THREADS="1")
        for script in sorted(Path("benchmarks").glob("*.py")):
            print(f"== {script}", flush=True)
            rc = subprocess.call([sys.executable, str(script)], env=env)
            if rc:
                return rc
        return 0
    if args.cmd == "capstone":
        from embedlab.capstone import main_score

        return main_score(args.path, args.profile, args.out, not args.no_baselines,
                          not args.warm_cache)
    if args.cmd == "clean":
        from embedlab.course import clean_file

        for path in args.paths:
            if clean_file(path):
                print(f"cleaned {path}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
