"""4-bit PQ fast scan: look-up tables that live in SIMD registers.

Plain PQ's scan (``embedlab.index.pq``) reads one table entry per sub-code from memory: ``m``
dependent loads per vector. With ``nbits = 4`` each sub-quantiser has only 16 centroids, so its
table has 16 entries, and 16 bytes fit in one 128-bit register. The x86 instruction ``pshufb``
(``vpshufb`` on 256 bits) looks up 32 bytes in such a register at once, each byte of its second
operand choosing one of the 16 entries. That is André, Kermarrec and Le Scouarnec's *PQ fast scan*
(VLDB 2015; "Quicker ADC", 2019), what faiss's ``IndexPQFastScan`` and ScaNN's asymmetric hashing
(LUT16) do. Four pieces make it work:

1. **Blocks of 32 vectors** (``pack_blocks``). Two 4-bit codes share a byte (sub-quantiser ``2p``
   in the low nibble, ``2p + 1`` in the high one), and the bytes of 32 vectors for the same pair
   of sub-quantisers are stored next to each other: one 32-byte load brings that pair's codes for
   the whole block.
2. **Tables quantised to uint8** (``quantize_tables``): ``pshufb`` moves bytes, so every float
   table ``T[j, c]`` is shifted by its row's minimum and scaled by one common factor ``a`` so that
   the widest row spans 0..255, then rounded. The block's sums are accumulated in uint16 lanes
   (at most 255 per sub-quantiser: no overflow below 257 of them).
3. **The in-register shuffle** (``lut16_block``): a numba intrinsic that emits LLVM IR calling
   ``llvm.x86.avx2.pshuf.b``: per pair, one load, two nibble masks, two shuffles, two widening
   adds, for 32 vectors at once. On a CPU without AVX2 the same sums come from a plain loop
   (``lut16_block_scalar``), with identical results.
4. **Exact re-ranking of a shortlist**: the uint8 tables give each vector an approximate score
   ``S``. Rounding moves each table entry by at most half a step, so ``S`` is within ``m / 2``
   steps of ``a`` times the exact ADC score. Every vector whose ``S`` is within ``m + 1`` steps of
   the k-th best ``S`` is re-scored with the float tables; no other vector can be in the exact top
   k. So the fast scan returns exactly the ids of plain float ADC (``pq.pq_search_numpy``) on the
   same codes, while touching the float tables for a few hundred vectors instead of all of them.

``PQIndex`` (and so ``AnisotropicPQIndex``) with ``nbits = 4`` searches this way.
"""

from __future__ import annotations

import llvmlite.binding as llvm_binding
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from embedlab.index import kernels as K

BLOCK = 32  # vectors per block: one 256-bit register of code bytes
SIMD = bool(llvm_binding.get_host_cpu_features().get("avx2", False))  # the pshufb route


# =========================================================================== layout
def pack_blocks(codes: np.ndarray) -> np.ndarray:
    """4-bit codes (n, m), values 0..15, as blocks of 32 vectors: a flat uint8 array where byte
    ``(b * npairs + p) * 32 + v`` holds codes ``2p`` (low nibble) and ``2p + 1`` (high nibble) of
    vector ``32 b + v``. ``m`` is padded to even and ``n`` to a multiple of 32 with code 0."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (n, m), got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() > 15):
        raise ValueError("codes must be 4-bit values in 0..15")
    n, m = codes.shape
    mp = m + (m % 2)
    nb = -(-n // BLOCK)
    full = np.zeros((nb * BLOCK, mp), np.uint8)
    full[:n, :m] = codes
    pairs = full[:, 0::2] | (full[:, 1::2] << 4)  # (n', npairs)
    return np.ascontiguousarray(pairs.reshape(nb, BLOCK, mp // 2).transpose(0, 2, 1)).ravel()


def unpack_blocks(blocks: np.ndarray, n: int, m: int) -> np.ndarray:
    """Inverse of ``pack_blocks``: the (n, m) codes."""
    mp = m + (m % 2)
    nb = -(-n // BLOCK)
    pairs = blocks.reshape(nb, mp // 2, BLOCK).transpose(0, 2, 1).reshape(nb * BLOCK, mp // 2)
    codes = np.empty((nb * BLOCK, mp), np.uint8)
    codes[:, 0::2] = pairs & 15
    codes[:, 1::2] = pairs >> 4
    return codes[:n, :m]


# =========================================================================== tables
def quantize_tables(tables: np.ndarray) -> tuple[np.ndarray, float, float]:
    """uint8 tables for the shuffle: ``(Q, a, bias)`` with ``Q[j, c] = round((T[j, c] - min_j)
    a)``, one scale ``a = 255 / max_j (max_c T[j, c] - min_j)`` for every row, and
    ``bias = sum_j min_j``, so that ``sum_j T[j, c_j] ~ sum_j Q[j, c_j] / a + bias``. ``T`` is
    (m, 16), larger is better; rows are padded to an even count with zeros."""
    t = np.asarray(tables, dtype=np.float64)
    if t.ndim != 2 or t.shape[1] != 16:
        raise ValueError(f"tables must be (m, 16), got shape {t.shape}")
    q = np.zeros((t.shape[0] + t.shape[0] % 2, 16), np.uint8)
    a, bias = _quantize(t, q)
    return q, a, bias


@njit(cache=True, nogil=True)
def _quantize(t, q):
    m = t.shape[0]
    width = 0.0
    bias = 0.0
    for j in range(m):
        lo = t[j, 0]
        hi = t[j, 0]
        for c in range(16):
            lo = min(lo, t[j, c])
            hi = max(hi, t[j, c])
        width = max(width, hi - lo)
        bias += lo
    a = 255.0 / width if width > 0 else 1.0
    for j in range(m):
        lo = t[j, 0]
        for c in range(16):
            lo = min(lo, t[j, c])
        for c in range(16):
            q[j, c] = np.uint8(min(np.floor((t[j, c] - lo) * a + 0.5), 255.0))
    return a, bias


# =========================================================================== the shuffle
@intrinsic
def lut16_block(typingctx, blocks, start, qlut, npairs, thr, acc):
    """Sum the uint8 tables over one block of 32 vectors with ``pshufb``; returns the 32-bit
    mask of the vectors whose sum is ``>= thr``, and writes the 32 uint16 sums into ``acc``.

    ``blocks[start:]``: the block's ``npairs * 32`` code bytes; ``qlut``: the flat uint8 tables,
    16 bytes per sub-quantiser. Emitted as LLVM IR, one loop over the pairs that keeps the 32
    sums in a vector register: per pair a 32-byte load, the low and high nibbles, the two tables
    broadcast to both 128-bit lanes, two ``vpshufb``, two widening adds.
    """
    sig = types.uint32(blocks, types.intp, qlut, types.intp, types.uint16, acc)

    def codegen(context, builder, signature, args):
        blocks_t, _, qlut_t, _, _, acc_t = signature.args
        b_arr = context.make_array(blocks_t)(context, builder, args[0])
        l_arr = context.make_array(qlut_t)(context, builder, args[2])
        a_arr = context.make_array(acc_t)(context, builder, args[5])
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        v32i8, v16i8, v32i16 = ir.VectorType(i8, 32), ir.VectorType(i8, 16), ir.VectorType(i16, 32)
        intp = args[3].type
        cbase = builder.gep(builder.bitcast(b_arr.data, i8.as_pointer()), [args[1]])
        lbase = builder.bitcast(l_arr.data, i8.as_pointer())
        fnty = ir.FunctionType(v32i8, [v32i8, v32i8])
        pshufb = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pshuf.b")
        nibble = ir.Constant(v32i8, [15] * 32)
        both_lanes = ir.Constant(ir.VectorType(i32, 32), list(range(16)) * 2)
        entry = builder.basic_block
        loop = builder.append_basic_block("lut16.loop")
        done = builder.append_basic_block("lut16.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        p = builder.phi(intp)
        acc = builder.phi(v32i16)
        p.add_incoming(ir.Constant(intp, 0), entry)
        acc.add_incoming(ir.Constant(v32i16, [0] * 32), entry)
        off = builder.mul(p, ir.Constant(intp, 32))
        codes = builder.load(builder.bitcast(builder.gep(cbase, [off]), v32i8.as_pointer()),
                             align=1)
        lo = builder.and_(codes, nibble)
        hi = builder.and_(builder.lshr(codes, ir.Constant(v32i8, [4] * 32)), nibble)
        t_lo = builder.load(builder.bitcast(builder.gep(lbase, [off]), v16i8.as_pointer()),
                            align=1)
        t_hi = builder.load(builder.bitcast(
            builder.gep(lbase, [builder.add(off, ir.Constant(intp, 16))]), v16i8.as_pointer()),
            align=1)
        r_lo = builder.call(pshufb, [builder.shuffle_vector(t_lo, t_lo, both_lanes), lo])
        r_hi = builder.call(pshufb, [builder.shuffle_vector(t_hi, t_hi, both_lanes), hi])
        nxt = builder.add(builder.add(acc, builder.zext(r_lo, v32i16)),
                          builder.zext(r_hi, v32i16))
        p1 = builder.add(p, ir.Constant(intp, 1))
        p.add_incoming(p1, loop)
        acc.add_incoming(nxt, loop)
        builder.cbranch(builder.icmp_signed("<", p1, args[3]), loop, done)
        builder.position_at_end(done)
        builder.store(nxt, builder.bitcast(a_arr.data, v32i16.as_pointer()), align=1)
        thr = builder.insert_element(ir.Constant(v32i16, ir.Undefined), args[4],
                                     ir.Constant(i32, 0))
        thr = builder.shuffle_vector(thr, thr, ir.Constant(ir.VectorType(i32, 32), [0] * 32))
        return builder.bitcast(builder.icmp_unsigned(">=", nxt, thr), i32)

    return sig, codegen


@njit(cache=True, nogil=True)
def lut16_block_scalar(blocks, start, qlut, npairs, thr, acc):
    """``lut16_block`` as a plain loop (the same sums and mask), for CPUs without AVX2."""
    mask = np.uint32(0)
    for v in range(BLOCK):
        s = 0
        for p in range(npairs):
            byte = np.int64(blocks[start + p * BLOCK + v])
            s += np.int64(qlut[2 * p * 16 + (byte & 15)]) + np.int64(qlut[(2 * p + 1) * 16
                                                                         + (byte >> 4)])
        acc[v] = s
        if s >= thr:
            mask |= np.uint32(1) << np.uint32(v)
    return mask


cttz32 = K.make_cttz(32)  # the next set lane of a 32-vector mask


# =========================================================================== the search
@njit(cache=True, nogil=True, inline="always")
def _offer_approx(tops, s):
    """Keep the k largest approximate sums in ``tops`` (descending, 0 = empty)."""
    k = tops.shape[0]
    if s <= tops[k - 1]:
        return
    p = k - 1
    while p > 0 and s > tops[p - 1]:
        tops[p] = tops[p - 1]
        p -= 1
    tops[p] = s


@njit(cache=True, nogil=True)
def _pass1(blocks, npairs, n, qlut, margin, tops, acc, cand_i, cand_s):
    """Approximate sums of every vector; keep as candidates those within ``margin`` of the k-th
    best sum seen so far (the threshold only rises, so the final candidates are a superset of
    the vectors within ``margin`` of the final k-th best). Returns how many."""
    nc = 0
    k = tops.shape[0]
    nblocks = (n + BLOCK - 1) // BLOCK
    for b in range(nblocks):
        kth = np.int64(tops[k - 1])
        thr = np.uint16(max(kth - margin, 0)) if tops[k - 1] > 0 else np.uint16(0)
        start = b * npairs * BLOCK
        if SIMD:
            mask = lut16_block(blocks, start, qlut, npairs, thr, acc)
        else:
            mask = lut16_block_scalar(blocks, start, qlut, npairs, thr, acc)
        while mask != 0:
            v = cttz32(mask)
            mask &= mask - np.uint32(1)
            i = b * BLOCK + v
            if i >= n:
                break
            s = acc[v]
            cand_i[nc] = i
            cand_s[nc] = s
            nc += 1
            _offer_approx(tops, np.uint16(s + 1))  # stored +1: 0 marks an empty slot
    return nc


@njit(cache=True, nogil=True, inline="always")
def _code(blocks, npairs, i, j):
    """Sub-code ``j`` of vector ``i`` in the blocked layout."""
    byte = np.int64(blocks[((i // BLOCK) * npairs + (j >> 1)) * BLOCK + (i % BLOCK)])
    return (byte >> 4) if j & 1 else (byte & 15)


@njit(cache=True, nogil=True)
def _fastscan_query(blocks, npairs, n, books_t, q, mode, qbuf, lut, tq, qlut, tops, acc, cand_i,
                    cand_s, sd, si, out_d, out_i):
    if K.prepare_query(q, mode, qbuf) != K.OK:
        return K.NOT_FINITE
    l2 = mode == 1
    m = books_t.shape[0]
    K.pq_table(books_t, qbuf, l2, lut)            # float tables (m, 16), as plain PQ
    sign = -1.0 if l2 else 1.0
    for j in range(m):                             # larger is better for the shuffle
        for c in range(16):
            tq[j, c] = sign * lut[j, c]
    qtab = qlut.reshape(-1, 16)
    _quantize(tq, qtab)
    for t in range(tops.shape[0]):
        tops[t] = 0
    margin = m + 1                                 # rounding: half a step per sub-quantiser
    nc = _pass1(blocks, npairs, n, qlut, margin, tops, acc, cand_i, cand_s)
    kth = np.int64(tops[tops.shape[0] - 1]) - 1    # -1: undo the +1 of empty-slot marking
    thr = kth - margin if tops[tops.shape[0] - 1] > 0 else -1
    K.topk_reset(sd, si)
    last = sd.shape[0] - 1
    for c in range(nc):                            # exact re-ranking of the shortlist
        if np.int64(cand_s[c]) < thr:
            continue
        i = cand_i[c]
        s = 0.0
        for j in range(m):
            s += lut[j, _code(blocks, npairs, i, j)]
        s = sign * s
        if s >= sd[last]:
            K.topk_push(sd, si, s, i)
    for t in range(sd.shape[0]):
        out_i[t] = si[t]
        if si[t] < 0:
            out_d[t] = np.inf if l2 else -np.inf
        else:
            out_d[t] = np.float32(-sd[t]) if l2 else np.float32(sd[t])
    return K.OK


@njit(cache=True, nogil=True)
def fastscan_batch(blocks, npairs, n, books_t, Q, mode, cand_i, cand_s, out_d, out_i):
    """Every row of ``Q`` through the fast scan; ``cand_i``/``cand_s`` are the caller's
    shortlist buffers (n entries, reused by every query)."""
    m, _, ksub = books_t.shape
    k = out_d.shape[1]
    qbuf = np.empty(Q.shape[1], np.float32)
    lut = np.empty((m, ksub), np.float64)
    tq = np.empty((m, ksub), np.float64)
    qlut = np.zeros(2 * npairs * 16, np.uint8)
    tops = np.zeros(k, np.uint16)
    acc = np.empty(BLOCK, np.uint16)
    sd = np.empty(k, np.float64)
    si = np.empty(k, np.int64)
    for r in range(Q.shape[0]):
        st = _fastscan_query(blocks, npairs, n, books_t, Q[r], mode, qbuf, lut, tq, qlut, tops,
                             acc, cand_i, cand_s, sd, si, out_d[r], out_i[r])
        if st != K.OK:
            return st
    return K.OK
