"""Compiled search kernels: one call per query, nothing allocated in the hot loop.

Every index of chapters 08-11 has two search paths that return identical ids:

* the **readable numpy version** (``flat_search_numpy``, ``ivf_search_numpy``, ... in each index's
  module, and the chapters' inline cells): a matrix product or a table look-up over the
  candidates, then ``np.lexsort`` (best score first, ties to the lower id);
* the **kernels** below: the same arithmetic, compiled with numba, one call per query, written the
  way faiss and hnswlib write their hot loops. A query's whole search is a single call: the checks
  (finite entries; unit length for cosine) happen once, candidates are scanned in place through
  the lists' offsets, and the k best go through one small selection shared by every index.

Why the single call matters: a flat scan over 20,000 x 50 floats reads 4 MB, about a hundred
microseconds from the L3 cache; an IVF query scans a few hundred vectors, a few microseconds. At
that scale a dozen numpy calls around the scan (each a few microseconds of Python and a fresh
array) cost more than the search itself.

**The small-k selection** (``topk_push``). For k of 10 or 100, a sorted array beats a binary heap:
a candidate is first compared with the worst kept score (one comparison, and for a scan in random
order only about ``k ln(n / k)`` of ``n`` candidates ever get past it); one that does is inserted
by shifting the worse entries down. The arrays stay sorted best first, so nothing is sorted at the
end. Ties go to the lower id, which is what ``np.lexsort((ids, -scores))`` does.

**Identical ids.** Two float32 sums over the same numbers in a different order can differ in the
last bit, and a near-tie can then swap two neighbours. The kernels therefore compute every
quantity that decides a ranking the way the numpy path does, or in float64 where the order of a
sum cannot be matched (PQ look-up tables and their sums: a sum of float32 values in float64 is
exact for the sizes used here, so its order does not matter).

**Prefetch** (``prefetch_at``): ``llvm.prefetch`` through a numba intrinsic, for graph walks
(``embedlab.index.hnsw``) that jump to addresses the CPU cannot guess.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

# Reassociation lets LLVM split a dot product into SIMD partial sums; "contract" allows FMA.
FM = {"reassoc", "contract"}

# metric codes the kernels take: inner product, squared L2, cosine (unit rows, inner product)
MODES = {"ip": 0, "l2": 1, "cosine": 2}

# status codes the kernels return
OK, NOT_FINITE = 0, 1


# =========================================================================== intrinsics
@intrinsic
def prefetch_at(typingctx, arr, i, j):
    """Prefetch the cache line holding ``arr[i, j]`` of a 2-D array: the address is computed
    in place, with no row view made (a view costs more than the prefetch in a tight loop)."""
    if (not isinstance(arr, types.Array) or arr.ndim != 2 or not isinstance(i, types.Integer)
            or not isinstance(j, types.Integer)):
        return None
    sig = types.void(arr, i, j)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [context.cast(builder, v, t, types.intp)
               for v, t in zip(args[1:], signature.args[1:], strict=True)]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # (address, rw = 0: read, locality = 3: keep in every level, cache type = 1: data)
        builder.call(fn, [builder.bitcast(ptr, i8p), ir.Constant(i32, 0), ir.Constant(i32, 3),
                          ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


LANES = 16  # rows per SIMD block of the transposed layout
GROUP = 4  # blocks scanned together: four independent chains of fused multiply-adds


@intrinsic
def dot_rows64(typingctx, xbt, start, q, thr, l2, norms, row0, out):
    """Sixty-four dot products at once, for rows ``row0 .. row0 + 63`` stored in blocks of 16
    transposed rows (``xbt[start + (g * d + t) * 16 + r]`` is coordinate ``t`` of row
    ``row0 + 16 g + r``), against ``q``.

    Each coordinate of ``q`` meets 16 rows in one SIMD fused multiply-add, so no horizontal sum
    is ever needed (what keeps a row-major scan of short vectors below the memory's speed), and
    the four blocks are four independent chains, so the adds overlap instead of waiting for each
    other. Each row's sum runs over ``t`` in order. For l2 the score is ``2 q.x - |x|^2``
    (``norms[row0 + i]``). Writes the 64 scores to ``out`` and returns the 64-bit mask of those
    ``>= thr``. Plain LLVM vector code (``llvm.fma.v16f32``), lowered to each target's SIMD.
    """
    sig = types.uint64(xbt, types.intp, q, types.float32, types.boolean, norms, types.intp, out)

    def codegen(context, builder, signature, args):
        xbt_t, _, q_t, _, _, n_t, _, out_t = signature.args
        xa = context.make_array(xbt_t)(context, builder, args[0])
        qa = context.make_array(q_t)(context, builder, args[2])
        na = context.make_array(n_t)(context, builder, args[5])
        oa = context.make_array(out_t)(context, builder, args[7])
        f32, i32, i64, v16, fma = _simd_types(builder)
        intp = args[1].type
        d = cgutils.unpack_tuple(builder, qa.shape, 1)[0]
        base = builder.gep(xa.data, [args[1]])
        zeros = ir.Constant(v16, [0.0] * LANES)
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        stride = builder.mul(d, ir.Constant(intp, LANES))  # floats per block

        def bcast(value):
            v = builder.insert_element(ir.Constant(v16, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, v, splat)

        entry = builder.basic_block
        loop = builder.append_basic_block("dot64.loop")
        done = builder.append_basic_block("dot64.done")
        builder.cbranch(builder.icmp_signed(">", d, ir.Constant(intp, 0)), loop, done)
        builder.position_at_end(loop)
        t = builder.phi(intp)
        accs = [builder.phi(v16) for _ in range(GROUP)]
        t.add_incoming(ir.Constant(intp, 0), entry)
        qv = bcast(builder.load(builder.gep(qa.data, [t])))
        off = builder.mul(t, ir.Constant(intp, LANES))
        nxt = []
        for g, acc in enumerate(accs):
            acc.add_incoming(zeros, entry)
            at = builder.add(off, builder.mul(stride, ir.Constant(intp, g)))
            row = builder.load(builder.bitcast(builder.gep(base, [at]), v16.as_pointer()),
                               align=4)
            nxt.append(builder.call(fma, [row, qv, acc]))
        t1 = builder.add(t, ir.Constant(intp, 1))
        t.add_incoming(t1, loop)
        for acc, v in zip(accs, nxt, strict=True):
            acc.add_incoming(v, loop)
        builder.cbranch(builder.icmp_signed("<", t1, d), loop, done)
        builder.position_at_end(done)
        results = [builder.phi(v16) for _ in range(GROUP)]  # phi nodes first in a block
        for g, res in enumerate(results):
            res.add_incoming(zeros, entry)
            res.add_incoming(nxt[g], loop)
        thr = bcast(args[3])
        mask = ir.Constant(i64, 0)
        for g, res in enumerate(results):
            nptr = builder.bitcast(builder.gep(na.data, [builder.add(
                args[6], ir.Constant(intp, g * LANES))]), v16.as_pointer())
            with builder.if_then(args[4]):
                two = builder.fmul(res, ir.Constant(v16, [2.0] * LANES))
                builder.store(builder.fsub(two, builder.load(nptr, align=4)),
                              builder.bitcast(builder.gep(oa.data, [ir.Constant(
                                  intp, g * LANES)]), v16.as_pointer()), align=4)
            optr = builder.bitcast(builder.gep(oa.data, [ir.Constant(intp, g * LANES)]),
                                   v16.as_pointer())
            with builder.if_then(builder.not_(args[4])):
                builder.store(res, optr, align=4)
            scores = builder.load(optr, align=4)
            bits = builder.zext(builder.bitcast(builder.fcmp_ordered(">=", scores, thr),
                                                ir.IntType(LANES)), i64)
            mask = builder.or_(mask, builder.shl(bits, ir.Constant(i64, g * LANES)))
        return mask

    return sig, codegen


QUERIES = 4  # queries scored together by dot_rows64x4: each loaded block serves four


@intrinsic
def dot_rows64x4(typingctx, xbt, start, Q, r0, thr, l2, norms, row0, out, masks):
    """``dot_rows64`` for four queries at once (rows ``r0 .. r0 + 3`` of ``Q``): every block of
    16 rows loaded from memory feeds four fused multiply-adds, so a batch reads the base a
    quarter as often and the 16 accumulators keep the SIMD units busy. ``thr[j]`` is query j's
    threshold; the scores go to ``out[j, :]`` (4, 64) and the masks to ``masks[j]``."""
    sig = types.void(xbt, types.intp, Q, types.intp, thr, types.boolean, norms, types.intp, out,
                     masks)

    def codegen(context, builder, signature, args):
        xbt_t, _, q_t, _, thr_t, _, n_t, _, out_t, m_t = signature.args
        xa = context.make_array(xbt_t)(context, builder, args[0])
        qa = context.make_array(q_t)(context, builder, args[2])
        ta = context.make_array(thr_t)(context, builder, args[4])
        na = context.make_array(n_t)(context, builder, args[6])
        oa = context.make_array(out_t)(context, builder, args[8])
        ma = context.make_array(m_t)(context, builder, args[9])
        f32, i32, i64, v16, fma = _simd_types(builder)
        intp = args[1].type
        d = cgutils.unpack_tuple(builder, qa.shape, 2)[1]
        base = builder.gep(xa.data, [args[1]])
        qrows = [builder.gep(qa.data, [builder.mul(builder.add(args[3], ir.Constant(intp, j)),
                                                   d)]) for j in range(QUERIES)]
        zeros = ir.Constant(v16, [0.0] * LANES)
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
        stride = builder.mul(d, ir.Constant(intp, LANES))

        def bcast(value):
            v = builder.insert_element(ir.Constant(v16, ir.Undefined), value, ir.Constant(i32, 0))
            return builder.shuffle_vector(v, v, splat)

        entry = builder.basic_block
        loop = builder.append_basic_block("dot64x4.loop")
        done = builder.append_basic_block("dot64x4.done")
        builder.cbranch(builder.icmp_signed(">", d, ir.Constant(intp, 0)), loop, done)
        builder.position_at_end(loop)
        t = builder.phi(intp)
        accs = [[builder.phi(v16) for _ in range(GROUP)] for _ in range(QUERIES)]
        t.add_incoming(ir.Constant(intp, 0), entry)
        off = builder.mul(t, ir.Constant(intp, LANES))
        rows = [builder.load(builder.bitcast(builder.gep(base, [builder.add(
            off, builder.mul(stride, ir.Constant(intp, g)))]), v16.as_pointer()), align=4)
            for g in range(GROUP)]
        nxt = []
        for j in range(QUERIES):
            qv = bcast(builder.load(builder.gep(qrows[j], [t])))
            nxt.append([builder.call(fma, [rows[g], qv, accs[j][g]]) for g in range(GROUP)])
        t1 = builder.add(t, ir.Constant(intp, 1))
        t.add_incoming(t1, loop)
        for j in range(QUERIES):
            for g in range(GROUP):
                accs[j][g].add_incoming(zeros, entry)
                accs[j][g].add_incoming(nxt[j][g], loop)
        builder.cbranch(builder.icmp_signed("<", t1, d), loop, done)
        builder.position_at_end(done)
        results = [[builder.phi(v16) for _ in range(GROUP)] for _ in range(QUERIES)]
        for j in range(QUERIES):
            for g in range(GROUP):
                results[j][g].add_incoming(zeros, entry)
                results[j][g].add_incoming(nxt[j][g], loop)
        for j in range(QUERIES):
            thr = bcast(builder.load(builder.gep(ta.data, [ir.Constant(intp, j)])))
            mask = ir.Constant(i64, 0)
            for g in range(GROUP):
                at = ir.Constant(intp, j * LANES * GROUP + g * LANES)
                optr = builder.bitcast(builder.gep(oa.data, [at]), v16.as_pointer())
                nptr = builder.bitcast(builder.gep(na.data, [builder.add(
                    args[7], ir.Constant(intp, g * LANES))]), v16.as_pointer())
                res = results[j][g]
                with builder.if_else(args[5]) as (then, otherwise):
                    with then:
                        two = builder.fmul(res, ir.Constant(v16, [2.0] * LANES))
                        builder.store(builder.fsub(two, builder.load(nptr, align=4)), optr,
                                      align=4)
                    with otherwise:
                        builder.store(res, optr, align=4)
                scores = builder.load(optr, align=4)
                bits = builder.zext(builder.bitcast(builder.fcmp_ordered(">=", scores, thr),
                                                    ir.IntType(LANES)), i64)
                mask = builder.or_(mask, builder.shl(bits, ir.Constant(i64, g * LANES)))
            builder.store(mask, builder.gep(ma.data, [ir.Constant(intp, j)]))
        return context.get_dummy_value()

    return sig, codegen


def make_cttz(bits: int):
    """A numba intrinsic: the number of trailing zero bits of a uint``bits`` (``llvm.cttz``),
    the next set lane of a comparison mask."""
    int_t = {32: types.uint32, 64: types.uint64}[bits]

    @intrinsic
    def cttz(typingctx, x):
        sig = int_t(int_t)

        def codegen(context, builder, signature, args):
            ix = ir.IntType(bits)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ix, [ix, ir.IntType(1)]), f"llvm.cttz.i{bits}")
            return builder.call(fn, [args[0], ir.Constant(ir.IntType(1), 0)])

        return sig, codegen

    return cttz


cttz64 = make_cttz(64)


def _simd_types(builder):
    """``(f32, i32, i64, v16, fma)``: the LLVM types the SIMD kernels use and the 16-lane fused
    multiply-add (``llvm.fma.v16f32``) declared in ``builder``'s module."""
    f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
    v16 = ir.VectorType(f32, LANES)
    fma = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(v16, [v16, v16, v16]), "llvm.fma.v16f32")
    return f32, i32, i64, v16, fma


def transpose_blocks(x: np.ndarray, norms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``x`` (n, d) in the layout ``dot_rows64`` reads: blocks of 16 rows stored
    coordinate by coordinate, padded with zero rows to a multiple of 64; and the norms padded
    the same way. The same numbers in another order (a flat array)."""
    n, d = x.shape
    group = LANES * GROUP
    npad = -(-n // group) * group
    xp = np.zeros((npad, d), np.float32)
    xp[:n] = x
    out = xp.reshape(npad // LANES, LANES, d).transpose(0, 2, 1)
    npd = np.zeros(npad, np.float32)
    npd[:n] = norms
    return np.ascontiguousarray(out).ravel(), npd


# =========================================================================== the k best
@njit(cache=True, nogil=True, inline="always")
def topk_reset(sd, si):
    """Empty selection: scores ``-inf``, ids ``-1``."""
    for t in range(sd.shape[0]):
        sd[t] = -np.inf
        si[t] = -1


@njit(cache=True, nogil=True, inline="always")
def topk_push(sd, si, s, i):
    """Offer candidate ``(s, i)`` to the k best kept in ``sd``/``si`` (sorted best first).

    It enters when its score is higher than the worst kept one, or equal with a lower id; worse
    entries shift down one place and the last one drops out.
    """
    k = sd.shape[0]
    last = k - 1
    if not (s > sd[last] or (s == sd[last] and i < si[last])):
        return
    p = last
    while p > 0 and (s > sd[p - 1] or (s == sd[p - 1] and i < si[p - 1])):
        sd[p] = sd[p - 1]
        si[p] = si[p - 1]
        p -= 1
    sd[p] = s
    si[p] = i


@njit(cache=True, nogil=True, inline="always")
def prepare_query(q, mode, out):
    """Copy query ``q`` into ``out`` (float32): ``NOT_FINITE`` if an entry is NaN or inf; cosine
    rows are scaled to unit length with a float64 norm, as ``base.normalize_rows`` does."""
    ss = 0.0
    for t in range(q.shape[0]):
        v = q[t]
        if not np.isfinite(v):
            return NOT_FINITE
        out[t] = v
        ss += np.float64(v) * np.float64(v)
    if mode == 2:
        norm = np.sqrt(ss)
        if norm > 0:
            for t in range(q.shape[0]):
                out[t] = np.float32(np.float64(out[t]) / norm)
    return OK


@njit(cache=True, nogil=True, inline="always")
def finish(sd, si, l2, qnorm, out_d, out_i):
    """Write the k best into the caller's output rows: scores for ip/cosine; for l2 the kept
    scores are ``2 q.x - |x|^2``, turned back into squared distances ``|q|^2 - score``."""
    for t in range(sd.shape[0]):
        out_i[t] = si[t]
        if l2:
            out_d[t] = np.float32(max(qnorm - sd[t], 0.0)) if si[t] >= 0 else np.inf
        else:
            out_d[t] = np.float32(sd[t]) if si[t] >= 0 else -np.inf


# =========================================================================== flat
@njit(cache=True, nogil=True, fastmath=FM, inline="always")
def _dot(x, i, q):
    s = np.float32(0.0)
    for t in range(q.shape[0]):
        s += x[i, t] * q[t]
    return s


@njit(cache=True, nogil=True, fastmath=FM)
def scan_rows(xb, norms, ids, a, b, q, l2, sd, si):
    """Score rows ``a .. b - 1`` of ``xb`` against ``q`` and offer them to the k best in
    ``sd``/``si`` under id ``ids[r]`` (``ids=None``: the row number).

    Rows go four at a time, so that four independent dot products overlap in the pipeline; the
    score is ``q.x`` (ip, cosine) or ``2 q.x - |x|^2`` (l2). The threshold test reads the worst
    kept score once per row: most rows stop there.
    """
    d = q.shape[0]
    last = sd.shape[0] - 1
    i = a
    while i + 4 <= b:
        s0 = np.float32(0.0)
        s1 = np.float32(0.0)
        s2 = np.float32(0.0)
        s3 = np.float32(0.0)
        for t in range(d):
            qt = q[t]
            s0 += xb[i, t] * qt
            s1 += xb[i + 1, t] * qt
            s2 += xb[i + 2, t] * qt
            s3 += xb[i + 3, t] * qt
        if l2:
            s0 = np.float32(2.0) * s0 - norms[i]
            s1 = np.float32(2.0) * s1 - norms[i + 1]
            s2 = np.float32(2.0) * s2 - norms[i + 2]
            s3 = np.float32(2.0) * s3 - norms[i + 3]
        if s0 >= sd[last]:
            topk_push(sd, si, np.float64(s0), i if ids is None else ids[i])
        if s1 >= sd[last]:
            topk_push(sd, si, np.float64(s1), i + 1 if ids is None else ids[i + 1])
        if s2 >= sd[last]:
            topk_push(sd, si, np.float64(s2), i + 2 if ids is None else ids[i + 2])
        if s3 >= sd[last]:
            topk_push(sd, si, np.float64(s3), i + 3 if ids is None else ids[i + 3])
        i += 4
    while i < b:
        s = _dot(xb, i, q)
        if l2:
            s = np.float32(2.0) * s - norms[i]
        if s >= sd[last]:
            topk_push(sd, si, np.float64(s), i if ids is None else ids[i])
        i += 1


@njit(cache=True, nogil=True)
def flat_scan_blocks(xbt, norms_p, n, q, l2, sd, si, out):
    """Every stored row against ``q``, 64 rows per step from the transposed layout
    (``transpose_blocks``): ``dot_rows64`` scores them and flags those that reach the worst kept
    score, and only the flagged ones go to the selection."""
    d = q.shape[0]
    last = sd.shape[0] - 1
    group = LANES * GROUP
    for g in range(xbt.shape[0] // (group * d)):
        mask = dot_rows64(xbt, g * group * d, q, np.float32(sd[last]), l2, norms_p, g * group,
                          out)
        while mask != 0:
            r = cttz64(mask)
            mask &= mask - np.uint64(1)
            i = g * group + np.int64(r)
            if i < n and out[r] >= sd[last]:
                topk_push(sd, si, np.float64(out[r]), i)


@njit(cache=True, nogil=True)
def flat_batch_blocks(xbt, norms_p, n, Q, mode, out_d, out_i):
    """A batch against the transposed layout: the base is walked in chunks of about 256 KB (they
    stay in the L2 cache), and every chunk serves all queries, four at a time
    (``dot_rows64x4``), each keeping its own k best. A blocked matrix product, with the
    selection fused into it."""
    nq, d = Q.shape
    k = out_d.shape[1]
    l2 = mode == 1
    qs = np.zeros((nq + QUERIES, d), np.float32)  # padded to whole groups of four
    for r in range(nq):
        if prepare_query(Q[r], mode, qs[r]) != OK:
            return NOT_FINITE
    SD = np.empty((nq + QUERIES, k), np.float64)
    SI = np.empty((nq + QUERIES, k), np.int64)
    for r in range(nq + QUERIES):
        topk_reset(SD[r], SI[r])
    group = LANES * GROUP
    ngroups = xbt.shape[0] // (group * d)
    per_chunk = max(1, 262144 // (group * d * 4))
    out = np.empty((QUERIES, group), np.float32)
    masks = np.empty(QUERIES, np.uint64)
    thr = np.empty(QUERIES, np.float32)
    for c0 in range(0, ngroups, per_chunk):
        for r0 in range(0, nq, QUERIES):
            for g in range(c0, min(c0 + per_chunk, ngroups)):
                for j in range(QUERIES):
                    thr[j] = np.float32(SD[r0 + j, k - 1])
                dot_rows64x4(xbt, g * group * d, qs, r0, thr, l2, norms_p, g * group, out,
                             masks)
                for j in range(QUERIES):
                    mask = masks[j]
                    while mask != 0:
                        b = cttz64(mask)
                        mask &= mask - np.uint64(1)
                        i = g * group + np.int64(b)
                        if i < n and out[j, b] >= SD[r0 + j, k - 1]:
                            topk_push(SD[r0 + j], SI[r0 + j], np.float64(out[j, b]), i)
    for r in range(nq):
        finish(SD[r], SI[r], l2, _sqnorm(qs[r]), out_d[r], out_i[r])
    return OK


@njit(cache=True, nogil=True)
def flat_one(xbt, norms_p, n, q, mode, out_d, out_i):
    """One query against a flat index, from the transposed layout: checks, scan, k best into
    ``out_d``/``out_i`` (k,)."""
    k = out_d.shape[0]
    qbuf = np.empty(q.shape[0], np.float32)
    if prepare_query(q, mode, qbuf) != OK:
        return NOT_FINITE
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    topk_reset(sd, si)
    flat_scan_blocks(xbt, norms_p, n, qbuf, mode == 1, sd, si,
                     np.empty(LANES * GROUP, np.float32))
    finish(sd, si, mode == 1, _sqnorm(qbuf), out_d, out_i)
    return OK


@njit(cache=True, nogil=True, inline="always")
def _sqnorm(q):
    s = 0.0
    for t in range(q.shape[0]):
        s += np.float64(q[t]) * np.float64(q[t])
    return s


# =========================================================================== IVF
@njit(cache=True, nogil=True)
def probe_lists(ct, cn_p, nlist, q, l2, pd, pi):
    """The ``len(pd)`` best lists for ``q``, best first (ties to the lower list number):
    centroids ranked by ``q.c`` (ip, cosine) or ``2 q.c - |c|^2`` (l2, the nearest first).
    The centroids come in the transposed layout of ``transpose_blocks`` (``ct``, ``cn_p``), so
    the centroid scan is the flat scan's SIMD loop."""
    topk_reset(pd, pi)
    flat_scan_blocks(ct, cn_p, nlist, q, l2, pd, pi, np.empty(LANES * GROUP, np.float32))


@njit(cache=True, nogil=True, fastmath=FM)
def ivf_scan(codes, norms, ids, offsets, lists, q, l2, sd, si):
    """Scan the rows of the given lists in place (``offsets[l] .. offsets[l + 1]``)."""
    for p in range(lists.shape[0]):
        lst = lists[p]
        if lst >= 0:
            scan_rows(codes, norms, ids, offsets[lst], offsets[lst + 1], q, l2, sd, si)


@njit(cache=True, nogil=True)
def ivf_one(ct, cn_p, codes, norms, ids, offsets, q, mode, nprobe, out_d, out_i):
    """One IVF query: rank the centroids (``ct``, ``cn_p``: their transposed layout), keep the
    ``nprobe`` best lists, scan them."""
    k = out_d.shape[0]
    return _ivf_query(ct, cn_p, codes, norms, ids, offsets, q, mode,
                      np.empty(q.shape[0], np.float32), np.empty(nprobe, np.float64),
                      np.empty(nprobe, np.int64), np.empty(k, np.float64),
                      np.empty(k, np.int64), out_d, out_i)


@njit(cache=True, nogil=True)
def select_lists(scores, pd, pi):
    """The ``len(pd)`` best lists from a row of centroid scores computed beforehand (a batch's
    matrix product), best first, ties to the lower list number."""
    topk_reset(pd, pi)
    last = pd.shape[0] - 1
    for c in range(scores.shape[0]):
        if scores[c] >= pd[last]:
            topk_push(pd, pi, np.float64(scores[c]), c)


@njit(cache=True, nogil=True)
def _ivf_query(ct, cn_p, codes, norms, ids, offsets, q, mode, qbuf, pd, pi, sd, si,
               out_d, out_i, cs=None):
    if prepare_query(q, mode, qbuf) != OK:
        return NOT_FINITE
    l2 = mode == 1
    if cs is None:
        probe_lists(ct, cn_p, offsets.shape[0] - 1, qbuf, l2, pd, pi)
    else:
        select_lists(cs, pd, pi)
    topk_reset(sd, si)
    ivf_scan(codes, norms, ids, offsets, pi, qbuf, l2, sd, si)
    finish(sd, si, l2, _sqnorm(qbuf), out_d, out_i)
    return OK


@njit(cache=True, nogil=True)
def ivf_batch(ct, cn_p, codes, norms, ids, offsets, Q, mode, nprobe, out_d, out_i, CS=None):
    """Every row of ``Q`` through ``ivf_one``; returns the first bad row's status, or OK.
    ``CS``: the centroid scores of every query, when a matrix product computed them already."""
    d = Q.shape[1]
    k = out_d.shape[1]
    qbuf = np.empty(d, np.float32)
    pd = np.empty(nprobe, np.float64)
    pi = np.empty(nprobe, np.int64)
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    for r in range(Q.shape[0]):
        st = _ivf_query(ct, cn_p, codes, norms, ids, offsets, Q[r], mode, qbuf, pd,
                        pi, sd, si, out_d[r], out_i[r], None if CS is None else CS[r])
        if st != OK:
            return st
    return OK


# =========================================================================== PQ (8-bit codes)
@njit(cache=True, nogil=True, fastmath=FM)
def pq_table(books_t, q, l2, lut):
    """ADC look-up table (Jegou et al. 2011, eq. 13) for query ``q``: ``lut[j, c]`` is the inner
    product of sub-vector ``q_j`` with centroid ``C_j[c]`` (or their squared distance for l2).

    ``books_t`` holds the codebooks as (m, dsub, ksub) float64 (``pq.books_for_kernels``), so the
    inner loop runs over the centroids in SIMD. Each entry is summed in float64 and rounded once
    to float32, as ``pq.adc_tables`` does; ``lut`` may be float64 (no conversion in the scan) or
    float32 (half the cache: better when the table outgrows the L1 cache).
    """
    m, dsub, ksub = books_t.shape
    acc = np.empty(ksub)
    for j in range(m):
        for c in range(ksub):
            acc[c] = 0.0
        for t in range(dsub):
            qt = np.float64(q[j * dsub + t])
            col = books_t[j, t]
            if l2:
                for c in range(ksub):
                    diff = qt - col[c]
                    acc[c] += diff * diff
            else:
                for c in range(ksub):
                    acc[c] += qt * col[c]
        for c in range(ksub):
            lut[j, c] = np.float32(acc[c])


def lut_dtype(m: int, ksub: int) -> type:
    """float64 tables while they fit in a 32 KB L1 cache, float32 (converted in the scan) above."""
    return np.float64 if m * ksub * 8 <= 32768 else np.float32


@njit(cache=True, nogil=True)
def pq_scan(codes, ids, lut, sign, bias, sd, si):
    """Score codes ``codes[i, j]`` with ``bias + sign * sum_j lut[j, codes[i, j]]`` (the sum in
    float64, sub-quantisers in order) and keep the k best; ``ids=None`` means the row number is
    the id. Four codes at a time: their sums are independent, so their additions overlap."""
    n, m = codes.shape
    last = sd.shape[0] - 1
    i = 0
    while i + 4 <= n:
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for j in range(m):
            row = lut[j]
            s0 += np.float64(row[codes[i, j]])
            s1 += np.float64(row[codes[i + 1, j]])
            s2 += np.float64(row[codes[i + 2, j]])
            s3 += np.float64(row[codes[i + 3, j]])
        s0 = bias + sign * s0
        s1 = bias + sign * s1
        s2 = bias + sign * s2
        s3 = bias + sign * s3
        if s0 >= sd[last]:
            topk_push(sd, si, s0, i if ids is None else ids[i])
        if s1 >= sd[last]:
            topk_push(sd, si, s1, i + 1 if ids is None else ids[i + 1])
        if s2 >= sd[last]:
            topk_push(sd, si, s2, i + 2 if ids is None else ids[i + 2])
        if s3 >= sd[last]:
            topk_push(sd, si, s3, i + 3 if ids is None else ids[i + 3])
        i += 4
    while i < n:
        s = 0.0
        for j in range(m):
            s += np.float64(lut[j, codes[i, j]])
        s = bias + sign * s
        if s >= sd[last]:
            topk_push(sd, si, s, i if ids is None else ids[i])
        i += 1


@njit(cache=True, nogil=True)
def pq_one(codebooks, codes, q, mode, lut, out_d, out_i):
    """One PQ query: its table (into ``lut``, (m, ksub), see ``lut_dtype``), then every code
    (one byte per sub-code); ``codebooks`` in the kernels' layout (m, dsub, ksub) float64."""
    k = out_d.shape[0]
    return _pq_query(codebooks, codes, q, mode, np.empty(q.shape[0], np.float32),
                     lut, np.empty(k, np.float64),
                     np.empty(k, np.int64), out_d, out_i)


@njit(cache=True, nogil=True)
def _pq_query(codebooks, codes, q, mode, qbuf, lut, sd, si, out_d, out_i):
    if prepare_query(q, mode, qbuf) != OK:
        return NOT_FINITE
    l2 = mode == 1
    pq_table(codebooks, qbuf, l2, lut)
    topk_reset(sd, si)
    pq_scan(codes, None, lut, -1.0 if l2 else 1.0, 0.0, sd, si)
    _finish_signed(sd, si, l2, out_d, out_i)
    return OK


@njit(cache=True, nogil=True, inline="always")
def _finish_signed(sd, si, l2, out_d, out_i):
    """PQ keeps ``-distance`` as the score for l2: flip it back."""
    for t in range(sd.shape[0]):
        out_i[t] = si[t]
        if si[t] < 0:
            out_d[t] = np.inf if l2 else -np.inf
        else:
            out_d[t] = np.float32(-sd[t]) if l2 else np.float32(sd[t])


@njit(cache=True, nogil=True)
def pq_batch(codebooks, codes, Q, mode, lut, out_d, out_i):
    """Every row of ``Q`` through ``pq_one``."""
    k = out_d.shape[1]
    qbuf = np.empty(Q.shape[1], np.float32)
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    for r in range(Q.shape[0]):
        st = _pq_query(codebooks, codes, Q[r], mode, qbuf, lut, sd, si, out_d[r], out_i[r])
        if st != OK:
            return st
    return OK


@njit(cache=True, nogil=True)
def pq_batch_tables(codes, luts, sign, out_d, out_i):
    """Score every code against each query's own table ``luts[r]`` (m, ksub), e.g. the
    symmetric (SDC) tables of ``PQIndex.search(..., symmetric=True)``."""
    k = out_d.shape[1]
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    for r in range(luts.shape[0]):
        topk_reset(sd, si)
        pq_scan(codes, None, luts[r], sign, 0.0, sd, si)
        _finish_signed(sd, si, sign < 0, out_d[r], out_i[r])


# =========================================================================== IVF-PQ
# IVF-PQ scores in float32 with a fixed order of operations that numpy can follow step by step
# (``ivfpq.ivfpq_search_numpy``), so the two paths give the same bits without float64 tables:
#
# * table ``T[j, c] = sum_t q_{j,t} C_j[c, t]`` (l2: ``(q_{j,t} - C_j[c, t])^2``), the sum over
#   ``t`` in order, every product and every sum rounded to float32 (no fused multiply-add);
# * a code's sum ``T[0, c_0] + T[1, c_1] + ... + T[m-1, c_{m-1}]``, left to right in float32;
# * its score ``q.c_l + sum`` in float64 (l2: ``-sum``), the list's constant ``q.c_l`` in float64.
#
# Float32 halves the table (48 x 256 entries: 48 KB instead of 96 KB, the size of an L1 cache) and
# the table is built 16 entries at a time; float64 tables and sums cost about as much as the scan.
TABLE_BLOCK = 64  # table entries per call of table_block: four SIMD vectors of 16


def _make_table_block(l2: bool):
    @intrinsic
    def table_block(typingctx, books, j, c0, q, lut):
        """Entries ``c0 .. c0 + 63`` of row ``j`` of the table for ``q`` (``lut`` flat, row
        length ``ksub``), from codebooks ``books`` (m, dsub, ksub) float32: four vectors of 16
        entries accumulated in registers over ``t = 0 .. dsub - 1``, in order, each product and
        each sum rounded (LLVM ``fmul``/``fadd`` without fast-math flags: never fused)."""
        sig = types.void(books, types.intp, types.intp, q, lut)

        def codegen(context, builder, signature, args):
            b_t, _, _, q_t, l_t = signature.args
            ba = context.make_array(b_t)(context, builder, args[0])
            qa = context.make_array(q_t)(context, builder, args[3])
            la = context.make_array(l_t)(context, builder, args[4])
            f32, i32 = ir.FloatType(), ir.IntType(32)
            v16 = ir.VectorType(f32, LANES)
            intp = args[1].type
            _, dsub, ksub = cgutils.unpack_tuple(builder, ba.shape, 3)
            j, c0 = args[1], args[2]
            bj = builder.add(builder.mul(builder.mul(j, dsub), ksub), c0)  # books[j, 0, c0]
            qj = builder.mul(j, dsub)
            splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)
            nvec = TABLE_BLOCK // LANES

            def term(t, v):
                ptr = builder.gep(ba.data, [builder.add(builder.add(bj, builder.mul(t, ksub)),
                                                        ir.Constant(intp, LANES * v))])
                col = builder.load(builder.bitcast(ptr, v16.as_pointer()), align=4)
                qs = builder.insert_element(ir.Constant(v16, ir.Undefined), builder.load(
                    builder.gep(qa.data, [builder.add(qj, t)])), ir.Constant(i32, 0))
                qv = builder.shuffle_vector(qs, qs, splat)
                if l2:
                    diff = builder.fsub(qv, col)
                    return builder.fmul(diff, diff)
                return builder.fmul(qv, col)

            one = ir.Constant(intp, 1)
            first = [term(ir.Constant(intp, 0), v) for v in range(nvec)]
            entry = builder.basic_block
            loop = builder.append_basic_block("table.loop")
            done = builder.append_basic_block("table.done")
            builder.cbranch(builder.icmp_signed(">", dsub, one), loop, done)
            builder.position_at_end(loop)
            t = builder.phi(intp)
            accs = [builder.phi(v16) for _ in range(nvec)]
            t.add_incoming(one, entry)
            nxt = [builder.fadd(acc, term(t, v)) for v, acc in enumerate(accs)]
            t1 = builder.add(t, one)
            t.add_incoming(t1, loop)
            for v, acc in enumerate(accs):
                acc.add_incoming(first[v], entry)
                acc.add_incoming(nxt[v], loop)
            builder.cbranch(builder.icmp_signed("<", t1, dsub), loop, done)
            builder.position_at_end(done)
            results = [builder.phi(v16) for _ in range(nvec)]  # phi nodes first in a block
            row = builder.add(builder.mul(j, ksub), c0)
            for v, res in enumerate(results):
                res.add_incoming(first[v], entry)
                res.add_incoming(nxt[v], loop)
                ptr = builder.gep(la.data, [builder.add(row, ir.Constant(intp, LANES * v))])
                builder.store(res, builder.bitcast(ptr, v16.as_pointer()), align=4)
            return context.get_dummy_value()

        return sig, codegen

    return table_block


table_block_ip = _make_table_block(False)
table_block_l2 = _make_table_block(True)


@njit(cache=True, nogil=True)
def pq_table32(books, q, l2, lut):
    """The float32 ADC table of ``q`` (Jegou et al. 2011, eq. 13) into ``lut`` (flat, m * ksub):
    ``T[j, c] = sum_t q_{j,t} C_j[c, t]`` (l2: ``sum_t (q_{j,t} - C_j[c, t])^2``), the sum over
    ``t`` in order and every operation rounded to float32, as the numpy path computes it.
    ``books`` holds the codebooks as (m, dsub, ksub) float32 (``pq.books_t32``)."""
    m, dsub, ksub = books.shape
    if ksub % TABLE_BLOCK == 0:
        for j in range(m):
            for c0 in range(0, ksub, TABLE_BLOCK):
                if l2:
                    table_block_l2(books, j, c0, q, lut)
                else:
                    table_block_ip(books, j, c0, q, lut)
        return
    for j in range(m):  # fewer than 64 centroids: the same operations, one entry at a time
        for c in range(ksub):
            s = np.float32(0.0)
            for t in range(dsub):
                x = q[j * dsub + t]
                y = books[j, t, c]
                if l2:
                    v = (x - y) * (x - y)
                else:
                    v = x * y
                s = v if t == 0 else s + v
            lut[j * ksub + c] = s


@njit(cache=True, nogil=True, inline="always")
def _code_sums(codes, rows, nr, lut, ks, acc):
    """``acc[r] = T[0, c_0] + T[1, c_1] + ...`` (left to right, float32) for the codes of rows
    ``rows[0 .. nr - 1]``, eight codes at a time: eight independent chains of additions keep the
    loads in flight, and with ``ks`` a constant (256 for 8-bit codes) every look-up is a single
    instruction (row ``j``'s offset folds into the address). Lanes past ``nr`` repeat the last
    row; ``acc`` needs room for ``nr + 7`` sums."""
    m = codes.shape[1]
    e = nr - 1
    i = 0
    while i < nr:
        a0 = rows[i]
        a1 = rows[min(i + 1, e)]
        a2 = rows[min(i + 2, e)]
        a3 = rows[min(i + 3, e)]
        a4 = rows[min(i + 4, e)]
        a5 = rows[min(i + 5, e)]
        a6 = rows[min(i + 6, e)]
        a7 = rows[min(i + 7, e)]
        s0 = lut[codes[a0, 0]]
        s1 = lut[codes[a1, 0]]
        s2 = lut[codes[a2, 0]]
        s3 = lut[codes[a3, 0]]
        s4 = lut[codes[a4, 0]]
        s5 = lut[codes[a5, 0]]
        s6 = lut[codes[a6, 0]]
        s7 = lut[codes[a7, 0]]
        j = 1
        while j + 4 <= m:
            for u in range(4):
                b = (j + u) * ks
                s0 += lut[b + codes[a0, j + u]]
                s1 += lut[b + codes[a1, j + u]]
                s2 += lut[b + codes[a2, j + u]]
                s3 += lut[b + codes[a3, j + u]]
                s4 += lut[b + codes[a4, j + u]]
                s5 += lut[b + codes[a5, j + u]]
                s6 += lut[b + codes[a6, j + u]]
                s7 += lut[b + codes[a7, j + u]]
            j += 4
        while j < m:
            b = j * ks
            s0 += lut[b + codes[a0, j]]
            s1 += lut[b + codes[a1, j]]
            s2 += lut[b + codes[a2, j]]
            s3 += lut[b + codes[a3, j]]
            s4 += lut[b + codes[a4, j]]
            s5 += lut[b + codes[a5, j]]
            s6 += lut[b + codes[a6, j]]
            s7 += lut[b + codes[a7, j]]
            j += 1
        acc[i] = s0
        acc[i + 1] = s1
        acc[i + 2] = s2
        acc[i + 3] = s3
        acc[i + 4] = s4
        acc[i + 5] = s5
        acc[i + 6] = s6
        acc[i + 7] = s7
        i += 8


@njit(cache=True, nogil=True)
def code_sums(codes, rows, nr, lut, ksub, acc):
    """``_code_sums`` with the table's row length a constant where it is 256 (8-bit codes)."""
    if ksub == 256:
        _code_sums(codes, rows, nr, lut, 256, acc)
    else:
        _code_sums(codes, rows, nr, lut, ksub, acc)


@njit(cache=True, nogil=True, fastmath=FM)
def _dot64(q, c, lst):
    """``q . c[lst]`` summed in float64 (the products are exact; the order is LLVM's)."""
    s = 0.0
    for t in range(q.shape[0]):
        s += np.float64(q[t]) * np.float64(c[lst, t])
    return s


@njit(cache=True, nogil=True)
def ivfpq_one(centroids, ct, cn_p, books, codes, ids, offsets, q, mode, nprobe, out_d, out_i):
    """One IVF-PQ query: see ``_ivfpq_query``. Its working arrays are made here (a few
    allocations inside a compiled call cost less than passing buffers in from Python)."""
    d = q.shape[0]
    k = out_d.shape[0]
    m, _, ksub = books.shape
    return _ivfpq_query(centroids, ct, cn_p, books, codes, ids, offsets, q, mode,
                        np.empty(d, np.float32), np.empty(d, np.float32),
                        np.empty(nprobe, np.float64), np.empty(nprobe, np.int64),
                        np.empty(m * ksub, np.float32), np.empty(0, np.int64),
                        np.empty(0, np.float32), np.empty(k, np.float64), np.empty(k, np.int64),
                        out_d, out_i)


@njit(cache=True, nogil=True)
def _ivfpq_query(centroids, ct, cn_p, books, codes, ids, offsets, q, mode, qbuf, res, pd, pi,
                 lut, rows, acc, sd, si, out_d, out_i, cs=None):
    """One IVF-PQ query (Jegou et al. 2011, section IV): rank the centroids, then score the
    residual codes of the probed lists.

    Inner products: one table for the query, and the rows of all probed lists are scanned as one
    sequence (so eight codes are always in flight, across list boundaries), each score
    ``q.c_l + sum`` with its list's constant. l2: one table per list, from the query's residual
    ``q - c_l`` (float32), and the list's rows scored ``-sum``. ``rows``/``acc`` are replaced by
    larger arrays when the probed lists need more room."""
    if prepare_query(q, mode, qbuf) != OK:
        return NOT_FINITE
    l2 = mode == 1
    if cs is None:
        probe_lists(ct, cn_p, centroids.shape[0], qbuf, l2, pd, pi)
    else:
        select_lists(cs, pd, pi)
    topk_reset(sd, si)
    need = 0
    for p in range(pi.shape[0]):
        if pi[p] >= 0:
            size = offsets[pi[p] + 1] - offsets[pi[p]]
            need = max(need, size) if l2 else need + size
    if rows.shape[0] < need + 8:
        rows = np.empty(need + 8, np.int64)
        acc = np.empty(need + 8, np.float32)
    ksub = books.shape[2]
    last = sd.shape[0] - 1
    if not l2:
        pq_table32(books, qbuf, False, lut)
        nr = 0
        for p in range(pi.shape[0]):
            lst = pi[p]
            if lst >= 0:
                for r in range(offsets[lst], offsets[lst + 1]):
                    rows[nr] = r
                    nr += 1
        code_sums(codes, rows, nr, lut, ksub, acc)
        nr = 0
        for p in range(pi.shape[0]):
            lst = pi[p]
            if lst < 0 or offsets[lst] == offsets[lst + 1]:
                continue
            bias = _dot64(qbuf, centroids, lst)
            for r in range(offsets[lst], offsets[lst + 1]):
                s = bias + np.float64(acc[nr])
                if s >= sd[last]:
                    topk_push(sd, si, s, ids[r])
                nr += 1
    else:
        for p in range(pi.shape[0]):
            lst = pi[p]
            if lst < 0:
                continue
            a, b = offsets[lst], offsets[lst + 1]
            if a == b:
                continue
            for t in range(qbuf.shape[0]):
                res[t] = qbuf[t] - centroids[lst, t]
            pq_table32(books, res, True, lut)
            for r in range(a, b):
                rows[r - a] = r
            code_sums(codes, rows, b - a, lut, ksub, acc)
            for r in range(a, b):
                s = -np.float64(acc[r - a])
                if s >= sd[last]:
                    topk_push(sd, si, s, ids[r])
    _finish_signed(sd, si, l2, out_d, out_i)
    return OK


@njit(cache=True, nogil=True)
def ivfpq_batch(centroids, ct, cn_p, books, codes, ids, offsets, Q, mode, nprobe, out_d, out_i,
                CS=None):
    """Every row of ``Q`` through ``ivfpq_one`` (``CS``: precomputed centroid scores), with one
    set of working arrays: ``rows``/``acc`` sized for the ``nprobe`` largest lists."""
    d = Q.shape[1]
    k = out_d.shape[1]
    m, _, ksub = books.shape
    sizes = np.sort(offsets[1:] - offsets[:-1])
    cap = sizes[max(0, sizes.shape[0] - nprobe):].sum() + 8
    qbuf = np.empty(d, np.float32)
    res = np.empty(d, np.float32)
    pd = np.empty(nprobe, np.float64)
    pi = np.empty(nprobe, np.int64)
    lut = np.empty(m * ksub, np.float32)
    rows = np.empty(cap, np.int64)
    acc = np.empty(cap, np.float32)
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    for r in range(Q.shape[0]):
        st = _ivfpq_query(centroids, ct, cn_p, books, codes, ids, offsets, Q[r], mode,
                          qbuf, res, pd, pi, lut, rows, acc, sd, si, out_d[r], out_i[r],
                          None if CS is None else CS[r])
        if st != OK:
            return st
    return OK


# =========================================================================== numpy helpers
def rank(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best ``scores`` (ties: lower id first): the numpy paths' selection,
    the same rule as ``topk_push``."""
    return np.lexsort((ids, -np.asarray(scores, dtype=np.float64)))[:k]


def pad_results(scores: np.ndarray, ids: np.ndarray, k: int, l2: bool) -> tuple[np.ndarray,
                                                                              np.ndarray]:
    """One query's best ``(scores, ids)`` padded to ``k`` with ``-inf`` (``+inf`` for l2
    distances) and id ``-1``."""
    d = np.full(k, np.inf if l2 else -np.inf, dtype=np.float32)
    i = np.full(k, -1, dtype=np.int64)
    d[:len(scores)] = scores
    i[:len(ids)] = ids
    return d, i
