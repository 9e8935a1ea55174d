"""Worked numbers for the aten ops declared after listing every non-composite aten overload.

Each expected number shows its arithmetic. Ops with a CPU kernel run under ``fd.count``; the
cuDNN/backend-only ones are priced through the compiled family on a result of the right shape,
asserted equal to the Python reference (``_reference.py``), as in test_backward_and_backend_kernels.py.
"""
import torch
import torch.nn.functional as F

import flopdispatch as fd
from flopdispatch._core import compiled_cost, declaration, python_cost

aten = torch.ops.aten


def ops(c):
    return {k: v["flops"] for k, v in c.ops().items()}


def both(op, args, out, kwargs=None):
    """FLOPs of one call from the compiled family, asserted equal to the Python reference."""
    kwargs = kwargs or {}
    cpp = tuple(compiled_cost(op, args, kwargs, out))
    assert cpp == tuple(python_cost(op, args, kwargs, out)[:3])
    return cpp[0]


def test_add_relu_conj_and_integer_ops():
    a = torch.arange(1, 13, dtype=torch.float32).reshape(3, 4)
    i = torch.arange(1, 13).reshape(3, 4)
    with fd.count() as c:
        aten._add_relu.Tensor(a, a)
    assert ops(c)["aten::_add_relu"] == 2 * 12  # add, relu on 3 * 4 elements = 24
    z = torch.rand(3, 4, dtype=torch.complex64)
    # conj_physical's out= kernel: one sign flip per element, as _conj_physical (which its composite
    # default overload calls, and is counted by): 12
    out = torch.empty_like(z)
    assert both(aten.conj_physical.out, (z,), out, {"out": out}) == 12
    assert declaration(aten.conj_physical.default)[1] == "unsupported"  # offered to decomposition
    with fd.count() as c:
        torch.gcd(i, i + 1)
        i << 1
    # integer ops cost no FLOPs (the project's convention), but they are priced, not unsupported
    assert c.unsupported == {}
    assert set(ops(c)) >= {"aten::gcd", "aten::__lshift__"}


def test_window_functions():
    with fd.count() as c:
        torch.hann_window(10)
        torch.blackman_window(10)
        torch.kaiser_window(10)
    got = ops(c)
    assert got["aten::hann_window"] == 4 * 10  # scale, cos, multiply, subtract per sample = 40
    assert got["aten::blackman_window"] == 8 * 10  # two cosine terms (3 each) and two adds = 80
    assert got["aten::kaiser_window"] == 8 * 10
    assert c.unsupported == {}


def test_batch_norm_no_update_is_eval_batch_norm():
    x, w, b, rm, rv = torch.rand(2, 3, 4, 5), torch.rand(3), torch.rand(3), torch.rand(3), torch.rand(3) + 0.5
    with fd.count() as c:
        aten._batch_norm_no_update.default(x, w, b, rm, rv, 0.1, 1e-5)
        aten._native_batch_norm_legit_no_training.default(x, w, b, rm, rv, 0.1, 1e-5)
    got = ops(c)
    # scale and shift (2) + weight (1) + bias (1) per element: 4 * 2 * 3 * 4 * 5 = 480
    assert got["aten::_batch_norm_no_update"] == 4 * 120 == got["aten::_native_batch_norm_legit_no_training"]


def test_affine_grid_generators():
    theta = torch.rand(2, 2, 3)
    with fd.count() as c:
        aten.affine_grid_generator.default(theta, [2, 3, 4, 5], False)
    # grid [2, 4, 5, 2]: each coordinate a theta row dotted with (x, y, 1): 3 MACs = 6 FLOPs;
    # 6 * 2 * 4 * 5 * 2 = 480, the 2 * MACs of the composite F.affine_grid's bmm
    assert ops(c)["aten::affine_grid_generator"] == 6 * 2 * 4 * 5 * 2
    with fd.count() as c:
        torch.nn.functional.affine_grid(theta, [2, 3, 4, 5], align_corners=False)
    assert ops(c) == {"aten::affine_grid_generator": 480}  # F.affine_grid reaches the counter as this kernel
    # cuDNN's: no CPU kernel; priced on a result of its shape
    grid = torch.empty(2, 4, 5, 2)
    assert both(aten.cudnn_affine_grid_generator.default, (theta, 2, 3, 4, 5), grid) == 480
    # backward: grad [2, 4, 5, 2] folded into theta, 3 MACs per gradient element: 6 * 80 = 480
    assert both(aten.cudnn_affine_grid_generator_backward.default, (grid, 2, 3, 4, 5), torch.empty(2, 2, 3)) == 480


def test_lanczos_resize():
    x = torch.rand(1, 2, 8, 8)
    with fd.count() as c:
        aten._upsample_lanczos2d_aa.default(x, [4, 4], False)
    assert ops(c)["aten::_upsample_lanczos2d_aa"] == 71 * 2 * 4 * 4  # 6 x 6 taps: 36 mul + 35 add = 71; 2272


def test_transform_bias_rescale_qkv():
    qkv, bias = torch.rand(2, 5, 3 * 8), torch.rand(3 * 8)
    with fd.count() as c:
        q, k, v = aten._transform_bias_rescale_qkv.default(qkv, bias, 2)
    assert q.shape == (2, 2, 5, 4)
    # bias add on 2 * 5 * 24 = 240 elements, q scaled: 2 * 2 * 5 * 4 = 80; 320
    assert ops(c)["aten::_transform_bias_rescale_qkv"] == 240 + 80


def test_fake_quantize_cachemask():
    x = torch.rand(3, 4)
    with fd.count() as c:
        torch.fake_quantize_per_tensor_affine(x, 0.1, 0, 0, 255)
    # x / s + z, round, clamp (2), (q - z) * s: 7 per element: 84
    assert ops(c)["aten::fake_quantize_per_tensor_affine_cachemask"] == 7 * 12


def test_linalg_helpers():
    a = torch.rand(5, 5, dtype=torch.float64)
    spd = a @ a.T + 5 * torch.eye(5, dtype=torch.float64)
    chol = torch.linalg.cholesky(spd)
    b = torch.rand(5, 2, dtype=torch.float64)
    with fd.count() as c:
        aten._cholesky_solve_helper.default(b, chol, False)
        aten._linalg_eigvals.default(a)
    got = ops(c)
    assert got["aten::_cholesky_solve_helper"] == 2 * 5 ** 2 * 2  # two triangular solves: 2n^2 per column = 100
    assert got["aten::_linalg_eigvals"] == 10 * 5 ** 3  # general eigenvalues only: 10n^3 = 1250


def test_overrideable_convolution_priced_as_convolution():
    x, w = torch.rand(1, 2, 6, 6), torch.rand(4, 2, 3, 3)
    args = (x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    out = torch.empty(1, 4, 4, 4)
    # 1 * 4 * 4 * 4 outputs * (2 * 3 * 3) MACs = 1152 MACs
    assert tuple(compiled_cost(aten.convolution_overrideable.default, args, {}, out))[1] == 64 * 18
    assert (tuple(compiled_cost(aten.convolution_overrideable.default, args, {}, out))
            == tuple(compiled_cost(aten.convolution.default, args, {}, out)))


def test_scans_and_pool_out_kernels():
    x = torch.rand(2, 3, 4)
    with fd.count() as c:
        aten._logcumsumexp.default(x, 1)
        aten._aminmax.default(x)
        F.adaptive_avg_pool2d(x.unsqueeze(0), 2)
        torch._C._nn.adaptive_avg_pool2d(x.unsqueeze(0), [1, 2], out=torch.empty(0))
    got = ops(c)
    assert got["aten::_logcumsumexp"] == 24  # one per element of 2 * 3 * 4
    assert got["aten::_aminmax"] == 24
    # out= kernel as _adaptive_avg_pool2d: 1 per input (24) + 1 per output (1 * 2 * 1 * 2 = 4) = 28
    assert got["aten::adaptive_avg_pool2d"] == 24 + 4


def test_zero_and_move_lists():
    """Sparse parts, sampling and view copies are priced (no FLOPs), not unsupported."""
    s = torch.rand(3, 3).to_sparse()
    rate = torch.rand(3, 4)
    with fd.count() as c:
        s._indices(), s._values(), s._nnz(), s.sparse_dim()
        torch.poisson(rate)
        torch.binomial(torch.full((3,), 5.0), torch.full((3,), 0.5))
        torch.tril_indices(3, 3)
        torch.fft.fftfreq(5)
    assert c.unsupported == {}
    assert c.flops == 0
    assert declaration(aten._conj_copy.default)[1] == "move"
    assert declaration(aten._fw_primal.default)[1] == "zero"


def test_fused_ctc_loss_is_ctc_loss_and_its_backward():
    """cuDNN's CTC computes the loss and the gradient in one call: priced as the CPU kernels' two."""
    T, N, C, lengths = 6, 2, 5, [3, 2]
    log_probs = torch.randn(T, N, C).log_softmax(-1).requires_grad_()
    targets = torch.tensor([[1, 2, 3], [1, 2, 0]])
    with fd.count() as c:
        F.ctc_loss(log_probs, targets, [T, T], lengths, reduction="sum").backward()
    cpu = ops(c)
    lattice = N * T * (2 * 3 + 1)  # log_alpha [N, T, 2 S_max + 1] = 2 * 6 * 7 = 84
    assert cpu["aten::_ctc_loss"] == 13 * lattice  # 1092
    assert cpu["aten::_ctc_loss_backward"] == 21 * lattice + 6 * T * N * C  # 1764 + 360 = 2124
    # cuDNN: concatenated int32 targets, same shapes; no CPU kernel, priced on results of its shapes
    lp = torch.empty(T, N, C, device="meta")
    args = (lp, torch.zeros(5, dtype=torch.int32), [T, T], lengths, 0, True, False)
    out = (torch.empty(N, device="meta"), torch.empty(T, N, C, device="meta"))
    fused = both(aten._cudnn_ctc_loss.default, args, out)
    assert fused == 34 * lattice + 6 * T * N * C == cpu["aten::_ctc_loss"] + cpu["aten::_ctc_loss_backward"]  # 3216
    assert both(aten.miopen_ctc_loss.default, args, out) == fused
    # lengths as a CPU tensor (the .Tensor overload): read by the Python path, same count
    tensor_args = args[:3] + (torch.tensor(lengths),) + args[4:]
    assert both(aten._cudnn_ctc_loss.Tensor, tensor_args, out) == fused


# ---- the census: every non-composite aten overload is declared, or deliberately left ----------------

# Left unsupported on purpose (reported with their call counts when they run), by why:
LEFT = {
    # test-only operators of PyTorch's own test suite
    "_foobar _test_autograd_multiple_dispatch _test_autograd_multiple_dispatch_view "
    "_test_autograd_multiple_dispatch_view_copy _test_functorch_fallback _test_optional_filled_intlist "
    "_test_optional_floatlist _test_optional_intlist _test_parallel_materialize _test_warn_in_autograd "
    "_triton_multi_head_attention _triton_scaled_dot_attention": "test-only",
    # sparse internals: their work is the stored elements, which the dense-shape families do not read
    "_coalesce _sparse_addmm _sparse_compressed_tensor_with_dims _sparse_csr_prod _sparse_csr_sum "
    "_sparse_log_softmax _sparse_log_softmax_backward_data _sparse_mask_projection _sparse_softmax "
    "_sparse_softmax_backward_data _sparse_sparse_matmul _sparse_sum _sparse_sum_backward _spsolve hspmm sspaddmm "
    "native_norm sparse_compressed_tensor sparse_coo_tensor _cslt_compress _cslt_sparse_mm _cslt_sparse_mm_search "
    "_sparse_semi_structured_addmm _sparse_semi_structured_apply _sparse_semi_structured_apply_dense "
    "_sparse_semi_structured_linear _sparse_semi_structured_mm _sparse_semi_structured_tile "
    "_to_sparse_semi_structured": "sparse",
    # quantized tensors and packed low-bit weights (the weight's logical shape is not its tensor's)
    "_make_per_channel_quantized_tensor _make_per_tensor_quantized_tensor dequantize quantize_per_channel "
    "quantize_per_tensor quantize_per_tensor_dynamic quantized_batch_norm quantized_gru quantized_lstm "
    "quantized_max_pool1d quantized_max_pool2d quantized_max_pool3d _fused_moving_avg_obs_fq_helper "
    "_fused_moving_avg_obs_fq_helper_functional _fake_quantize_learnable_per_channel_affine_backward "
    "_fake_quantize_learnable_per_tensor_affine_backward _weight_int4pack_mm _weight_int4pack_mm_for_cpu "
    "_weight_int4pack_mm_with_scales_and_zeros _dyn_quant_matmul_4bit _mixed_dtypes_linear": "quantized",
    # Apple MPS kernels (not runnable or checkable here)
    # Apple MPS LSTM kernels (several outputs of workspace layouts), and the transposed conv backward
    # (a two-entry mask and no transposed flag for the conv_backward family to read)
    "_lstm_mps lstm_mps_backward mps_convolution_transpose_backward": "mps",
    # nested-tensor internals
    "_nested_select_backward _nested_sum_backward _nested_tensor_softmax_with_shape": "nested",
    # need a family that none has: a lattice sized by the target lengths (CTC), a list of products,
    # several products with a mask (linear/matmul backward), time-major conv, rows selected by index
    "_foreach_mm _compute_linear_combination linear_backward matmul_backward "
    "mkldnn_linear_backward conv_tbc embedding_renorm embedding_renorm_ glu_backward_jvp": "needs a new family",
}


def undeclared_aten_packets():
    """Names of aten packets with an overload that is neither composite nor declared."""
    has = torch._C._dispatch_has_kernel_for_dispatch_key
    keys = (torch._C.DispatchKey.CompositeImplicitAutograd, torch._C.DispatchKey.CompositeImplicitAutogradNestedTensor)
    found = set()
    for full in torch._C._dispatch_get_all_op_names():
        if not full.startswith("aten::"):
            continue
        base, _, overload = full[len("aten::"):].partition(".")
        try:
            func = getattr(getattr(aten, base), overload or "default")
        except (AttributeError, RuntimeError):
            continue
        if any(has(func.name(), k) for k in keys):
            continue
        if declaration(func)[1] == "unsupported":
            found.add(base)
    return found


def test_every_non_composite_aten_op_is_declared_or_deliberately_left():
    left = {n for names in LEFT for n in names.split()}
    found = undeclared_aten_packets()
    assert found - left == set(), "declare these (or list them in LEFT with why)"
    # a name that got declared (or left this torch) must leave LEFT too, so the list stays true;
    # names this torch does not have are allowed (newer/older builds)
    assert {n for n in left - found if hasattr(aten, n)} == set()


def test_newer_cuda_and_mps_kernels_priced_as_their_older_forms():
    f8 = torch.float8_e4m3fn
    x, w = torch.empty(32, 48, dtype=f8, device="meta"), torch.empty(16, 48, dtype=f8, device="meta").t()
    s = torch.empty((), device="meta")
    out = torch.empty(32, 16, dtype=torch.bfloat16, device="meta")
    v2 = compiled_cost(aten._scaled_mm_v2.default, (x, w, [s], [0], [0], [s], [0], [0], None), {}, out)
    assert tuple(v2)[1] == 32 * 48 * 16  # m * k * n = 24576 MACs
    q = torch.empty(2, 3, 5, 8, device="meta")  # [B, H, S, D]
    lse = torch.empty(2, 3, 5, device="meta")
    mps = tuple(compiled_cost(aten._scaled_dot_product_attention_math_for_mps.default, (q, q, q, None, 0.0, True),
                              {}, (q, lse)))
    cpu = tuple(compiled_cost(aten._scaled_dot_product_flash_attention_for_cpu.default, (q, q, q, 0.0, True),
                              {}, (q, lse)))
    # QK^T and PV, dense: 2 products * B 2 * H 3 * 5 * 5 pairs * D 8 = 2400 MACs, of which the causal
    # mask skips the 10 pairs above the diagonal: 2 * 2 * 3 * 10 * 8 = 960 (masked_macs)
    assert mps == cpu and mps[1:] == (2 * 2 * 3 * 25 * 8, 2 * 2 * 3 * 10 * 8)
    qb = torch.empty(2, 5, 3, 8, device="meta")  # flash layout [B, S, H, D]
    inplace = tuple(compiled_cost(aten._flash_attention_forward_no_dropout_inplace.default,
                                  (qb, qb, qb, qb, None, None, 5, 5, 0.0, True, False), {}, lse))
    assert inplace[1:] == (2400, 960)


def test_mps_convolutions_priced_as_convolution():
    x, w = torch.empty(1, 2, 6, 6, device="meta"), torch.empty(4, 2, 3, 3, device="meta")
    out = torch.empty(1, 4, 4, 4, device="meta")
    mps = tuple(compiled_cost(aten._mps_convolution.default, (x, w, None, [0, 0], [1, 1], [1, 1], 1), {}, out))
    assert mps[1] == 64 * 2 * 3 * 3  # 1 * 4 * 4 * 4 outputs * C_in 2 * 3 * 3 = 1152 MACs
    g = torch.empty_like(out)
    grads = (torch.empty_like(x), torch.empty_like(w), torch.empty(4, device="meta"))
    backward = tuple(compiled_cost(aten.mps_convolution_backward.default,
                                   (x, g, w, [0, 0], [1, 1], [1, 1], 1, [True, True, False]), {}, grads))
    assert backward[1] == 2 * 1152  # input and weight gradients, one forward's MACs each
