"""The child side of :mod:`embedlab.sandbox`: a fresh interpreter that runs untrusted code and
serves its objects to the parent over one socket.

This file is run as a script (``python -I .../_sandbox_child.py FD``), never imported as part of
the package, so the package is not in ``sys.modules`` when the answer runs. It uses only the
standard library and numpy (torch when the parent sends tensors or the answer imports it).

Messages are length-prefixed pickles. The parent is trusted: what it sends is unpickled as is.
What this side sends back is built only from plain values (numbers, strings, containers, numpy
arrays) and persistent ids (references to objects that stay here, tensors as arrays), so the
parent can read it with a restricted unpickler.

While the answer's code runs ("answer mode"): an import hook refuses the configured modules
(their ``sys.modules`` entries are set aside, so a cached module cannot be reached either); an
audit hook refuses opening files under the configured folders (the sources of refused packages);
configured attributes (``torch.nn.functional.cross_entropy``) are replaced by a function that
raises. Outside answer mode (unpickling the parent's arguments, trusted calls) nothing is refused.
"""

from __future__ import annotations

import builtins
import importlib.abc
import importlib.machinery
import io
import os
import pickle
import random
import socket
import struct
import sys
import traceback
import types

ANSWER = False          # True while answer code runs
CONFIG: dict = {}
NS: dict = {"__name__": "__graded__", "__builtins__": builtins}
REFS: dict[int, object] = {}        # ref id -> object kept here for the parent
REF_OF: dict[int, int] = {}         # id(object) -> ref id
MIRRORS: dict[int, object] = {}     # mirror id -> torch Module / Optimizer shared with the parent
_NEXT = [1]
_STASH: dict[str, object] = {}
_RNG_BEFORE: bytes | None = None
_PATCHED: list = []
SOCK: socket.socket | None = None


# --------------------------------------------------------------------------- framing
def _send(obj_bytes: bytes) -> None:
    SOCK.sendall(struct.pack("!Q", len(obj_bytes)) + obj_bytes)


def _recv_exact(n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = SOCK.recv(min(n - got, 1 << 20))
        if not b:
            raise EOFError("the parent closed the connection")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _recv() -> object:
    (n,) = struct.unpack("!Q", _recv_exact(8))
    return _ParentUnpickler(io.BytesIO(_recv_exact(n))).load()


# --------------------------------------------------------------------------- refusal
class _Refused(types.ModuleType):
    """A module that raises ``ImportError`` (with the reason) at its first use."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(name)
        object.__setattr__(self, "_reason", reason)
        object.__setattr__(self, "__path__", [])

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        raise ImportError(object.__getattribute__(self, "_reason"))


def _noop_check(*args, **kwargs) -> float:
    print("check(): the grader runs the checks itself")
    return 0.0


def _stub(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = []
    mod.check = _noop_check
    return mod


def _reason_for(name: str) -> str | None:
    for prefix, reason in CONFIG.get("refuse", ()):
        if name == prefix or name.startswith(prefix + "."):
            return reason
    return None


def _prefixes() -> tuple[str, ...]:
    out = []
    for prefix, _ in CONFIG.get("refuse", ()):
        out += [prefix, prefix + "."]
    return tuple(out) + tuple(CONFIG.get("stubs", ()))


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return name.startswith(prefixes) and (_reason_for(name) is not None
                                          or name in CONFIG.get("stubs", ()))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if not ANSWER:
            return None
        if fullname in CONFIG.get("stubs", ()):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if _reason_for(fullname) is not None:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        if spec.name in CONFIG.get("stubs", ()):
            return _stub(spec.name)
        return _Refused(spec.name, _reason_for(spec.name) or "refused")

    def exec_module(self, module):
        return None


def _under(path: str, folders: list[str]) -> bool:
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return any(real == f or real.startswith(f + os.sep) for f in folders)


def _audit(event: str, args: tuple) -> None:
    if not ANSWER:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        folders = CONFIG.get("protect", ())
        if folders and _under(args[0], folders):
            raise PermissionError(CONFIG.get("protect_reason", "refused"))


def _refused_attr(reason: str):
    def refused(*args, **kwargs):
        raise ImportError(reason)
    return refused


def _enter_answer() -> None:
    global ANSWER
    prefixes = _prefixes()
    if prefixes:
        for name in [n for n in sys.modules if n.startswith(prefixes)]:
            if _matches(name, prefixes) and name not in _STASH:
                _STASH[name] = sys.modules.pop(name)
    for modname, attr, reason in CONFIG.get("refuse_attrs", ()):
        mod = sys.modules.get(modname)
        if mod is not None and hasattr(mod, attr):
            _PATCHED.append((mod, attr, getattr(mod, attr)))
            setattr(mod, attr, _refused_attr(reason))
    ANSWER = True


def _leave_answer() -> None:
    global ANSWER
    ANSWER = False
    while _PATCHED:
        mod, attr, value = _PATCHED.pop()
        setattr(mod, attr, value)
    prefixes = _prefixes()
    if prefixes:
        for name in [n for n in sys.modules if n.startswith(prefixes)]:
            if _matches(name, prefixes):
                del sys.modules[name]
    sys.modules.update(_STASH)
    _STASH.clear()


class _AnswerMode:
    def __enter__(self):
        if not ANSWER:
            _enter_answer()
            self.entered = True
        else:
            self.entered = False
        return self

    def __exit__(self, *exc):
        if self.entered:
            _leave_answer()
        return False


# ------------------------------------------------------------------ proxies of parent objects
class ParentObject:
    """Something that stays in the parent (a one-pass stream, a counting callback): every use
    is a request to the parent."""

    __slots__ = ("_pid",)

    def __init__(self, pid: int) -> None:
        object.__setattr__(self, "_pid", pid)

    def __call__(self, *args, **kwargs):
        return _ask(("pcall", self._pid, args, kwargs))

    def __iter__(self):
        return ParentIterator(_ask(("piter", self._pid)))

    def __len__(self):
        return _ask(("plen", self._pid))

    def __getitem__(self, key):
        return _ask(("pcallattr", self._pid, "__getitem__", (key,), {}))

    def __enter__(self):
        return _ask(("pcallattr", self._pid, "__enter__", (), {}))

    def __exit__(self, *exc):
        return _ask(("pcallattr", self._pid, "__exit__", (None, None, None), {}))

    def __getattr__(self, name):
        value = _ask(("pgetattr", self._pid, name))
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "\x00pmethod":
            return ParentMethod(self._pid, name)
        return value


class ParentMethod:
    """A method of a parent-side object: calling it is one request."""

    __slots__ = ("_pid", "_name")

    def __init__(self, pid: int, name: str) -> None:
        self._pid, self._name = pid, name

    def __call__(self, *args, **kwargs):
        return _ask(("pcallattr", self._pid, self._name, args, kwargs))


class ParentIterator:
    __slots__ = ("_pid", "_buf", "_done")

    def __init__(self, pid: int) -> None:
        self._pid, self._buf, self._done = pid, [], False

    def __iter__(self):
        return self

    def __next__(self):
        if not self._buf:
            if self._done:
                raise StopIteration
            items, done = _ask(("pnext", self._pid, 256))
            self._buf, self._done = list(reversed(items)), done
            if not self._buf:
                raise StopIteration
        return self._buf.pop()


def _rebuild_param(data, requires_grad, grad):
    import torch

    p = torch.nn.Parameter(data, requires_grad=requires_grad)
    if grad is not None:
        p.grad = grad
    return p


class _ParentUnpickler(pickle.Unpickler):
    def persistent_load(self, pid):
        kind = pid[0]
        if kind == "ref":
            return REFS[pid[1]]
        if kind == "pobj":
            return ParentObject(pid[1])
        if kind == "mirror":
            return MIRRORS[pid[1]]
        if kind == "mparam":
            return dict(MIRRORS[pid[1]].named_parameters())[pid[2]]
        if kind == "param":
            return _rebuild_param(*pid[1:])
        raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")


# --------------------------------------------------------------------------- encoding results
_PLAIN = (type(None), bool, int, float, complex, str, bytes, bytearray, range, slice)


def _new_ref(obj: object) -> int:
    key = id(obj)
    if key in REF_OF and REFS.get(REF_OF[key]) is obj:
        return REF_OF[key]
    rid = _NEXT[0]
    _NEXT[0] += 1
    REFS[rid], REF_OF[key] = obj, rid
    return rid


class _Marker:
    """A value prepared for the wire: pickled as a persistent id, never by reduction."""

    __slots__ = ("pid",)

    def __init__(self, pid: tuple) -> None:
        self.pid = pid


def _wire(obj: object, memo: dict | None = None) -> object:
    """``obj`` with every value the parent may not rebuild replaced by a marker: objects that
    stay here become references, tensors become arrays. Containers are walked; numpy arrays of
    numbers and plain values pass as they are."""
    memo = {} if memo is None else memo
    if isinstance(obj, _PLAIN):
        return obj
    key = id(obj)
    if key in memo:
        return memo[key]
    tp = type(obj)
    if tp in (list, tuple, set, frozenset) or isinstance(obj, (tuple, list)):
        items = [_wire(v, memo) for v in obj]
        if tp in (set, frozenset):
            out = tp(items)
        elif isinstance(obj, tuple):
            out = tuple(items)
        else:
            out = items
        memo[key] = out
        return out
    if isinstance(obj, dict):
        out = {_wire(k, memo): _wire(v, memo) for k, v in obj.items()}
        memo[key] = out
        return out
    mod = tp.__module__ or ""
    if mod == "numpy" and tp.__name__ == "ndarray":
        if obj.dtype.hasobject:
            return _Marker(("objarray", obj.shape, [_wire(v, memo) for v in obj.ravel()]))
        return obj
    if mod == "numpy" and hasattr(obj, "dtype") and getattr(obj, "shape", None) == ():
        return obj  # a numpy scalar
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        t = obj.detach()
        if t.layout != torch.strided:
            t = t.to_dense()
        dtype = str(t.dtype).replace("torch.", "")
        if t.dtype == torch.bfloat16:
            t = t.float()
        return _Marker(("tensor", t.cpu().contiguous().numpy().copy(), dtype,
                        bool(obj.requires_grad)))
    if isinstance(obj, ParentObject):
        return _Marker(("pobj", object.__getattribute__(obj, "_pid")))
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType)) and \
            getattr(obj, "__self__", None) is not None and \
            not isinstance(obj.__self__, types.ModuleType):
        return _Marker(("method", _new_ref(obj.__self__), obj.__name__))
    return _Marker(("ref", _new_ref(obj), tp.__qualname__, callable(obj)))


class _ChildPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if type(obj) is _Marker:
            return obj.pid
        return None


def _encode(obj: object) -> bytes:
    buf = io.BytesIO()
    _ChildPickler(buf, protocol=5).dump(_wire(obj))
    return buf.getvalue()


def _reply(msg: tuple) -> None:
    try:
        data = _encode(msg)
    except Exception as exc:  # an answer's value that cannot be sent
        data = _encode(("err", ["TypeError", "Exception"],
                        f"the answer returned something the grader cannot read back: "
                        f"{type(exc).__name__}: {exc}", ""))
    _send(data)


# ------------------------------------------------------------------- state of shared objects
def _module_state(mod) -> dict:
    return {"params": {n: (p.detach().clone(), None if p.grad is None else p.grad.detach().clone())
                       for n, p in mod.named_parameters()},
            "buffers": {n: b.detach().clone() for n, b in mod.named_buffers()},
            "training": {n: m.training for n, m in mod.named_modules()}}


def _apply_module_state(mod, state: dict) -> None:
    import torch

    params = dict(mod.named_parameters())
    with torch.no_grad():
        for n, (data, grad) in state["params"].items():
            if n in params:
                params[n].data = data.clone().to(params[n].dtype) \
                    if params[n].shape != data.shape else params[n].data.copy_(data)
                params[n].grad = None if grad is None else grad.clone()
        bufs = dict(mod.named_buffers())
        for n, b in state["buffers"].items():
            if n in bufs:
                bufs[n].copy_(b)
    for n, m in mod.named_modules():
        if n in state["training"]:
            m.training = state["training"][n]


_SENT: dict[int, bytes] = {}  # the last state of each shared container sent back


def _changed(mid: int, state: object) -> bool:
    blob = pickle.dumps(_wire(state), protocol=5) if not _has_refs(state) else b""
    if blob and _SENT.get(mid) == blob:
        return False
    _SENT[mid] = blob
    return True


def _has_refs(state: object) -> bool:
    try:
        pickle.dumps(state, protocol=5)
    except Exception:
        return True
    return False


def _mirror_states() -> dict:
    torch = sys.modules.get("torch")
    out = {}
    for mid, obj in MIRRORS.items():
        if type(obj) is dict:
            if _changed(mid, obj):
                out[mid] = ("dict", dict(obj))
        elif type(obj) is list:
            if _changed(mid, obj):
                out[mid] = ("list", list(obj))
        elif torch is not None and isinstance(obj, torch.nn.Module):
            out[mid] = ("module", _module_state(obj))
        else:
            out[mid] = ("optimizer", obj.state_dict())
    return out


def _apply_mirror_states(states: dict) -> None:
    for mid, (kind, state) in states.items():
        obj = MIRRORS.get(mid)
        if obj is None or kind in ("dict", "list"):
            continue
        if kind == "module":
            _apply_module_state(obj, state)
        else:
            obj.load_state_dict(state)


def _rng_state() -> bytes:
    """Python's, numpy's global and (when loaded) torch's random states, as one pickle of
    plain values and numpy arrays (what the parent's restricted unpickler reads)."""
    import numpy as np

    out = {"random": random.getstate(), "numpy": np.random.get_state()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.get_rng_state().numpy()
    return pickle.dumps(out, protocol=5)


def _set_rng_state(blob: bytes | None) -> None:
    if not blob:
        return
    import numpy as np

    state = pickle.loads(blob)
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in state:
        torch.set_rng_state(torch.from_numpy(np.asarray(state["torch"]).copy()))


def _arg_state(obj):
    """What copy-restore sends back for one argument: None when nothing to restore."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        return ("array", obj)
    if isinstance(obj, np.random.Generator):
        return ("generator", obj.bit_generator.state)
    if isinstance(obj, random.Random):
        return ("random", obj.getstate())
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor) \
            and not isinstance(obj, torch.nn.Parameter):
        return ("tensor", obj.detach().clone(), None if obj.grad is None else obj.grad.clone())
    if isinstance(obj, list):
        return ("list", list(obj))
    if isinstance(obj, dict):
        return ("dict", dict(obj))
    return None


# --------------------------------------------------------------------------- serving
def _error(exc: BaseException) -> tuple:
    names = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
    tb = traceback.extract_tb(exc.__traceback__)
    line = next((f"{f.filename}:{f.lineno}" for f in reversed(tb)
                 if f.filename.startswith("<")), "")
    msg = str(exc)
    eid = getattr(exc, "_embedlab_eid", None)
    return ("err", names, f"{msg}" if len(msg) < 2000 else msg[:2000], line,
            eid if isinstance(eid, int) else None)


def _call_with_state(fn, args, kwargs, sync, rng, mirror_paths):
    global _RNG_BEFORE
    _register_mirrors(mirror_paths, args, kwargs)
    _apply_mirror_states(sync or {})
    if rng:
        _set_rng_state(rng)
        _RNG_BEFORE = rng
    else:
        _RNG_BEFORE = _rng_state()
    with _AnswerMode():
        out = fn(*args, **kwargs)
    restore = {}
    for key, value in list(enumerate(args)) + list(kwargs.items()):
        st = _arg_state(value)
        if st is not None:
            restore[key] = st
    return out, restore


def _register_mirrors(paths, args, kwargs) -> None:
    for where, key, mid in paths or ():
        obj = args[key] if where == "args" else kwargs[key]
        MIRRORS[mid] = obj


def _after(out, restore) -> tuple:
    after = _rng_state()
    return ("ok", out, restore, None if after == _RNG_BEFORE else after,
            _mirror_states() if MIRRORS else {})


def _handle(msg: tuple) -> tuple:
    op = msg[0]
    if op == "exec":
        _, source, filename = msg
        code = compile(source, filename, "exec")
        with _AnswerMode():
            exec(code, NS)
        return ("ok", None)
    if op == "has":
        return ("ok", msg[1] in NS)
    if op == "get":
        return ("ok", NS[msg[1]])
    if op == "call":
        _, target, args, kwargs, sync, rng, mirror_paths = msg
        return _after(*_call_with_state(target, args, kwargs, sync, rng, mirror_paths))
    if op == "callattr":
        _, obj, name, args, kwargs, sync, rng, mirror_paths = msg
        with _AnswerMode():
            fn = getattr(obj, name)
        return _after(*_call_with_state(fn, args, kwargs, sync, rng, mirror_paths))
    if op == "getattr":
        _, obj, name = msg
        with _AnswerMode():
            value = getattr(obj, name)
        if callable(value) and isinstance(value, (types.MethodType, types.BuiltinMethodType)) \
                and getattr(value, "__self__", None) is obj:
            return ("ok", ("\x00method", name))
        return ("ok", value)
    if op == "setattr":
        _, obj, name, value = msg
        with _AnswerMode():
            setattr(obj, name, value)
        return ("ok", None)
    if op == "delattr":
        with _AnswerMode():
            delattr(msg[1], msg[2])
        return ("ok", None)
    if op == "getitem":
        with _AnswerMode():
            return ("ok", msg[1][msg[2]])
    if op == "setitem":
        with _AnswerMode():
            msg[1][msg[2]] = msg[3]
        return ("ok", None)
    if op == "len":
        with _AnswerMode():
            return ("ok", len(msg[1]))
    if op == "contains":
        with _AnswerMode():
            return ("ok", msg[2] in msg[1])
    if op == "bool":
        with _AnswerMode():
            return ("ok", bool(msg[1]))
    if op == "iter":
        with _AnswerMode():
            return ("ok", ("\x00iter", _new_ref(iter(msg[1]))))
    if op == "next":
        _, it, n = msg
        items, done = [], False
        with _AnswerMode():
            for _ in range(n):
                try:
                    items.append(next(it))
                except StopIteration:
                    done = True
                    break
        return ("ok", (items, done))
    if op == "repr":
        with _AnswerMode():
            return ("ok", repr(msg[1])[:500])
    if op == "trusted":
        _, target, args, kwargs = msg
        module, _, qual = target.partition(":")
        fn = importlib.import_module(module)
        for part in qual.split("."):
            fn = getattr(fn, part)
        return ("ok", fn(*args, **kwargs))
    if op == "release":
        for rid in msg[1]:
            obj = REFS.pop(rid, None)
            if obj is not None and REF_OF.get(id(obj)) == rid:
                del REF_OF[id(obj)]
        for mid in msg[2]:
            MIRRORS.pop(mid, None)
        return ("ok", None)
    if op == "preload":
        for name in msg[1]:
            importlib.import_module(name)
        return ("ok", None)
    raise ValueError(f"unknown request {op!r}")


def _ask(request: tuple):
    """Send a request to the parent and serve the parent's requests until its answer comes."""
    _send(_encode(("req", request)))
    return _serve(until_answer=True)


def _serve(until_answer: bool = False):
    while True:
        msg = _recv()
        kind = msg[0]
        if kind == "ans":           # the parent's answer to our request
            if until_answer:
                if msg[1] == "err":  # a parent-side object raised: raise the same kind here
                    _, _, names, text, eid = msg
                    exc = next((getattr(builtins, n) for n in names
                                if isinstance(getattr(builtins, n, None), type)
                                and issubclass(getattr(builtins, n), Exception)), RuntimeError)
                    err = exc(text)
                    err._embedlab_eid = eid
                    raise err
                return msg[2]
            continue
        if kind == "bye":
            return None
        try:
            result = _handle(msg)
        except BaseException as exc:  # noqa: BLE001 - everything the answer raises goes back
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) and not ANSWER:
                raise
            result = _error(exc)
        _reply(result)


def main() -> None:
    global SOCK, CONFIG
    fd = int(sys.argv[1])
    SOCK = socket.socket(fileno=fd)
    sys.meta_path.insert(0, _Finder())
    sys.addaudithook(_audit)
    CONFIG = _recv()
    if CONFIG.get("memory_bytes"):
        try:
            import resource

            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = CONFIG["memory_bytes"]
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        except (ImportError, ValueError, OSError):
            pass
    for name in ("numpy", *CONFIG.get("preload", ())):
        importlib.import_module(name)
    _reply(("ok", os.getpid()))
    _serve()


if __name__ == "__main__":
    main()
