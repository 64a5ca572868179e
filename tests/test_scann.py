"""ScaNN parity: our anisotropic PQ against Google's ScaNN at the same code bytes (recall only).

ScaNN's asymmetric hashing uses 16 centres per block of ``dims_per_block`` coordinates (4 bits),
so the peer of ``ScannIndex(d, dims_per_block=b)`` is ``AnisotropicPQIndex(d, m=d // b, nbits=4)``.
"""

import numpy as np
import pytest

from embedlab import bench
from embedlab.index import PQIndex
from embedlab.index.anisotropic import AnisotropicPQIndex


@pytest.fixture(scope="module")
def ds():
    bench.one_thread()
    return bench.load_dataset("glove", n_base=4000, n_query=150, gt_k=10, seed=2)


@pytest.mark.parametrize("dims_per_block", [2, 5])
def test_anisotropic_pq_recall_within_tolerance_of_scann_ah(ds, dims_per_block):
    m = ds.dim // dims_per_block
    ours = AnisotropicPQIndex(ds.dim, m=m, nbits=4, T=0.2, metric="ip", seed=0)
    ours.train(ds.xb)
    ours.add(ds.xb)
    peer = bench.ScannIndex(ds.dim, dims_per_block=dims_per_block, threshold=0.2)
    peer.add(ds.xb)
    assert ours.code_size == peer.code_size  # same bytes per vector
    r_ours = bench.recall_at_k(ours.search(ds.xq, 10)[1], ds.gt, 10)
    r_scann = bench.recall_at_k(peer.search(ds.xq, 10)[1], ds.gt, 10)
    assert r_scann > 0.2  # ScaNN really searched (a random answer scores about 0.0025)
    assert r_ours >= r_scann - 0.03, (r_ours, r_scann)


def test_scann_tree_and_reorder_against_exact(ds):
    peer = bench.ScannIndex(ds.dim, dims_per_block=2, num_leaves=32, reorder=100)
    peer.add(ds.xb)
    low = bench.recall_at_k(peer.search(ds.xq, 10, leaves=1)[1], ds.gt, 10)
    high = bench.recall_at_k(peer.search(ds.xq, 10, leaves=32)[1], ds.gt, 10)
    assert low < high and high > 0.95  # every leaf plus exact re-ordering is nearly exact
    scores, ids = peer.search(ds.xq[:1], 10, leaves=32)  # the one-query path
    np.testing.assert_allclose(scores[0], ds.xb[ids[0]] @ ds.xq[0], atol=1e-4)


def test_scann_adapter_bad_input(ds):
    with pytest.raises(ValueError, match="dims_per_block must divide"):
        bench.ScannIndex(50, dims_per_block=3)
    with pytest.raises(ValueError, match="add\\(x\\) before search"):
        bench.ScannIndex(50).search(ds.xq, 10)


def test_plain_pq_same_bytes_is_the_baseline(ds):
    plain = PQIndex(ds.dim, m=25, nbits=4, metric="ip", seed=0)
    plain.train(ds.xb)
    plain.add(ds.xb)
    assert plain.code_size == bench.ScannIndex(ds.dim, dims_per_block=2).code_size
