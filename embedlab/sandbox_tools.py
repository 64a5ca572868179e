"""Small trusted functions the checks run next to the answer (in the sandbox's child process, or
in this process when ``check()`` is called inside a notebook).

They exist for what cannot cross a process boundary: autograd through the answer's result, and
reaching into an index the answer built. Each returns plain data (arrays, numbers, lists) that
the check then compares with its own reference in the grading process.
"""

from __future__ import annotations

from typing import Any


def value_and_grads(fn: Any, args: list, grad_args: list[int], weight: Any = None,
                    kwargs: dict | None = None) -> tuple[Any, bool, list[Any]]:
    """Call ``fn(*args)`` with the tensors at positions ``grad_args`` requiring gradients, then
    back-propagate ``(out * weight).sum()`` (``out`` itself when ``weight`` is None and ``out``
    is a scalar). Returns ``(out detached, out.requires_grad, [gradient of each grad_arg])``;
    a gradient is None when none reached that input."""
    import torch

    args = list(args)
    for i in grad_args:
        args[i] = torch.as_tensor(args[i]).detach().clone().requires_grad_(True)
    out = fn(*args, **(kwargs or {}))
    if not isinstance(out, torch.Tensor):
        return out, False, [None for _ in grad_args]
    needs = bool(out.requires_grad)
    if needs:
        w = None if weight is None else torch.as_tensor(weight, dtype=out.dtype)
        total = out.sum() if w is None else (out * w).sum()
        total.backward()
    grads = [None if args[i].grad is None else args[i].grad.detach().clone() for i in grad_args]
    return out.detach(), needs, grads


def map_call(fn: Any, calls: list) -> list:
    """``[fn(*args) for args in calls]``, run where ``fn`` lives: many calls, one round trip."""
    return [fn(*args) for args in calls]


def float_arrays(obj: Any, shape: tuple[int, ...]) -> list[str]:
    """Names of the attributes of ``obj`` that hold a float array of exactly ``shape`` (numpy or
    torch), also inside lists, tuples and dicts one level down."""
    found = []
    for name, value in list(vars(obj).items()):
        for path, item in _members(name, value):
            if _is_float_array(item, shape):
                found.append(path)
    return found


def poison_float_arrays(obj: Any, shape: tuple[int, ...]) -> list[str]:
    """Fill every float array of ``shape`` that ``obj`` holds (see :func:`float_arrays`) with
    NaN, in place or by replacement; returns the names touched. A search that still finds the
    right neighbours afterwards computed its distances some other way: through the distance
    function the check hands it."""
    import numpy as np

    touched = []
    for name, value in list(vars(obj).items()):
        if _is_float_array(value, shape):
            setattr(obj, name, _nan_like(value))
            touched.append(name)
        elif isinstance(value, (list, tuple)):
            items = list(value)
            hit = False
            for i, item in enumerate(items):
                if _is_float_array(item, shape):
                    items[i], hit = _nan_like(item), True
            if hit:
                setattr(obj, name, type(value)(items) if isinstance(value, tuple) else items)
                touched.append(name)
        elif isinstance(value, dict):
            for key, item in list(value.items()):
                if _is_float_array(item, shape):
                    value[key] = _nan_like(item)
                    touched.append(f"{name}[{key!r}]")
    del np
    return touched


def _members(name: str, value: Any):
    yield name, value
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value[:64]):
            yield f"{name}[{i}]", item
    elif isinstance(value, dict):
        for key in list(value)[:64]:
            yield f"{name}[{key!r}]", value[key]


def _is_float_array(value: Any, shape: tuple[int, ...]) -> bool:
    shp = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shp is None or dtype is None or tuple(shp) != tuple(shape):
        return False
    kind = getattr(dtype, "kind", None)
    if kind is not None:
        return kind == "f"
    return getattr(dtype, "is_floating_point", False)


def _nan_like(value: Any) -> Any:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        out = value.detach().clone()
        out.fill_(float("nan"))
        return out
    return np.full(value.shape, np.nan, dtype=value.dtype)
