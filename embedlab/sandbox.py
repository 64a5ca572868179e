"""Run untrusted code in a child interpreter and use its objects from here, as if they were local.

The grader (:mod:`embedlab.grading`) and the capstone scorer (:mod:`embedlab.capstone`) run a
learner's code this way: the code runs in a fresh child process, and this process (the *parent*)
keeps the checks, the references and the score. The two talk over one socket:

- the parent sends requests (run this cell, call that function with these arguments, read this
  attribute); arguments are pickled, and the child rebuilds them;
- the child answers with values built only from plain data (numbers, strings, containers, numpy
  arrays; torch tensors travel as arrays) and with *references* to objects that stay in the child,
  which appear here as :class:`Remote` proxies. The parent reads those answers with a restricted
  unpickler, so nothing the child sends can run code in the parent.

Nothing the answer prints or writes reaches the score: its output goes to a log file, there is no
result file to forge, and an answer that exits early (``os._exit``) simply stops answering: the
checks that had not run yet fail.

Semantics, so that checks read like ordinary Python:

- **copy-restore**: a numpy array, torch tensor, list, dict or random generator passed as an
  argument and changed in place by the answer is changed in place here too, after the call;
- **shared torch objects**: a ``torch.nn.Module`` or optimiser passed to the child stays linked to
  its copy there; after every call its parameters, gradients, buffers and optimiser state are
  copied back, so a check can hand a model to a learner's trainer and inspect it after ``step()``;
- **random state**: Python's, numpy's global and torch's global random states travel with every
  call, so ``torch.manual_seed(s)`` here seeds the dropout masks there;
- **parent-side objects**: functions, generators and iterators passed as arguments stay here; the
  child calls or iterates them through the socket (a stream the answer reads once, a distance
  function that counts its calls), so their bookkeeping cannot be tampered with.

Nothing outlives the sandbox: the child runs in its own session; on exit its process group is
killed, and so is every process it started, including those that left the group or the session
(this process becomes a *child subreaper* with ``prctl(PR_SET_CHILD_SUBREAPER)``, so orphans are
re-parented to it, and every descendant carries a token in its environment). The parent waits on
the child process and the socket, never on pipes.
"""

from __future__ import annotations

import io
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import types
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["Remote", "Sandbox", "SandboxDied", "SandboxError", "SandboxTimeout", "parent_side",
           "rss_of"]

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
TOKEN_VAR = "EMBEDLAB_SANDBOX_TOKEN"
_LIVE_CHILDREN: set[int] = set()
#: objects of these libraries are handed to the child as proxies (a connection cannot travel)
_PARENT_SIDE_MODULES = ("psycopg", "sqlite3", "apsw", "pgserver", "lancedb", "qdrant_client",
                        "pymilvus", "milvus_lite")


class SandboxError(Exception):
    """The child could not do what was asked. ``kind``: syntax, exception, died, timeout."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


class SandboxTimeout(SandboxError):
    def __init__(self, message: str) -> None:
        super().__init__("timeout", message)


class SandboxDied(SandboxError):
    def __init__(self, message: str) -> None:
        super().__init__("died", message)


class AnswerError(Exception):
    """An exception raised by the answer whose type is not one of Python's built-in ones."""


# --------------------------------------------------------------------------- process helpers
def _prctl(option: int, value: int = 0) -> int | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if option == 37:  # PR_GET_CHILD_SUBREAPER writes the flag to an int
            flag = ctypes.c_int(0)
            return flag.value if libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0 else None
        return 0 if libc.prctl(option, value, 0, 0, 0) == 0 else None
    except (OSError, AttributeError):
        return None


# Sandboxes alive in this process that asked to be the subreaper, and whether this process was
# one before the first of them: the flag is given back when the last one closes, so a server this
# process starts later (PostgreSQL daemonises) is adopted by init, not left a zombie of ours.
_SUBREAPER = {"users": 0, "was": False}


def _set_subreaper(on: bool = True) -> bool:
    """Make this process the subreaper of its descendants while a sandbox lives (Linux); False
    where unavailable. ``on=False`` from the last sandbox restores the flag as it was before."""
    if on:
        if _SUBREAPER["users"] == 0:
            _SUBREAPER["was"] = bool(_prctl(37))
        _SUBREAPER["users"] += 1
        return _prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER
    _SUBREAPER["users"] = max(0, _SUBREAPER["users"] - 1)
    if _SUBREAPER["users"] == 0 and not _SUBREAPER["was"]:
        return _prctl(36, 0) == 0
    return True


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rfind(")") + 2:].split()
    return int(rest[1]), rest[0]


def _has_token(pid: int, token: str) -> bool:
    try:
        return f"{TOKEN_VAR}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False


def _all_pids() -> list[int]:
    try:
        return [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _children_of(pid: int) -> set[int]:
    out = set()
    for p in _all_pids():
        st = _proc_stat(p)
        if st and st[0] == pid:
            out.add(p)
    return out


def rss_of(obj: Any) -> int | None:
    """Resident memory in bytes of the process behind a :class:`Remote` (None for a local
    object, or where ``/proc`` cannot tell)."""
    sb = getattr(obj, "_sb_box", None) if isinstance(obj, (Remote, RemoteMethod)) else None
    return sb.rss() if sb is not None else None


# --------------------------------------------------------------------------- proxies
class Remote:
    """An object that lives in the child. Calls, attributes, items, ``len`` and iteration are
    forwarded; plain results come back as values, other objects as new proxies."""

    __slots__ = ("_sb_box", "_sb_rid", "_sb_type", "_sb_callable", "__weakref__")

    def __init__(self, box: Sandbox, rid: int, type_name: str, is_callable: bool) -> None:
        object.__setattr__(self, "_sb_box", box)
        object.__setattr__(self, "_sb_rid", rid)
        object.__setattr__(self, "_sb_type", type_name)
        object.__setattr__(self, "_sb_callable", is_callable)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sb_box._call(self, None, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._sb_box._getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        self._sb_box._request(("setattr", self, name, value))

    def __delattr__(self, name: str) -> None:
        self._sb_box._request(("delattr", self, name))

    def __getitem__(self, key: Any) -> Any:
        return self._sb_box._request(("getitem", self, key))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._sb_box._request(("setitem", self, key, value))

    def __len__(self) -> int:
        return int(self._sb_box._request(("len", self)))

    def __contains__(self, item: Any) -> bool:
        return bool(self._sb_box._request(("contains", self, item)))

    def __bool__(self) -> bool:
        return bool(self._sb_box._request(("bool", self)))

    def __iter__(self):
        return self._sb_box._request(("iter", self))

    def __next__(self):
        items, done = self._sb_box._request(("next", self, 1))
        if not items:
            raise StopIteration
        return items[0]

    def __repr__(self) -> str:
        return f"<{self._sb_type} in the answer's process>"


class RemoteMethod:
    """``remote.name`` where ``name`` is a method: calling it is one request."""

    __slots__ = ("_sb_box", "_sb_obj", "_sb_name")

    def __init__(self, box: Sandbox, obj: Remote, name: str) -> None:
        self._sb_box, self._sb_obj, self._sb_name = box, obj, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._sb_box._call(self._sb_obj, self._sb_name, args, kwargs)

    def __repr__(self) -> str:
        return f"<method {self._sb_name} of {self._sb_obj!r}>"


class RemoteIterator:
    """Iteration over a child object, fetched in batches."""

    def __init__(self, box: Sandbox, ref: Remote) -> None:
        self._box, self._ref, self._buf, self._done = box, ref, [], False

    def __iter__(self):
        return self

    def __next__(self):
        if not self._buf:
            if self._done:
                raise StopIteration
            items, self._done = self._box._request(("next", self._ref, 64))
            self._buf = list(reversed(items))
            if not self._buf:
                raise StopIteration
        return self._buf.pop()


class parent_side:  # noqa: N801 - used like a function: parent_side(fn)
    """Wrap an object so that it is handed to the child as a proxy and stays here (a callback
    whose calls are counted here, a stream read once)."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj


# --------------------------------------------------------------------------- pickling
_SAFE_GLOBALS = {
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "range"), ("builtins", "bytearray"),
}


class _ChildUnpickler(pickle.Unpickler):
    """Reads what the child sends: plain data, numpy arrays and the child's persistent ids."""

    def __init__(self, data: bytes, box: Sandbox) -> None:
        super().__init__(io.BytesIO(data))
        self.box = box

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            import importlib

            return getattr(importlib.import_module(module), name)
        raise pickle.UnpicklingError(f"the answer's process sent a {module}.{name}, which the "
                                     "grader does not read")

    def persistent_load(self, pid: Any) -> Any:
        kind = pid[0]
        if kind == "ref":
            return self.box._remote(pid[1], str(pid[2]), bool(pid[3]))
        if kind == "method":
            return RemoteMethod(self.box, self.box._remote(pid[1], "object", True), str(pid[2]))
        if kind == "tensor":
            import torch

            arr, dtype, requires_grad = pid[1], pid[2], pid[3]
            t = torch.from_numpy(arr.copy())
            if dtype == "bfloat16":
                t = t.to(torch.bfloat16)
            elif str(t.dtype).replace("torch.", "") != dtype:
                t = t.to(getattr(torch, dtype))
            if requires_grad and t.is_floating_point():
                t.requires_grad_(True)
            return t
        if kind == "objarray":
            import numpy as np

            out = np.empty(len(pid[2]), dtype=object)
            out[:] = pid[2]
            return out.reshape(pid[1])
        if kind == "seq":
            return {"tuple": tuple, "list": list, "dict": dict}[pid[1]](pid[2])
        if kind == "pobj":
            return self.box._pobjs[int(pid[1])]
        raise pickle.UnpicklingError(f"unknown reference kind {kind!r} from the answer's process")


_PLAIN = frozenset({int, float, bool, str, bytes, complex, type(None)})


class _ParentPickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, box: Sandbox, fresh: set[int]) -> None:
        super().__init__(file, protocol=5)
        self.box, self.fresh = box, fresh

    def persistent_id(self, obj: Any) -> Any:
        if type(obj) in _PLAIN:
            return None  # the common case (every int of a list of ids), decided at once
        box = self.box
        if isinstance(obj, Remote):
            if obj._sb_box is not box:
                raise ValueError("an object of another sandbox cannot be sent here")
            return ("ref", obj._sb_rid)
        if isinstance(obj, parent_side):
            return ("pobj", box._keep(obj.obj))
        if isinstance(obj, types.FunctionType):
            # the checks' own functions, lambdas and closures stay here (callbacks); library
            # functions (numpy's reconstructors among them) are pickled by name
            mod, qual = obj.__module__ or "", obj.__qualname__
            if mod.startswith("embedlab.checks") or mod in ("__main__", "__mp_main__") \
                    or "<lambda>" in qual or "<locals>" in qual:
                return ("pobj", box._keep(obj))
            return None
        tmod = type(obj).__module__ or ""
        if tmod.startswith(_PARENT_SIDE_MODULES) and not isinstance(obj, type):
            return ("pobj", box._keep(obj))  # a database connection, a cursor: they stay here
        if tmod.startswith("embedlab.checks") and not isinstance(obj, type) and not (
                "torch" in sys.modules and isinstance(obj, sys.modules["torch"].nn.Module)):
            return ("pobj", box._keep(obj))  # the checks' own helpers (a one-pass stream)
        if isinstance(obj, types.GeneratorType) or (
                isinstance(obj, Iterator) and not isinstance(obj, type)
                and not (type(obj).__module__ or "").startswith(("numpy", "torch"))):
            return ("pobj", box._keep(obj))
        torch = sys.modules.get("torch")
        if torch is not None:
            if isinstance(obj, torch.nn.Parameter):
                owner = box._param_owner.get(id(obj))
                if owner is not None:
                    if id(box._mirror_obj(owner[0])) in self.fresh:
                        return None  # pickled with its module (the memo keeps it shared)
                    return ("mparam", owner[0], owner[1])
                grad = None if obj.grad is None else obj.grad.detach().clone()
                return ("param", obj.detach().clone(), obj.requires_grad, grad)
            if isinstance(obj, (torch.nn.Module, torch.optim.Optimizer)) \
                    and id(obj) not in self.fresh:
                mid = box._mirror_of.get(id(obj))
                if mid is not None and box._mirror_obj(mid) is obj:
                    return ("mirror", mid)
        if type(obj) in (dict, list) and id(obj) not in self.fresh:
            mid = box._mirror_of.get(id(obj))
            if mid is not None and box._mirror_obj(mid) is obj:
                return ("mirror", mid)
        return None


def _builtin_exception(names: list[str]) -> type:
    import builtins

    for name in names:
        exc = getattr(builtins, name, None)
        if isinstance(exc, type) and issubclass(exc, BaseException) \
                and not issubclass(exc, (SystemExit, KeyboardInterrupt, GeneratorExit)):
            return exc
    return AnswerError


# --------------------------------------------------------------------------- the sandbox
class Sandbox:
    """A child interpreter that runs untrusted code; see the module docstring.

    ``timeout``: seconds for the sandbox's whole life (every request shares it);
    ``memory_gb``: the child's address-space limit; ``refuse``: ``[(module prefix, reason)]``
    imports refused while the answer's code runs; ``refuse_attrs``: ``[(module, attribute,
    reason)]`` replaced by a function that raises while the answer's code runs; ``protect``:
    folders whose files the answer may not open; ``stubs``: module names that import as stubs
    with a no-op ``check``; ``preload``: modules imported before any answer code runs;
    ``threads``: the child's BLAS/torch thread count.
    """

    def __init__(self, *, timeout: float = 60.0, memory_gb: float | None = 4.0,
                 refuse: tuple | list = (), refuse_attrs: tuple | list = (),
                 protect: tuple | list = (), protect_reason: str = "",
                 stubs: tuple | list = (), preload: tuple | list = (), threads: int = 1,
                 cwd: str | os.PathLike | None = None, env: dict | None = None) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.timeout = float(timeout)
        self.config = {
            "refuse": [tuple(r) for r in refuse],
            "refuse_attrs": [tuple(r) for r in refuse_attrs],
            "protect": [os.path.realpath(p) for p in protect],
            "protect_reason": protect_reason or "reading this file is refused here",
            "stubs": list(stubs), "preload": list(preload),
            "memory_bytes": None if memory_gb is None else int(memory_gb * 2**30),
        }
        self.threads, self.cwd, self.extra_env = int(threads), cwd, dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.deadline = 0.0
        self.token = uuid.uuid4().hex
        self._refs: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._pobjs: dict[int, Any] = {}
        self._pobj_ids: dict[int, int] = {}
        self._mirror_of: dict[int, int] = {}
        self._mirrors: dict[int, weakref.ref] = {}
        self._param_owner: dict[int, tuple[int, str]] = {}
        self._method_names: set[tuple[str, str]] = set()
        self._next = 1
        self._log = None
        self._pidfd: int | None = None
        self._before: set[int] = set()
        self.rss_samples: list[int] = []
        self._rng_sent: bytes | None = None
        self._raised: dict[int, BaseException] = {}
        self._held: dict[int, Any] = {}
        self.where = "starting"

    # ----------------------------------------------------------------- life
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> None:
        _set_subreaper()
        self._reaper = True
        self._before = _children_of(os.getpid())
        self.deadline = time.monotonic() + self.timeout
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads),
                   OPENBLAS_NUM_THREADS=str(self.threads), NUMBA_NUM_THREADS=str(self.threads),
                   MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
        env.update(self.extra_env)
        env[TOKEN_VAR] = self.token
        self._log = tempfile.TemporaryFile(prefix="embedlab-sandbox-")
        cwd = self.cwd or tempfile.gettempdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(CHILD_SCRIPT), str(child_sock.fileno())],
            pass_fds=(child_sock.fileno(),), stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)
        child_sock.close()
        _LIVE_CHILDREN.add(self.proc.pid)
        self.sock = parent_sock
        try:
            self._pidfd = os.pidfd_open(self.proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None
        self._send_raw(pickle.dumps(self.config, protocol=5))
        self.where = "starting the answer's process"
        self._wait_reply()

    def close(self) -> None:
        if self.proc is None:
            return
        self._kill_all()
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._log is not None:
            self._log.close()
            self._log = None
        _LIVE_CHILDREN.discard(self.proc.pid)
        self._pobjs.clear()
        if self.__dict__.pop("_reaper", False):
            _set_subreaper(False)

    def _kill_all(self) -> None:
        """Kill the child's group, then every process that descends from it or carries its
        token, until none is left; reap what became ours."""
        me, child = os.getpid(), self.proc.pid
        try:
            os.killpg(child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        known = {child}
        others = (_LIVE_CHILDREN - {child}) | self._before
        for _ in range(50):
            found = set()
            for pid in _all_pids():
                if pid == me or pid in others:
                    continue
                st = _proc_stat(pid)
                if st is None or st[1] == "Z":
                    if st is not None and st[0] == me:
                        self._reap(pid)
                    continue
                ppid = st[0]
                if ppid in known or (ppid == me and pid not in others) \
                        or _has_token(pid, self.token):
                    found.add(pid)
            if not found:
                break
            for pid in found:
                known.add(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.01)
            for pid in found:
                self._reap(pid)

    @staticmethod
    def _reap(pid: int) -> None:
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass

    # ----------------------------------------------------------------- public API
    def remaining(self) -> float:
        """Seconds left of the sandbox's time budget."""
        return max(0.0, self.deadline - time.monotonic())

    def run(self, source: str, name: str = "<cell>") -> None:
        """Run ``source`` in the child's namespace (as a notebook cell runs)."""
        try:
            compile(source, name, "exec")
        except SyntaxError as exc:
            raise SandboxError("syntax", f"SyntaxError in {name}, line {exc.lineno}: "
                                         f"{exc.msg}") from None
        self._request(("exec", source, name))

    def has(self, name: str) -> bool:
        return bool(self._request(("has", name)))

    def get(self, name: str) -> Any:
        """The value of ``name`` in the child's namespace (a proxy unless plain data)."""
        return self._request(("get", name))

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """Call a trusted function ``"module:qualname"`` in the child (proxies in the arguments
        are the child's own objects there) and return its plain result."""
        if ":" not in target:
            raise ValueError(f"target must look like 'module:function', got {target!r}")
        return self._request(("trusted", target, args, kwargs))

    def preload(self, *modules: str) -> None:
        self._request(("preload", list(modules)))

    def rss(self) -> int | None:
        """The child's resident memory now, in bytes."""
        return self._status_kb("VmRSS")

    def peak_rss(self) -> int | None:
        """The child's peak resident memory since the last :meth:`reset_peak`, in bytes."""
        return self._status_kb("VmHWM")

    def reset_peak(self) -> bool:
        """Reset the child's peak resident memory (``/proc/PID/clear_refs``); False if refused."""
        try:
            Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")
            return True
        except OSError:
            return False

    def log_tail(self, n: int = 20) -> list[str]:
        """The last lines the child printed (its stdout and stderr)."""
        if self._log is None:
            return []
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace").strip().splitlines()[-n:]

    # ----------------------------------------------------------------- internals
    def _status_kb(self, field: str) -> int | None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, AttributeError):
            return None
        return None

    def _keep(self, obj: Any) -> int:
        key = id(obj)
        if key in self._pobj_ids and self._pobjs.get(self._pobj_ids[key]) is obj:
            return self._pobj_ids[key]
        pid = self._next
        self._next += 1
        self._pobjs[pid], self._pobj_ids[key] = obj, pid
        return pid

    def _remote(self, rid: int, type_name: str, is_callable: bool) -> Remote:
        obj = self._refs.get(rid)
        if obj is None:
            obj = Remote(self, rid, type_name, is_callable)
            self._refs[rid] = obj
        return obj

    def _mirror_obj(self, mid: int) -> Any:
        ref = self._mirrors.get(mid)
        return ref() if ref is not None else None

    def _getattr(self, obj: Remote, name: str) -> Any:
        if (obj._sb_type, name) in self._method_names:
            return RemoteMethod(self, obj, name)
        value = self._request(("getattr", obj, name))
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "\x00method":
            self._method_names.add((obj._sb_type, name))
            return RemoteMethod(self, obj, name)
        return value

    def _encode(self, msg: tuple, fresh: set[int] = frozenset()) -> bytes:
        buf = io.BytesIO()
        _ParentPickler(buf, self, set(fresh)).dump(msg)
        return buf.getvalue()

    def _send_raw(self, data: bytes) -> None:
        self.sock.sendall(struct.pack("!Q", len(data)) + data)

    def _recv_exact(self, n: int) -> bytes:
        chunks, got = [], 0
        while got < n:
            self._wait_readable()
            b = self.sock.recv(min(n - got, 1 << 20))
            if not b:
                raise SandboxDied(self._death_message())
            chunks.append(b)
            got += len(b)
        return b"".join(chunks)

    def _wait_readable(self) -> None:
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self._kill_all()
                raise SandboxTimeout(f"stopped after {self.timeout:g} s while {self.where}")
            watch = [self.sock] + ([self._pidfd] if self._pidfd is not None else [])
            ready, _, _ = select.select(watch, [], [], min(left, 0.05 if self._pidfd is None
                                                           else left))
            if self.sock in ready:
                return
            if (self._pidfd is not None and self._pidfd in ready) or \
                    (self._pidfd is None and self.proc.poll() is not None):
                # the child is gone; whatever it wrote before dying may still be readable
                ready, _, _ = select.select([self.sock], [], [], 0)
                if self.sock in ready:
                    return
                self.proc.wait()
                raise SandboxDied(self._death_message())

    def _death_message(self) -> str:
        code = self.proc.poll()
        if code is None:
            try:
                code = self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
        tail = self.log_tail(8)
        if code is not None and code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
        else:
            how = f"ended with exit code {code}"
        if any("MemoryError" in ln or "bad_alloc" in ln for ln in tail):
            how += " (out of memory)"
        return f"the answer's process {how} while {self.where}"

    def _recv(self) -> Any:
        (n,) = struct.unpack("!Q", self._recv_exact(8))
        return _ChildUnpickler(self._recv_exact(n), self).load()

    def _wait_reply(self) -> Any:
        """Serve the child's requests (callbacks into parent-side objects) until the reply to
        our request arrives; return its payload or raise what the answer raised."""
        while True:
            msg = self._recv()
            if msg[0] == "req":
                self._serve_child(msg[1])
                continue
            if msg[0] == "ok":
                return msg
            if msg[0] == "err":
                _, names, text, line, eid = msg
                if eid is not None and eid in self._raised:
                    raise self._raised.pop(eid)
                exc = _builtin_exception(list(names))
                err = exc(text) if exc is not AnswerError else AnswerError(
                    f"{names[0] if names else 'Exception'}: {text}")
                err.remote_line = line  # type: ignore[attr-defined]
                raise err
            raise SandboxError("exception", f"unexpected message {msg[0]!r} from the answer")

    def _serve_child(self, req: tuple) -> None:
        op = req[0]
        try:
            if op == "pcall":
                value = self._pobjs[req[1]](*req[2], **req[3])
            elif op == "piter":
                value = self._keep(iter(self._pobjs[req[1]]))
            elif op == "pnext":
                it, items, done = self._pobjs[req[1]], [], False
                for _ in range(int(req[2])):
                    try:
                        items.append(next(it))
                    except StopIteration:
                        done = True
                        break
                rss = self.rss()
                if rss is not None:
                    self.rss_samples.append(rss)
                value = (items, done)
            elif op == "plen":
                value = len(self._pobjs[req[1]])
            elif op == "pgetattr":
                value = getattr(self._pobjs[req[1]], req[2])
                if isinstance(value, (types.MethodType, types.BuiltinMethodType)):
                    value = ("\x00pmethod", req[2])
            elif op == "pcallattr":
                value = getattr(self._pobjs[req[1]], req[2])(*req[3], **req[4])
            else:
                raise ValueError(f"unknown request {op!r}")
            reply = ("ans", "ok", value)
        except AssertionError:
            raise  # a check's own bookkeeping failed (a stream read twice): the check fails
        except Exception as exc:  # the parent-side object raised: the child sees the error,
            eid = self._next      # and the same exception object comes back if the answer
            self._next += 1       # lets it through
            self._raised[eid] = exc
            names = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
            reply = ("ans", "err", names, str(exc), eid)
        self._send_raw(self._encode(reply))

    def _request(self, msg: tuple, fresh: set[int] = frozenset()) -> Any:
        if self.proc is None:
            raise SandboxError("died", "the sandbox was not started")
        data = self._encode(msg, fresh)
        try:
            self._send_raw(data)
        except (BrokenPipeError, ConnectionResetError):
            raise SandboxDied(self._death_message()) from None
        reply = self._wait_reply()
        if msg[0] in ("call", "callattr"):
            return reply
        if msg[0] == "next" or msg[0] != "iter":
            return reply[1]
        marker = reply[1]
        return RemoteIterator(self, self._remote(marker[1], "iterator", False))

    # ----------------------------------------------------------------- calls with state
    def _call(self, obj: Remote, name: str | None, args: tuple, kwargs: dict) -> Any:
        torch = sys.modules.get("torch")
        fresh: set[int] = set()
        paths = []
        shared: tuple = (torch.nn.Module, torch.optim.Optimizer) if torch is not None else ()
        constructing = name is None and obj._sb_type in ("type", "ABCMeta")
        for where, key, value in ([("args", i, v) for i, v in enumerate(args)]
                                  + [("kwargs", k, v) for k, v in kwargs.items()]):
            # a model or optimiser, and a dict or list handed to a constructor (an object
            # keeps it: a database, a cache) stay linked to their copies in the child
            if (shared and isinstance(value, shared)) or \
                    (constructing and type(value) in (dict, list)):
                mid = self._mirror_of.get(id(value))
                if mid is None or self._mirror_obj(mid) is not value:
                    mid = self._next
                    self._next += 1
                    fresh.add(id(value))
                    paths.append((where, key, mid, value))
        for _, _, mid, value in paths:  # registered before sending: the pickler consults them
            self._register_mirror(mid, value)
        sync = self._mirror_states()
        rng = _rng_state()
        if rng == self._rng_sent:
            rng = None  # unchanged since the child last reported it: the child's is current
        else:
            self._rng_sent = rng
        wire_paths = [(w, k, m) for w, k, m, _ in paths]
        msg = (("call", obj, args, kwargs, sync, rng, wire_paths) if name is None else
               ("callattr", obj, name, args, kwargs, sync, rng, wire_paths))
        _, out, restore, child_rng, states = self._request(msg, fresh)
        if child_rng is not None:
            _set_rng_state(child_rng, self)
            self._rng_sent = _rng_state()
        self._apply_mirror_states(states)
        for key, state in restore.items():
            target = args[key] if isinstance(key, int) else kwargs.get(key)
            _restore(target, state)
        return out

    def _register_mirror(self, mid: int, obj: Any) -> None:
        self._mirror_of[id(obj)] = mid
        if type(obj) in (dict, list):
            self._held[mid] = obj  # plain containers cannot be weakly referenced
            self._mirrors[mid] = lambda mid=mid: self._held.get(mid)
            return
        self._mirrors[mid] = weakref.ref(obj)
        import torch

        if isinstance(obj, torch.nn.Module):
            for n, p in obj.named_parameters():
                self._param_owner[id(p)] = (mid, n)

    def _mirror_states(self) -> dict:
        live = [(mid, ref()) for mid, ref in list(self._mirrors.items())]
        live = [(mid, obj) for mid, obj in live  # containers flow back only
                if obj is not None and type(obj) not in (dict, list)]
        if not live:
            return {}
        import torch  # only torch modules and optimizers are left: torch is loaded already

        from embedlab import _sandbox_child as c

        out = {}
        for mid, obj in live:
            if isinstance(obj, torch.nn.Module):
                out[mid] = ("module", c._module_state(obj))
            else:
                out[mid] = ("optimizer", obj.state_dict())
        return out

    def _apply_mirror_states(self, states: dict) -> None:
        if not states:
            return
        from embedlab import _sandbox_child as c

        for mid, (kind, state) in states.items():
            obj = self._mirror_obj(mid)
            if obj is None:
                continue
            if kind == "module":
                c._apply_module_state(obj, state)
            elif kind == "dict":
                obj.clear()
                obj.update(state)
            elif kind == "list":
                obj[:] = state
            else:
                obj.load_state_dict(state)


def _rng_state() -> bytes:
    """This process's random states (Python, numpy's global, torch's when loaded), pickled."""
    import random

    import numpy as np

    out = {"random": random.getstate(), "numpy": np.random.get_state()}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.get_rng_state().numpy()
    return pickle.dumps(out, protocol=5)


def _set_rng_state(blob: bytes | None, box: Sandbox) -> None:
    """Adopt the child's random states (read with the restricted unpickler)."""
    if not blob:
        return
    import random

    import numpy as np

    state = _ChildUnpickler(blob, box).load()
    random.setstate(state["random"])
    np.random.set_state(state["numpy"])
    torch = sys.modules.get("torch")
    if torch is not None and "torch" in state:
        torch.set_rng_state(torch.from_numpy(np.asarray(state["torch"], dtype=np.uint8).copy()))


def _restore(target: Any, state: tuple) -> None:
    """Copy-restore: make ``target`` (an argument of a call) equal what the child left."""
    import numpy as np

    kind = state[0]
    if kind == "array" and isinstance(target, np.ndarray):
        new = state[1]
        if new.shape == target.shape and target.flags.writeable and \
                not np.array_equal(new, target, equal_nan=new.dtype.kind in "fc"):
            np.copyto(target, new, casting="unsafe")
    elif kind == "generator" and isinstance(target, np.random.Generator):
        target.bit_generator.state = state[1]
    elif kind == "random" and hasattr(target, "setstate"):
        target.setstate(state[1])
    elif kind == "tensor":
        import torch

        if isinstance(target, torch.Tensor) and target.shape == state[1].shape:
            with torch.no_grad():
                target.copy_(state[1].to(target.dtype))
            if state[2] is not None and target.requires_grad:
                target.grad = state[2].to(target.dtype)
    elif kind == "list" and isinstance(target, list):
        target[:] = state[1]
    elif kind == "dict" and isinstance(target, dict):
        target.clear()
        target.update(state[1])
