"""The exercises' checks, one module per chapter (``ch17.py`` holds chapter 17's).

An exercise is declared once, with the name of the object the learner's graded cell defines and
the points it is worth; each check is a plain function that takes that object and raises
``AssertionError`` when the answer is wrong. The check's description is the hint a learner sees
when it fails, so write it as advice::

    ex = exercise("17.heap", name="k_closest_heap", points=3)

    @ex.check("returns exactly k points, nearest first")
    def _(fn):
        assert len(fn(points, 3)) == 3

Points are shared equally among an exercise's checks.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

CheckFn = Callable[[Any], None]


@dataclass
class Check:
    hint: str
    fn: CheckFn


@dataclass
class Exercise:
    id: str
    name: str
    points: float
    checks: list[Check] = field(default_factory=list)
    #: dotted ``embedlab`` names this exercise's graded cell may use on top of
    #: ``embedlab.grading.ALLOWED_FROM_EMBEDLAB`` (objects the exercise hands to the learner)
    allow: tuple[str, ...] = ()
    #: modules refused while this answer runs, beyond the package and the reference libraries
    #: every graded cell is refused (``("heapq",)`` when the exercise is to build the heap)
    refuse: tuple[str, ...] = ()
    #: ``(module, attribute)`` pairs refused while this answer runs: the torch losses the
    #: exercise asks the learner to write (``("torch.nn.functional", "cross_entropy")``)
    refuse_attrs: tuple[tuple[str, str], ...] = ()
    #: the package's own implementations of the same thing, as ``"module:qualname"``: an answer
    #: that shares most of its tokens with one of them is a copy
    reference: tuple[str, ...] = ()

    def check(self, hint: str) -> Callable[[CheckFn], CheckFn]:
        """Decorator: register ``fn(answer)`` as one check of this exercise."""

        def register(fn: CheckFn) -> CheckFn:
            self.checks.append(Check(hint, fn))
            return fn

        return register

    @property
    def chapter(self) -> str:
        return self.id.split(".", 1)[0]


_REGISTRY: dict[str, Exercise] = {}

#: torch's ready-made classification losses: refused in the exercises whose point is to write a
#: contrastive loss (a log-softmax over similarities), so the answer writes it
TORCH_LOSSES: tuple[tuple[str, str], ...] = (
    ("torch.nn.functional", "cross_entropy"), ("torch.nn.functional", "nll_loss"),
    ("torch.nn", "CrossEntropyLoss"), ("torch.nn", "NLLLoss"))


def raises(fn: Callable[..., Any], *args: Any, exc: type | tuple = ValueError) -> bool:
    """True when ``fn(*args)`` raises ``exc``; False when it returns. Any other exception
    propagates, so the learner's hint says what was raised instead."""
    import numpy as np

    try:
        with np.errstate(all="ignore"):
            fn(*args)
    except exc:
        return True
    return False


def must_raise(fn: Callable[..., Any], *args: Any, exc: type | tuple = ValueError) -> None:
    """Assert that ``fn(*args)`` raises ``exc``, saying what happened instead when it does not."""
    import numpy as np

    name = exc.__name__ if isinstance(exc, type) else " or ".join(e.__name__ for e in exc)
    try:
        with np.errstate(all="ignore"):
            out = fn(*args)
    except exc:
        return
    except Exception as other:  # the wrong kind of error is still wrong
        raise AssertionError(f"raised {type(other).__name__}, expected {name}") from None
    raise AssertionError(f"returned {np.asarray(out).ravel()[:4]} instead of raising {name}")


def expect_array(value: Any, shape: tuple | None = None, what: str = "the result",
                 dtype_kind: str | None = None) -> Any:
    """``value`` as a numpy array, or an ``AssertionError`` naming the expected and actual type
    and shape. ``shape`` may hold ``None`` for any size on that axis; ``dtype_kind`` is a numpy
    kind string (``"f"`` float, ``"i"`` signed int, ``"iu"`` any integer, ``"b"`` bool)."""
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception:  # ragged lists and odd objects
        raise AssertionError(f"{what}: expected an array of shape {shape}, got "
                             f"{type(value).__name__}") from None
    if arr.dtype == object:
        raise AssertionError(f"{what}: expected a numeric array of shape {shape}, got "
                             f"{type(value).__name__} holding objects") from None
    if shape is not None:
        ok = arr.ndim == len(shape) and all(
            w is None or w == g for w, g in zip(shape, arr.shape, strict=False))
        if not ok:
            want = tuple("any" if w is None else w for w in shape)
            raise AssertionError(f"{what}: expected shape {want}, got {type(value).__name__} "
                                 f"of shape {arr.shape}")
    if dtype_kind is not None and arr.dtype.kind not in dtype_kind:
        raise AssertionError(f"{what}: expected dtype kind {dtype_kind!r}, got {arr.dtype}")
    return arr


def expect_type(value: Any, types: type | tuple, what: str = "the result") -> Any:
    """``value`` itself, or an ``AssertionError`` naming the expected and actual type."""
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__
                                                                           for t in types)
        raise AssertionError(f"{what}: expected {names}, got {type(value).__name__}")
    return value


def exercise(id: str, name: str, points: float, allow: tuple[str, ...] = (),
             refuse: tuple[str, ...] = (), refuse_attrs: tuple[tuple[str, str], ...] = (),
             reference: tuple[str, ...] = ()) -> Exercise:
    """Declare an exercise. ``id`` is ``"NN.short_name"`` where NN is the chapter number.

    ``allow`` names ``embedlab`` objects the graded cell may use besides the utilities on
    ``embedlab.grading.ALLOWED_FROM_EMBEDLAB``; anything else it takes from the package scores 0.
    ``refuse`` and ``refuse_attrs`` add modules and attributes the grader refuses while this
    answer runs; ``reference`` names the package's implementations an answer must not copy.
    """
    chapter = id.split(".", 1)[0]
    if "." not in id or not (chapter.isdigit() and len(chapter) == 2):
        raise ValueError(f"exercise id must look like '17.heap', got {id!r}")
    if id in _REGISTRY:
        raise ValueError(f"exercise {id!r} is declared twice")
    if points <= 0:
        raise ValueError(f"exercise {id!r}: points must be positive, got {points}")
    for ref in reference:
        if ":" not in ref:
            raise ValueError(f"exercise {id!r}: reference must look like 'module:name', "
                             f"got {ref!r}")
    ex = Exercise(id=id, name=name, points=float(points), allow=tuple(allow),
                  refuse=tuple(refuse), refuse_attrs=tuple(tuple(r) for r in refuse_attrs),
                  reference=tuple(reference))
    _REGISTRY[id] = ex
    return ex


def _load_all() -> None:
    for mod in pkgutil.iter_modules(__path__):
        if mod.name.startswith("ch"):
            importlib.import_module(f"{__name__}.{mod.name}")


def registry() -> dict[str, Exercise]:
    """Every declared exercise, by id (imports every chapter's checks module)."""
    _load_all()
    return dict(_REGISTRY)


def _load_chapter(chapter: str) -> None:
    if any(m.name == f"ch{chapter}" for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.ch{chapter}")


# Chapter 16 (code and speech) came in before the heap and the checklist, which became 17 and 18;
# their exercises' earlier ids still name them (no old id is a new one).
RENAMED: dict[str, str] = {
    **{f"16.{n}": f"17.{n}" for n in ("heap", "merge", "partition")},
    **{f"17.{n}": f"18.{n}" for n in ("cosine_dot", "index_memory", "k_nearest", "matryoshka",
                                      "migration", "temperature")},
}


def get(id: str) -> Exercise:
    """One exercise by id (imports only its chapter's checks); a clear ``KeyError`` if unknown.
    An id from before the renumbering (``RENAMED``) gives the exercise it names now."""
    id = RENAMED.get(id, id)
    _load_chapter(id.split(".", 1)[0])
    if id in _REGISTRY:
        return _REGISTRY[id]
    reg = registry()
    if id not in reg:
        raise KeyError(f"unknown exercise {id!r}; known: {sorted(reg)}")
    return reg[id]


def for_chapter(chapter: str) -> list[Exercise]:
    """The exercises of chapter ``chapter`` (``"17"``), in id order."""
    _load_chapter(chapter)
    return sorted((e for e in _REGISTRY.values() if e.chapter == chapter), key=lambda e: e.id)


# --------------------------------------------------------------------------- across processes
# Under ``embedlab grade`` the answer is a proxy for an object in another process (see
# embedlab.sandbox); inside a notebook, ``check()`` hands the checks the object itself. These
# helpers work in both cases.
def is_remote(answer: Any) -> bool:
    """True when ``answer`` lives in the grader's child process."""
    from embedlab.sandbox import Remote, RemoteMethod

    return isinstance(answer, (Remote, RemoteMethod))


def trusted(answer: Any, function: str, *args: Any, **kwargs: Any) -> Any:
    """Run ``embedlab.sandbox_tools.<function>(*args)`` where the answer lives: in the child
    process for a proxy (its proxies resolve to the child's objects there), here otherwise."""
    if is_remote(answer):
        box = answer._sb_box
        return box.call(f"embedlab.sandbox_tools:{function}", *args, **kwargs)
    from embedlab import sandbox_tools

    return getattr(sandbox_tools, function)(*args, **kwargs)


def value_and_grads(fn: Any, args: list, grad_args: list[int], weight: Any = None) -> tuple:
    """``(out, out.requires_grad, [gradients])`` of ``fn(*args)`` with autograd run where ``fn``
    lives (see :func:`embedlab.sandbox_tools.value_and_grads`)."""
    return trusted(fn, "value_and_grads", fn, list(args), list(grad_args), weight)


def peak_memory(answer: Any, call: Callable[[], Any]) -> tuple[Any, int]:
    """``(call(), bytes)``: the peak memory ``call`` added where the answer runs. In the child
    process it is the growth of the peak resident set (``/proc``), read from here, so the answer
    cannot change it; for a local answer it is ``tracemalloc``'s peak."""
    if is_remote(answer):
        box = answer._sb_box
        box.rss_samples.clear()
        base = box.rss() or 0
        reset = box.reset_peak()
        out = call()
        samples = list(box.rss_samples)
        peak = box.peak_rss() if reset else max(samples, default=base)
        return out, max(0, (peak or base) - base)
    import tracemalloc

    tracemalloc.start()
    try:
        out = call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return out, peak


def sibling(answer: Any, name: str) -> Any:
    """Another object the graded cell defines (``sift_up`` next to ``k_closest_heap``): from the
    answer's process under ``embedlab grade``, from the notebook's namespace in ``check()``."""
    if is_remote(answer):
        box = answer._sb_box
        if not box.has(name):
            raise AssertionError(f"the graded cell does not define `{name}`")
        return box.get(name)
    glob = getattr(answer, "__globals__", None)
    if glob is None or name not in glob:
        raise AssertionError(f"the graded cell does not define `{name}`")
    return glob[name]
