"""Worked numbers for the FFT, dense linear algebra, _trilinear, distance, embedding-bag, grid-sampler
and weight-norm families, and exact counts past 64 bits.

Every expected number has its arithmetic beside it. `both` (from test_oracles) also asserts that the
compiled family and the Python reference agree on the call.
"""
import json
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import flopdispatch as fd
from flopdispatch import _reference
from flopdispatch._core import compiled_cost, python_cost
from test_oracles import both, meta

aten = torch.ops.aten


def count(fn, python_formulas=False):
    with fd.count(python_formulas=python_formulas) as c:
        fn()
    assert c.unsupported == {}, c.unsupported_reasons
    return c


# ---------------------------------------------------------------------------------------------------
# FFT: 5 n log2 n per complex transform, 2.5 n log2 n with real input or output; batches multiply
# ---------------------------------------------------------------------------------------------------

def test_fft_batched_complex_1024():
    x = torch.randn(8, 1024, dtype=torch.complex64)
    c = count(lambda: torch.fft.fft(x))
    assert c.flops == 8 * 5 * 1024 * 10  # batch 8 x 5 n log2 n, n = 1024 = 2^10: 409,600
    assert c.macs == 0
    assert list(c.ops()) == ["aten::_fft_c2c"]


def test_rfft_is_half_of_the_complex_transform():
    x = torch.randn(8, 1024)
    c = count(lambda: torch.fft.rfft(x))
    assert c.flops == 8 * 5 * 1024 * 10 // 2  # 2.5 n log2 n per real transform: 204,800
    assert list(c.ops()) == ["aten::_fft_r2c"]


def test_irfft_counts_the_real_output_length():
    x = torch.randn(8, 513, dtype=torch.complex64)  # the one-sided spectrum of 1024 real points
    c = count(lambda: torch.fft.irfft(x, n=1024))
    assert c.ops()["aten::_fft_c2r"]["flops"] == 8 * 5 * 1024 * 10 // 2  # n = 1024, not 513: 204,800


def test_fft2_uses_the_product_of_the_transformed_sizes():
    x = torch.randn(64, 64, dtype=torch.complex64)
    c = count(lambda: torch.fft.fft2(x))
    assert c.flops == 5 * 4096 * 12  # n = 64 * 64 = 4096 = 2^12: 245,760


def test_fft_meta_and_backward_are_priced():
    x = torch.randn(4, 256, dtype=torch.complex64, requires_grad=True)
    c = count(lambda: torch.fft.fft(x).abs().sum().backward())
    bwd = c.ops("backward")
    assert bwd["aten::_fft_c2c"]["flops"] == 4 * 5 * 256 * 8  # the gradient is one more transform: 40,960
    flops, macs, _ = both(aten._fft_c2c.default, (meta(4, 256, dtype=torch.complex64), [1], 0, True))
    assert (flops, macs) == (4 * 5 * 256 * 8, 0)  # same on meta


def test_fft_non_power_of_two_uses_log2_to_16_fractional_bits():
    # n = 1000: log2 1000 = 9.9657843, kept as floor(2^16 * log2 n) / 2^16: 9.9657843 x 65,536 = 653,117.4
    assert _reference.log2_q16(1000) == 653117
    flops, _, _ = both(aten._fft_c2c.default, (meta(1000, dtype=torch.complex64), [0], 0, True))
    assert flops == 5 * 1000 * 653117 // 65536  # floor(5 n log2 n) = 49,828 (exact: 49,828.9)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 10, 12, 100, 1000, 1023, 1025, 4095, 10007, 2**20 + 1])
def test_log2_q16_is_within_one_unit_below_the_exact_value(n):
    # The exact floor(2^16 log2 n) is the L with 2^L <= n^65536 < 2^(L+1): n^65536 has L + 1 bits.
    exact = (n ** 65536).bit_length() - 1
    assert exact - 1 <= _reference.log2_q16(n) <= exact  # truncating each squaring loses at most 1 unit


def test_fft_dims_and_batches():
    # _fft_r2c over dims (1, 2) of [3, 8, 16]: batch 3, n = 8 * 16 = 128 = 2^7
    flops, _, _ = both(aten._fft_r2c.default, (meta(3, 8, 16), [1, 2], 0, True))
    assert flops == 3 * 5 * 128 * 7 // 2  # 2.5 * 3 * 128 * 7 = 6,720


# ---------------------------------------------------------------------------------------------------
# Dense linear algebra at n = 256: leading terms (LAPACK Working Note 41)
# ---------------------------------------------------------------------------------------------------

N = 256


@pytest.fixture(scope="module")
def spd():
    torch.manual_seed(0)
    a = torch.randn(N, N, dtype=torch.float64)
    return a @ a.T + N * torch.eye(N, dtype=torch.float64)


def op_flops(c, name):
    return c.ops()[name]["flops"]


def test_cholesky_n256(spd):
    c = count(lambda: torch.linalg.cholesky(spd))
    got = op_flops(c, "aten::linalg_cholesky_ex")
    assert abs(got - N ** 3 / 3) <= 0.02 * N ** 3 / 3
    assert got == 256 ** 3 // 3  # 16,777,216 / 3 = 5,592,405


def test_lu_n256(spd):
    c = count(lambda: torch.linalg.lu_factor(spd))
    got = op_flops(c, "aten::linalg_lu_factor_ex")
    assert abs(got - 2 * N ** 3 / 3) <= 0.02 * 2 * N ** 3 / 3
    assert got == 2 * 256 ** 3 // 3  # 2mnk - (m+n)k^2 + 2k^3/3 at m = n = k: 2n^3/3 = 11,184,810


NEEDS_TORCH_2_14 = pytest.mark.skipif(not hasattr(torch.linalg, "polar"),
                                      reason="linalg.polar and linalg.matrix_sqrth are new in torch 2.14")


@NEEDS_TORCH_2_14
def test_polar_hand_count():
    a = torch.randn(2, 6, 4, dtype=torch.float64)
    c = count(lambda: torch.linalg.polar(a))
    assert list(c.ops()) == ["aten::linalg_polar"]
    # per 6 x 4 matrix (m = 6, n = 4): thin SVD 14mn^2 + 8n^3 = 1,344 + 512 = 1,856;
    # U = W V^H 2mn^2 = 192; H = (V S) V^H n^2 + 2n^3 = 16 + 128 = 144; 2,192 x batch 2 = 4,384
    assert c.flops == 4384
    flops, _, _ = both(aten.linalg_polar.default, (meta(2, 6, 4, dtype=torch.float64),))
    assert flops == 4384


@NEEDS_TORCH_2_14
def test_matrix_sqrth_hand_count(spd):
    c = count(lambda: torch.linalg.matrix_sqrth(spd))
    assert list(c.ops()) == ["aten::linalg_matrix_sqrth"]
    # eigh with vectors 9n^3 + n square roots + Q D (n^2) + (Q D) Q^H (2n^3), n = 256:
    # 150,994,944 + 256 + 65,536 + 33,554,432 = 184,615,168
    assert c.flops == 184615168
    flops, _, _ = both(aten.linalg_matrix_sqrth.default, (meta(3, 4, 4),))
    assert flops == 3 * (9 * 64 + 4 + 16 + 2 * 64)  # 3 x (576 + 4 + 16 + 128) = 3 x 724 = 2,172


def test_lu_rectangular():
    flops, _, _ = both(aten.linalg_lu_factor_ex.default, (meta(2, 30, 10),))
    # mn^2 - n^3/3 for m >= n: 3000 - 333.3 = 2,666 (floored once per matrix), x batch 2 = 5,332
    assert flops == 2 * ((3 * 30 * 10 * 10 - 10 ** 3) // 3)


def test_triangular_solve_n256(spd):
    L = torch.linalg.cholesky(spd)
    B = torch.randn(N, N, dtype=torch.float64)
    c = count(lambda: torch.linalg.solve_triangular(L, B, upper=False))
    got = op_flops(c, "aten::linalg_solve_triangular")
    assert abs(got - N ** 2 * N) <= 0.02 * N ** 3  # n^2 k with k = 256 columns
    assert got == 256 * 256 * 256  # 16,777,216


def test_solve_n256(spd):
    B = torch.randn(N, 4, dtype=torch.float64)
    c = count(lambda: torch.linalg.solve(spd, B))
    got = op_flops(c, "aten::_linalg_solve_ex")
    expected = 2 * N ** 3 / 3 + 2 * N ** 2 * 4  # LU + 2 n^2 k
    assert abs(got - expected) <= 0.02 * expected
    assert got == 2 * 256 ** 3 // 3 + 2 * 256 * 256 * 4  # 11,184,810 + 524,288 = 11,709,098


def test_inverse_n256(spd):
    c = count(lambda: torch.linalg.inv(spd))
    got = op_flops(c, "aten::linalg_inv_ex")
    assert abs(got - 2 * N ** 3) <= 0.02 * 2 * N ** 3
    assert got == 2 * 256 ** 3  # getrf + getri: 33,554,432


def test_batched_determinant_is_lu():
    flops, _, _ = both(aten._linalg_det.default, (meta(5, 12, 12),))
    assert flops == 5 * (2 * 12 ** 3 // 3)  # batch 5 x 2n^3/3 (1,152) = 5,760


def test_qr_modes():
    a = meta(20, 6)  # m = 20, n = k = 6
    geqrf = (6 * 36 * 20 - 2 * 216) // 3  # 2mn^2 - 2n^3/3 = 1440 - 144 = 1,296
    form_thin = (12 * 20 * 6 * 6 - 6 * 26 * 36 + 4 * 216) // 3  # Q 20x6: 4mnk - 2(m+n)k^2 + 4k^3/3 = 1,296
    form_full = (12 * 20 * 20 * 6 - 6 * 40 * 36 + 4 * 216) // 3  # Q 20x20: 9600 - 2880 + 288 = 7,008
    assert both(aten.linalg_qr.default, (a, "r"))[0] == geqrf
    assert both(aten.linalg_qr.default, (a,))[0] == geqrf + form_thin  # "reduced" by default: 2,592
    assert both(aten.linalg_qr.default, (a, "complete"))[0] == geqrf + form_full  # 8,304
    assert both(aten.geqrf.default, (a,), out=(meta(20, 6), meta(6)))[0] == geqrf  # no meta kernel


def test_eigen_and_singular_value_counts():
    a = meta(10, 10)
    assert both(aten._linalg_eigh.default, (a, "L", False))[0] == 4 * 1000 // 3  # 4n^3/3 = 1,333
    assert both(aten._linalg_eigh.default, (a,))[0] == 9 * 1000  # with vectors 9n^3
    assert both(aten.linalg_eig.default, (a,))[0] == 25 * 1000  # 25n^3
    values = meta(10, dtype=torch.complex64)  # the out= kernel: values only, 10n^3
    assert both(aten.linalg_eigvals.out, (a,), {"out": values}, out=values)[0] == 10 * 1000
    r = meta(30, 10)  # m = 30, n = 10
    assert both(aten._linalg_svd.default, (r, False, False))[0] == (12 * 30 * 100 - 4 * 1000) // 3  # 4mn^2 - 4n^3/3
    assert both(aten._linalg_svd.default, (r,))[0] == 14 * 30 * 100 + 8 * 1000  # thin U, V: 50,000
    assert both(aten._linalg_svd.default, (r, True))[0] == 4 * 900 * 10 + 8 * 30 * 100 + 9 * 1000  # 69,000
    # a wide matrix is counted on its transpose
    assert both(aten._linalg_svd.default, (meta(10, 30),))[0] == 50000


def test_svd_backward_and_pinv_run_priced():
    a = torch.randn(6, 4, requires_grad=True)
    c = count(lambda: (torch.linalg.svd(a, full_matrices=False)[0].sum() + torch.linalg.pinv(a).sum()).backward())
    assert c.ops()["aten::_linalg_svd"]["flops"] > 0


def test_lstsq_and_householder_and_ormqr():
    a, b = meta(20, 6), meta(20, 3)  # m 20, n = k 6, r 3
    out = (meta(6, 3), meta(0), meta(0, dtype=torch.int64), meta(0))
    qr = (6 * 36 * 20 - 2 * 216) // 3  # 1,296
    assert both(aten.linalg_lstsq.default, (a, b), out=out)[0] == qr + 3 * (4 * 20 * 6 - 36)  # + 3 x 444 = 2,628
    hp = both(aten.linalg_householder_product.default, (meta(20, 6), meta(4)))[0]
    assert hp == (12 * 20 * 6 * 4 - 6 * 26 * 16 + 4 * 64) // 3  # 4mnk - 2(m+n)k^2 + 4k^3/3: 5760-2496+256 /3 = 1,173
    cmat = meta(20, 5)
    flops = both(aten.ormqr.default, (meta(20, 6), meta(4), cmat, True, False), out=meta(20, 5))[0]
    assert flops == 4 * 20 * 5 * 4 - 2 * 5 * 16  # left: 4mnk - 2nk^2 = 1600 - 160 = 1,440


def test_every_linalg_opinfo_style_call_is_priced():
    torch.manual_seed(0)
    a = torch.randn(5, 5, dtype=torch.float64)
    s = a @ a.T + 5 * torch.eye(5, dtype=torch.float64)
    b = torch.randn(5, 2, dtype=torch.float64)

    def run():
        torch.linalg.qr(a)
        torch.linalg.svd(a)
        torch.linalg.eigh(s)
        torch.linalg.eig(a)
        torch.linalg.eigvals(a)
        torch.linalg.slogdet(a)
        torch.linalg.det(a)
        torch.linalg.pinv(a)
        torch.linalg.lstsq(a, b)
        torch.linalg.matrix_exp(a)
        torch.linalg.ldl_factor(s)
        ld, piv = torch.linalg.ldl_factor(s)
        torch.linalg.ldl_solve(ld, piv, b)
        lu, piv = torch.linalg.lu_factor(a)
        torch.linalg.lu_solve(lu, piv, b)
        torch.lu_unpack(lu, piv)
        torch.linalg.lu(a)
        L = torch.linalg.cholesky(s)
        torch.cholesky_solve(b, L)
        torch.cholesky_inverse(L)
        torch.triangular_solve(b, L, upper=False)
        q, tau = torch.geqrf(a)
        torch.linalg.householder_product(q, tau)
        torch.ormqr(q, tau, b)
        torch.linalg.cross(torch.randn(4, 3), torch.randn(4, 3))

    count(run)


# ---------------------------------------------------------------------------------------------------
# nn.Bilinear through _trilinear
# ---------------------------------------------------------------------------------------------------

def test_bilinear_macs():
    n, in1, in2, out = 4, 5, 6, 3
    layer = nn.Bilinear(in1, in2, out)
    x1, x2 = torch.randn(n, in1), torch.randn(n, in2)
    c = count(lambda: layer(x1, x2))
    row = c.ops()["aten::_trilinear"]
    assert row["macs"] == 4 * 3 * 5 * 6  # N x out x in1 x in2 = 360
    # 2 per MAC, + the second contraction with x2 (N x out x in2 = 72 multiply-adds, 2 FLOPs each)
    assert row["flops"] == 2 * 360 + 2 * (4 * 3 * 6)  # 720 + 144 = 864
    assert c.macs == 360


def test_bilinear_backward_is_priced():
    layer = nn.Bilinear(5, 6, 3)
    x1, x2 = torch.randn(4, 5, requires_grad=True), torch.randn(4, 6, requires_grad=True)
    c = count(lambda: layer(x1, x2).sum().backward())
    assert c.phase("backward").macs >= 3 * 360  # grads of x1, x2 and the weight: each a full trilinear sum


# ---------------------------------------------------------------------------------------------------
# distances, embedding bag, grid sampling, weight norm
# ---------------------------------------------------------------------------------------------------

def test_cdist_direct_and_matmul_paths():
    x1, x2 = meta(2, 4, 3), meta(2, 5, 3)  # B 2, P 4, R 5, M 3: 40 pairs
    f1, _, _ = both(aten._cdist_forward.default, (x1, x2, 1.0, None))
    assert f1 == 40 * 3 * 3  # p = 1: sub, abs, add per coordinate, no root = 360
    f2, _, _ = both(aten._cdist_forward.default, (x1, x2, 2.0, None))
    assert f2 == 40 * 3 * 3 + 40  # p = 2: sub, square, add + a sqrt per pair = 400
    f3, _, _ = both(aten._cdist_forward.default, (x1, x2, 3.0, None))
    assert f3 == 40 * 3 * 4 + 40  # general p: sub, abs, pow, add + a root per pair = 520
    fe, me, _ = both(aten._euclidean_dist.default, (x1, x2))
    assert me == 40 * (3 + 2)  # [x1, |x1|^2, 1] @ [-2 x2, 1, |x2|^2]^T: 200 MACs
    assert fe == 2 * 200 + 2 * 2 * (4 + 5) * 3 + 2 * 40  # + squared norms (108) + clamp, sqrt (80) = 588
    fb, _, _ = both(aten._cdist_backward.default, (meta(2, 4, 5), x1, x2, 2.0, meta(2, 4, 5)))
    assert fb == 40 * 3 * 4  # diff, / dist, x grad, accumulate per coordinate = 480


def test_cdist_and_pdist_run_priced():
    x1, x2 = torch.randn(30, 3), torch.randn(40, 3)
    c = count(lambda: torch.cdist(x1, x2))  # > 25 rows: the matmul path
    assert c.ops()["aten::_euclidean_dist"]["macs"] == 30 * 40 * (3 + 2)  # 6,000
    x = torch.randn(6, 4, requires_grad=True)
    c = count(lambda: F.pdist(x).sum().backward())
    assert c.ops()["aten::_pdist_forward"]["flops"] == 15 * 4 * 3 + 15  # 6*5/2 = 15 pairs: 195
    assert c.ops()["aten::_pdist_backward"]["flops"] == 15 * 4 * 4  # 240


@pytest.mark.parametrize("mode, weighted, per_index, per_bag", [
    ("sum", False, 1, 0),   # one add per looked-up element
    ("sum", True, 2, 0),    # + one multiply by the sample weight
    ("mean", False, 1, 1),  # + one divide per output element
    ("max", False, 1, 0),   # one compare per looked-up element
])
def test_embedding_bag(mode, weighted, per_index, per_bag):
    bag = nn.EmbeddingBag(10, 8, mode=mode)
    idx, offsets = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9]), torch.tensor([0, 4])  # 8 indices, 2 bags, D 8
    psw = torch.rand(8) if weighted else None
    c = count(lambda: bag(idx, offsets, per_sample_weights=psw))
    ops = c.ops()
    name = "aten::_embedding_bag" if "aten::_embedding_bag" in ops else "aten::_embedding_bag_forward_only"
    assert ops[name]["flops"] == 8 * 8 * per_index + 2 * 8 * per_bag  # e.g. sum: 64; weighted 128; mean 80


def test_embedding_bag_backward_is_priced():
    bag = nn.EmbeddingBag(10, 8, mode="sum")
    idx, offsets, psw = torch.tensor([1, 2, 4, 5]), torch.tensor([0, 2]), torch.rand(4, requires_grad=True)
    c = count(lambda: bag(idx, offsets, per_sample_weights=psw).sum().backward())
    back = c.ops("backward")
    assert back["aten::_embedding_bag_per_sample_weights_backward"]["flops"] == 2 * 4 * 8  # dot per index: 64


@pytest.mark.parametrize("mode, per", [("bilinear", 9), ("nearest", 0), ("bicubic", 35)])
def test_grid_sample_2d(mode, per):
    x, grid = torch.randn(2, 3, 8, 8), torch.rand(2, 5, 6, 2) * 2 - 1
    c = count(lambda: F.grid_sample(x, grid, mode=mode, align_corners=False))
    # per output element (2*3*5*6 = 180) by interpolation, + 3 per grid coordinate (2*5*6*2 = 120)
    assert c.ops()["aten::grid_sampler_2d"]["flops"] == 180 * per + 3 * 120


def test_grid_sample_3d_and_backward():
    x, grid = torch.randn(1, 2, 4, 4, 4, requires_grad=True), torch.rand(1, 3, 3, 3, 3, requires_grad=True)
    c = count(lambda: F.grid_sample(x, grid, align_corners=True).sum().backward())
    assert c.ops()["aten::grid_sampler_3d"]["flops"] == 1 * 2 * 27 * 21 + 3 * 81  # trilinear 21 x 54 + 3 x 81 = 1,377
    # backward: grad input and grad grid, each 21 per grad_output element, + 3 per coordinate
    assert c.ops()["aten::grid_sampler_3d_backward"]["flops"] == 2 * 54 * 21 + 3 * 81  # 2,511


def test_weight_norm():
    v, g = meta(4, 3, 5), meta(4, 1, 1)  # norm over dims 1, 2 per output channel: 4 norms
    flops, macs, _ = both(aten._weight_norm_interface.default, (v, g, 0), out=(meta(4, 3, 5), meta(4, 1, 1)))
    assert (flops, macs) == (3 * 60 + 2 * 4, 0)  # square, add, scale per element + sqrt, g/norm per norm = 188
    args = (meta(4, 3, 5), v, g, meta(4, 1, 1), 0)
    flops, _, _ = both(aten._weight_norm_interface_backward.default, args, out=(meta(4, 3, 5), meta(4, 1, 1)))
    assert flops == 5 * 60 + 3 * 4  # 312


def test_linear_cross_entropy_chunked_ops():
    import torch.nn.modules.linear_cross_entropy  # noqa: F401 - registers the torch_nn custom ops

    n, d, v = 6, 4, 10  # rows, features, classes: 60 logits, 240 MACs per N x V x D product
    x, w, t = meta(n, d), meta(v, d), meta(n, dtype=torch.int64)
    op = torch.ops.torch_nn._linear_cross_entropy_batch_chunked.default
    args = (x, w, t, None, None, "mean", -100, 0.0, 4, "auto", torch.float32, False, True, True, False)
    flops, macs, _ = both(op, args)
    assert macs == 3 * 240  # logits, grad_input, grad_weight = 720
    assert flops == 2 * 720 + 5 * 60 + 2 * 60  # + log-softmax loss 5 per logit + gradient 2 per logit = 1,860
    op = torch.ops.torch_nn._linear_cross_entropy_batch_chunked_no_reduction.default
    flops, macs, _ = both(op, (x, w, t, None, None, -100, 4, "auto", torch.float32))
    assert (flops, macs) == (2 * 240 + 5 * 60, 240)  # loss only: 780


def test_sparse_csr_products():
    mask = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)  # 5 stored of 12
    sparse = (torch.rand(3, 4) * mask + mask).to_sparse_csr()
    mat1, mat2 = torch.rand(3, 7), torch.rand(7, 4)  # k = 7
    flops, macs, _ = both(aten.sparse_sampled_addmm.default, (sparse, mat1, mat2))
    assert macs == 5 * 7  # one 7-long dot product per stored element = 35
    assert flops == 2 * 35 + 3 * 5  # + beta * self, alpha * (.), add per stored element = 85
    flops, macs, _ = both(aten._sparse_mm_reduce_impl.default, (sparse, torch.rand(4, 6), "sum"))
    assert (flops, macs) == (2 * 5 * 6, 5 * 6)  # stored x dense columns = 30 MACs


# ---------------------------------------------------------------------------------------------------
# Exact counts past 64 bits
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("python_formulas", [False, True])
def test_3e6_cubed_matmul_is_exact(python_formulas, tmp_path):
    a = torch.empty(3_000_000, 3_000_000, device="meta")
    with fd.count(python_formulas=python_formulas) as c:
        a @ a
    assert c.macs == 27_000_000_000_000_000_000  # (3e6)^3 = 2.7e19 > 2^63 - 1 = 9.2e18
    assert c.flops == 54_000_000_000_000_000_000  # 2 per MAC
    assert c.unsupported == {}
    assert "aten::mm" in c.table()
    data = json.loads(json.dumps(c.to_dict()))
    assert data["totals"]["macs"] == 27_000_000_000_000_000_000
    report = fd.Report.from_count(c)
    report.save(tmp_path / "r.json")
    loaded = fd.Report.load(tmp_path / "r.json")
    assert loaded.macs == 27_000_000_000_000_000_000 and loaded.flops == 54_000_000_000_000_000_000


def test_compiled_family_hands_counts_past_128_bits_to_python():
    # _trilinear of three 2^43-long vectors summed over every pair: 2^129 terms, past 128 bits
    n = 2 ** 43
    i = [meta(n, 1) for _ in range(3)]
    args = (*i, [1, 2], [0, 2], [0, 1], [0, 1, 2], 3)  # unroll over the size-1 dim 3
    out = aten._trilinear.default(*args)
    with pytest.raises(ValueError, match="128 bits"):
        compiled_cost(aten._trilinear.default, args, {}, out)
    flops, macs, _ = python_cost(aten._trilinear.default, args, {}, out)[:3]
    assert macs == 2 ** 129  # 2^43 cubed, exact as a Python int
    # The recorder carries it on exactly (issue 20: the part past 128 bits in Python ints).
    with fd.count() as c:
        aten._trilinear.default(*args)
    assert c.macs == 2 ** 129 and c.unsupported == {}


def test_symbolic_sizes_still_take_the_python_path():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv, StatelessSymbolicContext

    mode = FakeTensorMode(shape_env=ShapeEnv())
    ctx = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC, DimDynamic.DYNAMIC])
    x = mode.from_tensor(torch.randn(8, 1024, dtype=torch.complex64), symbolic_context=ctx)
    assert not isinstance(x.shape[1], int)
    with mode, fd.count() as c:
        torch.fft.fft(x)
    assert c.flops == 8 * 5 * 1024 * 10  # from the shape hints: 409,600
    assert c.unsupported == {}
