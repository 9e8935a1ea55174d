"""Every aten op flopdispatch knows, declared once as data: a formula family and its parameters.

Parameters are argument positions in the op's schema (keyword arguments are found by schema name)
and per-element FLOP costs. The compiled families in ``csrc/formulas.cpp`` compute from them; the
pure-Python oracle in ``_reference.py`` reads the same table. An op missing here is reported as
unsupported with its call count, never counted as zero. Costs are FLOPs per element; see the
README's convention table for the reasoning behind each number.
"""

# The parameters each family takes, in the order the compiled core receives them: the one source of
# the layout. csrc/gen_params.py writes it into csrc/family_params.h (formulas.cpp reads
# p[param::<family>::<name>]); _reference.py reads p["<name>"]. The family order is the C++ Family enum.
# Positions default to -1 (absent); costs and flags default to 0.
FAMILY_PARAMS = {
    "zero": (),
    "move": (),
    "unsupported": (),
    # kind: 0 a@b (b[..., k, n]), 1 outer, 2 a@b.T (b[n, k]), 3 grouped (MoE experts: 2d x 3d,
    # 3d x 3d and 2d x 2d contract as a@b; 3d x 2d splits b along N)
    "matmul": ("a", "b", "bias", "kind"),
    # always_transposed: 1 for the transposed-only kernels; cost_out: a fused epilogue per output
    # element (relu 1, add + relu 3)
    "conv": ("input", "weight", "bias", "transposed", "always_transposed", "cost_out"),
    "conv_backward": ("grad_out", "input", "weight", "transposed", "output_mask"),
    # layout: 0 [..., H, S, D], 1 [B, S, H, D]; causal_kind: 0 bool argument, 1 mask-type int
    # (1 top-left, 2 bottom-right); backward: 1 for the gradient kernels.
    # varlen: the cumulative-sequence-length argument; when given, the call is reported unsupported
    "attention": ("q", "layout", "causal", "causal_kind", "mask", "backward", "varlen"),
    "elementwise": ("cost", "times"),  # per output element, times an int argument when given
    # per element of `input` (diagonal: only its diagonal), plus per element of output `out_index`;
    # only_if: a bool argument that must be true for any cost (index_put's accumulate)
    "reduce": ("cost", "input", "cost_out", "only_if", "out_index", "diagonal"),
    "norm": ("input", "weight", "bias", "cost", "training", "cost_eval"),  # +1 each for weight, bias
    "norm_backward": ("grad", "output_mask", "cost_input", "cost_weight", "cost_bias"),
    "pool": ("kernel", "rank", "counted"),  # window size per element of `counted` (-1: output)
    "foreach": ("tensors", "cost"),
    "mha": (),
    "encoder_layer": ("gelu_cost", "relu_cost", "layer_norm_cost"),
    # gate_cost / gru_cost / rnn_cost: per hidden unit and step for 4, 3 and 1 gates; weights: the
    # cuDNN/MIOpen flat weight list (then w_ih and w_hh are not read)
    "rnn": ("input", "w_ih", "w_hh", "products", "gate_cost", "weights", "gru_cost", "rnn_cost"),
    # signal: the tensor holding the logical signal (-1: output 0, for complex-to-real); dim: the
    # transformed dims argument; half: 1 for a real input or output (r2c, c2r)
    "fft": ("signal", "dim", "half"),
    # kind: one of the LA_* counts below; other: a second operand (tau for Householder products);
    # flag, flag2: the argument that selects what is computed (QR mode, compute_v, compute_uv,
    # full_matrices, hermitian, left)
    "linalg": ("matrix", "kind", "other", "flag", "flag2"),
    "trilinear": ("i1", "expand1"),  # i2, i3 follow i1; expand2, expand3, sumdim, unroll_dim follow expand1
    # x2 -1: all pairs within x1 (pdist); kind: 0 forward, 1 backward, 2 Euclidean by matmul
    "distance": ("x1", "x2", "p", "kind"),
    # rows: tensor whose last dim is the embedding size; kind: 0 forward, 1 table gradient,
    # 2 per-sample-weights gradient
    "embedding_bag": ("rows", "indices", "mode", "per_sample_weights", "kind"),
    # counted: output (-1, forward) or grad_output; costs per counted element by interpolation mode
    # (nearest 0), coord_cost per grid coordinate
    "grid_sampler": ("counted", "grid", "mode", "output_mask", "linear_cost", "cubic_cost", "coord_cost"),
    # grads: position of compute_input_grad (weight and bias flags follow; -1: loss only); costs per logit
    "linear_cross_entropy": ("input", "weight", "bias", "grads", "cost", "grad_cost"),
    "sparse_matmul": ("sparse", "dense", "output_mask", "cost"),  # MACs: stored elements x dense.shape[-1]
    # Collectives and FSDP's copy helpers (see COMM_* below; priced in flopdispatch/comm.py): kind,
    # the tensors sent (read) and received (written; -1: the op's output), the process group (a
    # ProcessGroup, a group name, or an int group size) and the root rank argument.
    "comm": ("kind", "send", "recv", "group", "root"),
    # fused CTC loss and gradient: costs per lattice element (T x N x (2 S_max + 1)) and per gradient element
    "ctc": ("log_probs", "target_lengths", "cost", "grad_cost"),
}
_POSITION_PARAMS = {"a", "b", "bias", "input", "weight", "transposed", "grad_out", "output_mask", "q",
                    "causal", "mask", "training", "grad", "kernel", "counted", "tensors", "w_ih", "w_hh", "varlen",
                    "times", "only_if", "weights", "signal", "dim", "matrix", "other", "flag", "flag2", "i1",
                    "expand1", "x1", "x2", "p", "rows", "indices", "mode", "per_sample_weights", "grid", "grads",
                    "sparse", "dense", "send", "recv", "group", "root", "log_probs", "target_lengths"}

# Dense linear algebra counts (the `kind` of the linalg family; generated into LinalgKind in
# csrc/family_params.h: numbered 0, 1, 2, ... without gaps). Per matrix of the batch; n x n unless
# said; k = min(m, n).
LA_FACTOR_SYM = 0           # Cholesky, LDL^T: n^3/3
LA_FACTOR_LU = 1            # LU of m x n: 2mnk - (m+n)k^2 + 2k^3/3 (2n^3/3 square)
LA_TRI_SOLVE = 2            # triangular solve: n^2 per right-hand side column
LA_FACTORED_SOLVE = 3       # solve from a factorization (two triangular solves): 2n^2 per column
LA_SOLVE = 4                # LU + 2n^2 per column
LA_INVERSE = 5              # 2n^3
LA_INVERSE_FROM_CHOLESKY = 6  # 2n^3/3
LA_QR = 7                   # Householder QR 2k^2 (max(m,n) - k/3), + forming Q per mode
LA_HOUSEHOLDER_PRODUCT = 8  # Q (m x n) from k reflectors: 4mnk - 2(m+n)k^2 + 4k^3/3
LA_APPLY_Q = 9              # Q or Q^T times C (m x n): 4mnk - 2nk^2 (left), 4mnk - 2mk^2 (right)
LA_EIGH = 10                # symmetric eigensolver: 4n^3/3 values, 9n^3 with vectors
LA_EIG = 11                 # general eigensolver with vectors: 25n^3
LA_EIGVALS = 12             # general eigenvalues only: 10n^3
LA_SVD = 13                 # Golub-Reinsch SVD (m >= n; transposed otherwise): values 4mn^2 - 4n^3/3,
                            # thin U, V 14mn^2 + 8n^3, full U, V 4m^2n + 8mn^2 + 9n^3
LA_PINV = 14                # thin SVD (eigh with vectors when hermitian) + V S^+ U^H: 2mnk
LA_LSTSQ = 15               # QR + Q^T B + triangular solve: QR + (4mk - k^2) per column of X
LA_MATRIX_EXP = 16          # degree-18 Taylor polynomial: five n x n products, 10n^3
LA_POLAR = 17               # A = U H (m >= n) by the thin SVD A = W S V^H: SVD 14mn^2 + 8n^3,
                            # U = W V^H 2mn^2, H = (V S) V^H n^2 + 2n^3
LA_MATRIX_SQRTH = 18        # symmetric square root by eigh: 9n^3 + n square roots + (Q D) Q^H n^2 + 2n^3

# Communication kinds (the `kind` of the comm family). No FLOPs. The payload is the size the
# NCCL-tests convention measures an op by, per rank: the buffer of an all-reduce, broadcast or
# reduce; the full (gathered, unsharded) buffer of an all-gather, reduce-scatter, gather or
# scatter; what a rank sends in an all-to-all or a send (receives in a recv). Bus bytes are the
# payload times the algorithm's factor (n ranks): all-reduce 2(n-1)/n; all-gather, reduce-scatter,
# all-to-all, gather, scatter (n-1)/n; broadcast, reduce, send, recv 1.
COMM_ALL_REDUCE = 1
COMM_ALL_GATHER = 2
COMM_REDUCE_SCATTER = 3
COMM_ALL_TO_ALL = 4
COMM_BROADCAST = 5
COMM_REDUCE = 6
COMM_GATHER = 7
COMM_SCATTER = 8
COMM_SEND = 9
COMM_RECV = 10
COMM_BARRIER = 11  # synchronisation only: no payload
COMM_WAIT = 12     # waits for an async collective (functional collectives): no payload, its time
COMM_COPY = 13     # a local copy (FSDP's copy-in/out helpers): bytes read and written, no record

# Per-element costs used more than once.
SOFTMAX = 5          # max, subtract, exp, sum, divide
LAYER_NORM = 5       # mean, subtract, square, sum, scale by rstd (+1 weight, +1 bias)
RMS_NORM = 3         # square, sum, scale by rstd (+1 weight)
GELU = 5             # x * 0.5 * (1 + erf(x / sqrt(2)))
SIGMOID = 4          # 1 / (1 + exp(-x))
# LSTM per hidden unit and step: two bias adds on 4 gates (8), 3 sigmoids (12), 2 tanh (2),
# c = f*c + i*g (3), h = o*tanh(c) (1).
LSTM_GATES = 26
# GRU per hidden unit and step: bias adds on 3 gates (6), 2 sigmoids (8), tanh (1), r*h_n (1),
# n + r*h (1), h = (1-z)*n + z*h (3).
GRU_GATES = 20
# Plain RNN (tanh or relu) per hidden unit and step: two bias adds, the activation.
RNN_GATES = 3
RNN_GATE_COSTS = {"gate_cost": LSTM_GATES, "gru_cost": GRU_GATES, "rnn_cost": RNN_GATES}

# (aten names, family, params). A name without overload covers all overloads; "name.overload"
# overrides for one overload. An op with no row that has a composite (CompositeImplicitAutograd)
# kernel is counted by its parts (see _core._decompose): outer/ger (a mul), isfinite and nanmean
# have no row for that reason, so that they count the same with and without inference_mode.
# In-place variants ("add_") fall back to their base name. Names in other namespaces are written
# in full ("profiler::...").
OPS = [
    # ---- views and metadata: no FLOPs, no bytes --------------------------------------------------
    ("view _unsafe_view _reshape_alias reshape permute transpose t expand expand_as view_as squeeze "
     "unsqueeze slice select as_strided alias detach split split_with_sizes unsafe_split chunk "
     "unbind narrow diagonal view_as_real view_as_complex _conj conj _neg_view real imag unfold "
     "movedim numpy_T mT mH adjoint lift_fresh sym_size sym_stride sym_numel sym_storage_offset "
     "is_same_size _has_compatible_shallow_copy_type empty empty_strided empty_like new_empty "
     "new_empty_strided resize_ resize_as_ set_ record_stream _assert_async _assert_tensor_metadata "
     "_functional_assert_async is_nonzero dim _version detach_ unsqueeze_ squeeze_ transpose_ t_ "
     "as_strided_ _make_dep_token sym_constrain_range sym_constrain_range_for_size "
     "_nested_tensor_size _nested_tensor_strides _debug_has_internal_overlap "
     # whether a padding mask is left-aligned: a check of the mask, returns a Python bool
     "_nested_tensor_from_mask_left_aligned "
     # metadata queries, and the views between a jagged nested tensor and its values and offsets
     "sym_is_contiguous is_strides_like_format is_non_overlapping_and_dense storage_offset numel "
     "_nested_get_values _nested_get_offsets _nested_get_lengths _nested_get_ragged_idx "
     "_nested_get_min_seqlen _nested_get_max_seqlen _nested_get_jagged_dummy _nested_view_from_jagged "
     "_nested_view_from_buffer values _nested_compute_contiguous_strides_offsets "
     "is_contiguous stride size profiler::_record_function_enter profiler::_record_function_enter_new "
     "profiler::_record_function_exit prim::device prim::layout empty_permuted _use_cudnn_ctc_loss "
     "_use_cudnn_rnn_flatten_weight _fused_sdp_choice cudnn_is_acceptable "
     "_efficientzerotensor", "zero", {}),  # queries, and a ZeroTensor (no storage written)
    # ---- data movement: bytes, no FLOPs ----------------------------------------------------------
    ("_to_copy clone cat stack hstack vstack index index_select gather scatter "
     "_unsafe_index index_copy index_fill masked_scatter masked_select nonzero "
     "embedding constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d replication_pad1d "
     "replication_pad2d replication_pad3d _pad_circular repeat repeat_interleave flip roll tril triu "
     "zeros ones full zeros_like ones_like full_like new_zeros new_ones new_full scalar_tensor "
     "arange linspace logspace eye rand randn randint randperm rand_like randn_like randint_like "
     "normal uniform bernoulli random exponential multinomial lift_fresh_copy _local_scalar_dense "
     "upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d "
     "_upsample_nearest_exact2d _upsample_nearest_exact3d pixel_shuffle pixel_unshuffle "
     "slice_scatter select_scatter diagonal_scatter as_strided_scatter sort topk argsort unique "
     "_unique2 unique_consecutive unique_dim copy im2col _pin_memory contiguous "
     "_foreach_zero _foreach_copy channel_shuffle native_channel_shuffle bucketize searchsorted "
     "one_hot isin slice_backward select_backward diagonal_backward "
     "as_strided_copy expand_copy permute_copy view_copy transpose_copy t_copy unsqueeze_copy "
     "squeeze_copy slice_copy select_copy detach_copy alias_copy split_copy split_with_sizes_copy "
     "unbind_copy diagonal_copy narrow_copy _reshape_copy", "move", {}),
    ("max_unpool2d max_unpool3d diag_embed block_diag rot90 take _unsafe_masked_index _chunk_cat "
     "unfold_copy fill _to_sparse _to_sparse_csr _to_sparse_csc _to_sparse_bsr _to_sparse_bsc _to_dense "
     "sparse_mask nonzero_static masked_scatter_backward _unique complex "
     "_cudnn_rnn_flatten_weight _cudnn_init_dropout_state _foreach_clone", "move", {}),
    # Selection, like sort and topk: comparisons that order or pick data, treated as data movement.
    ("kthvalue median nanmedian mode", "move", {}),
    # Bit-level work on the float representation (exponent/mantissa split, next representable
    # value) and integer hashing of the bits: no floating-point arithmetic.
    ("frexp nextafter hash_tensor", "move", {}),
    # Nested tensors (the fast path of nn.TransformerEncoder): the valid tokens of a padded batch
    # copied into a nested tensor and back.
    ("_nested_tensor_from_mask to_padded_tensor _nested_tensor_from_tensor_list _nested_from_padded "
     "_nested_from_padded_and_nested_example _nested_from_padded_tensor _nested_view_from_buffer_copy",
     "move", {}),
    # Written, not read: the destination of a copy or fill.
    ("copy_ fill_ zero_ normal_ uniform_ random_ exponential_ bernoulli_ geometric_ cauchy_ "
     "log_normal_", "move", {"overwrites": 0}),
    # ---- matmul-like: MACs ----------------------------------------------------------------------
    ("mm bmm mv dot vdot _int_mm", "matmul", {"a": 0, "b": 1}),
    ("addmm baddbmm addbmm addmv _addmm_activation", "matmul", {"a": 1, "b": 2, "bias": 0}),
    ("addr", "matmul", {"a": 1, "b": 2, "bias": 0, "kind": 1}),
    ("_scaled_mm", "matmul", {"a": 0, "b": 1, "bias": 4}),
    ("_grouped_mm", "matmul", {"a": 0, "b": 1, "bias": 3, "kind": 3}),
    ("_scaled_grouped_mm", "matmul", {"a": 0, "b": 1, "bias": 5, "kind": 3}),
    # the v2 APIs: scales, recipes and swizzles as lists (self, mat2, scale_a[], recipe_a[], swizzle_a[],
    # scale_b[], recipe_b[], swizzle_b[], [offs,] bias, ...)
    ("_scaled_mm_v2", "matmul", {"a": 0, "b": 1, "bias": 8}),
    ("_scaled_grouped_mm_v2", "matmul", {"a": 0, "b": 1, "bias": 9, "kind": 3}),
    ("linear", "matmul", {"a": 0, "b": 1, "bias": 2, "kind": 2}),
    ("_weight_int8pack_mm", "matmul", {"a": 0, "b": 1, "kind": 2}),  # (self, weight [n, k], scales)
    ("convolution _convolution", "conv", {"input": 0, "weight": 1, "bias": 2, "transposed": 6}),
    ("mkldnn_convolution", "conv", {"input": 0, "weight": 1, "bias": 2}),
    ("cudnn_convolution", "conv", {"input": 0, "weight": 1}),
    # Backend kernels (CUDA, ROCm, CPU fallbacks), positions from their schemas:
    # cudnn_convolution_transpose(self, weight, padding, output_padding, stride, dilation, groups, ...)
    ("cudnn_convolution_transpose", "conv", {"input": 0, "weight": 1, "always_transposed": 1}),
    # cudnn_convolution_relu(self, weight, bias?, stride, padding, dilation, groups): + relu per output
    ("cudnn_convolution_relu miopen_convolution_relu", "conv", {"input": 0, "weight": 1, "bias": 2, "cost_out": 1}),
    # *_add_relu(self, weight, z, alpha?, bias?, ...): relu(conv + alpha * z): multiply, add, relu
    ("cudnn_convolution_add_relu miopen_convolution_add_relu", "conv",
     {"input": 0, "weight": 1, "bias": 4, "cost_out": 3}),
    # miopen_convolution(self, weight, bias?, padding, stride, dilation, groups, ...);
    # _nnpack_spatial_convolution(input, weight, bias?, padding, stride)
    ("miopen_convolution miopen_depthwise_convolution _nnpack_spatial_convolution", "conv",
     {"input": 0, "weight": 1, "bias": 2}),
    ("miopen_convolution_transpose", "conv", {"input": 0, "weight": 1, "bias": 2, "always_transposed": 1}),
    # Apple MPS: _mps_convolution(self, weight, bias?, padding, stride, dilation, groups);
    # _mps_convolution_transpose(self, weight, padding, output_padding, stride, dilation, groups);
    # mps_convolution_backward(self, grad_output, weight, padding, stride, dilation, groups, output_mask)
    ("_mps_convolution", "conv", {"input": 0, "weight": 1, "bias": 2}),
    ("_mps_convolution_transpose", "conv", {"input": 0, "weight": 1, "always_transposed": 1}),
    ("mps_convolution_backward", "conv_backward", {"grad_out": 1, "input": 0, "weight": 2, "output_mask": 7}),
    # (self, weight, kernel_size, bias?, stride, padding[, dilation])
    ("_slow_conv2d_forward thnn_conv2d slow_conv3d slow_conv3d_forward _conv_depthwise2d conv_depthwise3d "
     "slow_conv_dilated2d slow_conv_dilated3d", "conv", {"input": 0, "weight": 1, "bias": 3}),
    # (self, weight [C_in, C_out/g, *k], kernel_size, bias?, stride, padding, output_padding, dilation)
    ("slow_conv_transpose2d slow_conv_transpose3d", "conv",
     {"input": 0, "weight": 1, "bias": 3, "always_transposed": 1}),
    # _slow_conv2d_backward(grad_output, self, weight, kernel_size, stride, padding, output_mask)
    ("_slow_conv2d_backward", "conv_backward", {"grad_out": 0, "input": 1, "weight": 2, "output_mask": 6}),
    ("_slow_conv2d_backward.grad_input", "conv_backward", {"grad_out": 0, "input": 1, "weight": 2}),  # out=: all three
    # mkldnn_linear(self, weight [out, in], bias?); backward_input(input_size, grad_output, weight):
    # grad [N, out] @ weight [out, in]; backward_weights(grad_output, input, weight, bias_defined):
    # grad^T @ input, N * out * in MACs, read from grad and the weight's shape (its bias sum not counted)
    ("mkldnn_linear", "matmul", {"a": 0, "b": 1, "bias": 2, "kind": 2}),
    ("mkldnn_linear_backward_input", "matmul", {"a": 1, "b": 2}),
    ("mkldnn_linear_backward_weights", "matmul", {"a": 0, "b": 2}),
    ("convolution_backward", "conv_backward",
     {"grad_out": 0, "input": 1, "weight": 2, "transposed": 7, "output_mask": 10}),
    # ---- attention kernels ----------------------------------------------------------------------
    ("_scaled_dot_product_flash_attention_for_cpu _scaled_dot_product_flash_attention",
     "attention", {"q": 0, "causal": 4, "mask": -1}),
    ("_scaled_dot_product_flash_attention_for_cpu", "attention", {"q": 0, "causal": 4, "mask": 5}),
    ("_scaled_dot_product_flash_attention.quantized", "attention", {"q": 0, "causal": 7}),
    ("_scaled_dot_product_efficient_attention _scaled_dot_product_cudnn_attention",
     "attention", {"q": 0, "causal": 6, "mask": 3}),
    ("_scaled_dot_product_fused_attention_overrideable", "attention", {"q": 0, "causal": 5, "mask": 3}),
    ("_flash_attention_forward", "attention", {"q": 0, "layout": 1, "causal": 8, "varlen": 3}),
    # (out, query, key, value, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal, ...): writes out
    ("_flash_attention_forward_no_dropout_inplace", "attention", {"q": 1, "layout": 1, "causal": 9, "varlen": 4}),
    # Apple MPS's math path (query, key, value, attn_mask, dropout_p, is_causal, ...)
    ("_scaled_dot_product_attention_math_for_mps", "attention", {"q": 0, "causal": 5, "mask": 3}),
    ("_efficient_attention_forward", "attention",
     {"q": 0, "layout": 1, "causal": 9, "causal_kind": 1, "mask": 3, "varlen": 4}),
    ("_scaled_dot_product_flash_attention_for_cpu_backward", "attention",
     {"q": 1, "causal": 7, "backward": 1}),
    ("_scaled_dot_product_flash_attention_backward _scaled_dot_product_efficient_attention_backward",
     "attention", {"q": 1, "causal": 11, "backward": 1}),
    ("_scaled_dot_product_cudnn_attention_backward", "attention", {"q": 1, "causal": 14, "backward": 1}),
    ("_scaled_dot_product_fused_attention_overrideable_backward", "attention",
     {"q": 1, "causal": 13, "backward": 1}),
    ("_flash_attention_backward", "attention",
     {"q": 1, "layout": 1, "causal": 11, "backward": 1, "varlen": 6}),
    ("_efficient_attention_backward", "attention",
     {"q": 1, "layout": 1, "causal": 14, "causal_kind": 1, "backward": 1, "varlen": 6}),
    # _cudnn_attention_forward(query, key, value, attn_bias?, cum_seq_q?, cum_seq_k?, max_q, max_k,
    #   compute_log_sumexp, dropout_p, is_causal, ...); backward(grad_out, query, key, value, out,
    #   logsumexp, philox_seed, philox_offset, attn_bias, cum_seq_q, cum_seq_k, max_q, max_k, dropout_p, is_causal)
    ("_cudnn_attention_forward", "attention", {"q": 0, "causal": 10, "mask": 3, "varlen": 4}),
    ("_cudnn_attention_backward", "attention", {"q": 1, "causal": 14, "backward": 1, "varlen": 9}),
    ("_native_multi_head_attention", "mha", {}),
    # ---- recurrent layers (CPU fused LSTM layer; cells on CUDA) ----------------------------------
    ("mkldnn_rnn_layer", "rnn", {"input": 0, "w_ih": 1, "w_hh": 2, "products": 1, **RNN_GATE_COSTS}),
    # backward: grads of input and hidden state, and of both weights; gate math priced twice
    ("mkldnn_rnn_layer_backward", "rnn",
     {"input": 0, "w_ih": 1, "w_hh": 2, "products": 2, **{k: 2 * v for k, v in RNN_GATE_COSTS.items()}}),
    # cuDNN / MIOpen: _cudnn_rnn(input, weight[] (flat: w_ih, w_hh, b_ih?, b_hh?, w_hr? per layer and
    # direction), weight_stride0, weight_buf?, hx, cx?, mode, hidden_size, proj_size, num_layers, ...);
    # miopen_rnn(input, weight[], ...); the backward kernels (input, weight[], ...) priced like
    # mkldnn's (data and weight gradients: 2 products, gate math twice; output_mask not read).
    ("_cudnn_rnn miopen_rnn", "rnn", {"input": 0, "weights": 1, "products": 1, **RNN_GATE_COSTS}),
    ("_cudnn_rnn_backward miopen_rnn_backward", "rnn",
     {"input": 0, "weights": 1, "products": 2, **{k: 2 * v for k, v in RNN_GATE_COSTS.items()}}),
    ("_thnn_fused_lstm_cell", "elementwise", {"cost": LSTM_GATES}),
    ("_thnn_fused_gru_cell", "elementwise", {"cost": GRU_GATES}),
    # Cell backward kernels, per hidden unit and batch row: the forward's gate math again.
    # _thnn_fused_lstm_cell_backward[_impl](grad_hy?, grad_cy?, cx [B, H], cy, workspace, has_bias);
    # _thnn_fused_gru_cell_backward(grad_hy [B, H], workspace, has_bias)
    ("_thnn_fused_lstm_cell_backward _thnn_fused_lstm_cell_backward_impl", "reduce",
     {"cost": LSTM_GATES, "input": 2}),
    ("_thnn_fused_gru_cell_backward", "reduce", {"cost": GRU_GATES, "input": 0}),
    ("_transformer_encoder_layer_fwd", "encoder_layer",
     {"gelu_cost": GELU, "relu_cost": 1, "layer_norm_cost": LAYER_NORM + 2}),
    # ---- elementwise: FLOPs per output element --------------------------------------------------
    ("add sub rsub mul div neg abs reciprocal sign sgn sqrt rsqrt exp exp2 expm1 log log2 log10 "
     "log1p sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh erf erfc erfinv "
     "ceil floor round trunc frac relu maximum minimum fmax fmin eq ne lt le gt ge clamp_min "
     "clamp_max where masked_fill pow float_power remainder fmod copysign nan_to_num lgamma digamma "
     "polygamma i0 threshold threshold_backward square heaviside logical_not logical_and "
     "logical_or logical_xor bitwise_not bitwise_and bitwise_or bitwise_xor isnan isinf "
     "signbit xlogy special_xlog1py floor_divide max.other min.other max.out min.out",
     "elementwise", {"cost": 1}),
    ("clamp hardtanh leaky_relu hardtanh_backward leaky_relu_backward relu6 prelu _prelu_kernel",
     "elementwise", {"cost": 2}),
    ("addcmul addcdiv lerp softplus sigmoid_backward tanh_backward hardsigmoid logit hypot _prelu_kernel_backward "
     "rrelu_with_noise", "elementwise", {"cost": 3}),
    ("sigmoid hardswish elu celu selu", "elementwise", {"cost": SIGMOID}),
    ("silu mish softplus_backward hardswish_backward elu_backward", "elementwise", {"cost": 5}),
    ("gelu", "elementwise", {"cost": GELU}),
    ("silu_backward mish_backward", "elementwise", {"cost": 7}),
    ("gelu_backward", "elementwise", {"cost": 9}),
    ("_softmax _log_softmax _safe_softmax", "elementwise", {"cost": SOFTMAX}),
    ("_softmax_backward_data _log_softmax_backward_data", "elementwise", {"cost": 4}),
    ("native_dropout native_dropout_backward", "elementwise", {"cost": 2}),
    # Special functions: 1 per output element, whatever the series, recurrence or polynomial degree
    # (the rule already used for lgamma, digamma, erfinv, i0: one elementary-function evaluation).
    ("igamma igammac special_i0e special_i1 special_i1e special_ndtri special_log_ndtr special_erfcx "
     "special_zeta special_airy_ai special_bessel_j0 special_bessel_j1 special_bessel_y0 special_bessel_y1 "
     "special_modified_bessel_i0 special_modified_bessel_i1 special_modified_bessel_k0 "
     "special_modified_bessel_k1 special_scaled_modified_bessel_k0 special_scaled_modified_bessel_k1 "
     "special_spherical_bessel_j0 special_chebyshev_polynomial_t special_chebyshev_polynomial_u "
     "special_chebyshev_polynomial_v special_chebyshev_polynomial_w special_shifted_chebyshev_polynomial_t "
     "special_shifted_chebyshev_polynomial_u special_shifted_chebyshev_polynomial_v "
     "special_shifted_chebyshev_polynomial_w special_hermite_polynomial_h special_hermite_polynomial_he "
     "special_laguerre_polynomial_l special_legendre_polynomial_p", "elementwise", {"cost": 1}),
    # mvlgamma(x, p): p terms of lgamma(x - i/2), summed, plus a constant: 3 per term.
    ("mvlgamma", "elementwise", {"cost": 3, "times": 1}),
    # One operation each: a comparison (isposinf), a scale (deg2rad), the sign flip of conj.
    ("isposinf isneginf deg2rad rad2deg angle _conj_physical", "elementwise", {"cost": 1}),
    # hardshrink: |x| > l (abs, compare); shrink backward: the same test selects g; ldexp: x * 2^e;
    # dropout kernels: mask and scale; rrelu backward: compare-and-scale (as leaky_relu's);
    # _amp_update_scale_: a compare and a multiply on the one-element scale.
    ("hardshrink softshrink_backward hardshrink_backward ldexp _fused_dropout _masked_scale "
     "rrelu_with_noise_backward _amp_update_scale", "elementwise", {"cost": 2}),
    # softshrink: two compares and a shift; hardsigmoid backward: two compares and g / 6;
    # logit backward: g / (x (1 - x)); sinc: sin(pi x) / (pi x); entr: -x log x.
    ("softshrink hardsigmoid_backward logit_backward sinc special_entr", "elementwise", {"cost": 3}),
    ("polar", "elementwise", {"cost": 4}),  # r cos(t), r sin(t)
    ("glu", "elementwise", {"cost": SIGMOID + 1}),  # a * sigmoid(b), per output element
    # log_sigmoid: min(x, 0) - log1p(exp(-|x|)): min, abs, negate, exp, log1p, subtract;
    # backward: g * (max_deriv - sign * z / (1 + z)) with z = the saved exp(-|x|): compare, add,
    # divide, sign, subtract, multiply.
    ("log_sigmoid_forward log_sigmoid_backward", "elementwise", {"cost": 6}),
    # max(a, b) + log1p(exp(-|a - b|)): max, subtract, abs, negate, exp, log1p, add (base 2 alike).
    ("logaddexp logaddexp2", "elementwise", {"cost": 7}),
    # Softmax with a mask applied to the scores first (+1), and its backward (+1).
    ("_masked_softmax", "elementwise", {"cost": SOFTMAX + 1}),
    ("_masked_softmax_backward", "elementwise", {"cost": 5}),
    ("upsample_linear1d", "elementwise", {"cost": 3}),
    ("upsample_bilinear2d _upsample_bilinear2d_aa", "elementwise", {"cost": 9}),
    ("upsample_trilinear3d", "elementwise", {"cost": 21}),
    ("upsample_bicubic2d _upsample_bicubic2d_aa", "elementwise", {"cost": 35}),
    ("upsample_linear1d_backward", "reduce", {"cost": 3, "input": 0}),
    ("upsample_bilinear2d_backward _upsample_bilinear2d_aa_backward", "reduce", {"cost": 9, "input": 0}),
    ("upsample_trilinear3d_backward", "reduce", {"cost": 21, "input": 0}),
    ("upsample_bicubic2d_backward _upsample_bicubic2d_aa_backward", "reduce", {"cost": 35, "input": 0}),
    ("upsample_nearest1d_backward upsample_nearest2d_backward upsample_nearest3d_backward "
     "_upsample_nearest_exact1d_backward _upsample_nearest_exact2d_backward "
     "_upsample_nearest_exact3d_backward", "reduce", {"cost": 1, "input": 0}),
    # ---- reductions: FLOPs per input element (+ per output element) ------------------------------
    ("sum nansum prod amax amin max min argmax argmin aminmax cumsum cumprod logcumsumexp cummax "
     "cummin any all count_nonzero histc bincount", "reduce", {"cost": 1, "input": 0}),
    ("mean", "reduce", {"cost": 1, "input": 0, "cost_out": 1}),
    ("var var_mean", "reduce", {"cost": 4, "input": 0, "cost_out": 2}),
    ("std std_mean", "reduce", {"cost": 4, "input": 0, "cost_out": 3}),
    ("linalg_vector_norm norm", "reduce", {"cost": 2, "input": 0, "cost_out": 1}),
    ("logsumexp", "reduce", {"cost": 4, "input": 0, "cost_out": 1}),
    ("embedding_dense_backward", "reduce", {"cost": 1, "input": 0}),
    ("index_add scatter_add scatter_reduce", "reduce", {"cost": 1, "input": 3}),
    ("col2im", "reduce", {"cost": 1, "input": 0}),
    # Accumulating writes: 1 add per value written (index_put_(accumulate=True) is the backward of
    # w[idx]; without accumulate these are copies, 0 FLOPs). Values that broadcast count once.
    ("index_put _index_put_impl _unsafe_index_put put", "reduce", {"cost": 1, "input": 2, "only_if": 3}),
    ("_unsafe_masked_index_put_accumulate index_reduce", "reduce", {"cost": 1, "input": 3}),
    # scatter(reduce="add"/"multiply"): one combine per source (or per index, for a scalar value).
    ("scatter.reduce", "reduce", {"cost": 1, "input": 3}),
    ("scatter.value_reduce", "reduce", {"cost": 1, "input": 2}),
    # unfold_backward adds overlapping windows back; pad backward adds the mirrored/replicated
    # border gradients: 1 add per gradient element.
    ("unfold_backward reflection_pad1d_backward reflection_pad2d_backward reflection_pad3d_backward "
     "replication_pad1d_backward replication_pad2d_backward replication_pad3d_backward", "reduce",
     {"cost": 1, "input": 0}),
    # glu backward per (a, b) pair (= per grad_output element): sigmoid(b) (4), g * s (1),
    # g * a * s * (1 - s) (4).
    ("glu_backward", "reduce", {"cost": SIGMOID + 5, "input": 0}),
    ("segment_reduce", "reduce", {"cost": 1, "input": 0}),
    ("_segment_reduce_backward", "reduce", {"cost": 1, "input": 2}),
    # Histograms, as histc: one bin update per input element (min/max scan for the edges).
    ("histogram _histogramdd_from_bin_cts _histogramdd_from_bin_tensors _histogramdd_bin_edges", "reduce",
     {"cost": 1, "input": 0}),
    # equal: one comparison per element; allclose: |a - b| (2), atol + rtol |b| (3), compare (1), and (1).
    ("equal", "reduce", {"cost": 1, "input": 0}),
    ("allclose", "reduce", {"cost": 7, "input": 0}),
    # dist: subtract, then as the vector norm (power, sum; root per output); renorm: a norm per
    # slice (2) and the rescale (1).
    ("dist", "reduce", {"cost": 3, "input": 0, "cost_out": 1}),
    ("renorm", "reduce", {"cost": 3, "input": 0}),
    ("trace", "reduce", {"cost": 1, "input": 0, "diagonal": 1}),  # sums the diagonal
    ("mkldnn_adaptive_avg_pool2d", "reduce", {"cost": 1, "input": 0, "cost_out": 1}),
    # ---- losses -----------------------------------------------------------------------------------
    ("nll_loss_forward nll_loss2d_forward", "reduce", {"cost": 1, "input": 1}),
    ("nll_loss_backward nll_loss2d_backward", "reduce", {"cost": 1, "input": 2}),
    ("mse_loss", "reduce", {"cost": 3, "input": 0}),
    ("mse_loss_backward", "reduce", {"cost": 3, "input": 1}),
    ("smooth_l1_loss huber_loss soft_margin_loss", "reduce", {"cost": 4, "input": 0}),
    ("smooth_l1_loss_backward huber_loss_backward soft_margin_loss_backward", "reduce",
     {"cost": 4, "input": 1}),
    ("binary_cross_entropy", "reduce", {"cost": 8, "input": 0}),
    ("binary_cross_entropy_backward", "reduce", {"cost": 5, "input": 1}),
    ("binary_cross_entropy_with_logits", "reduce", {"cost": 10, "input": 0}),
    # Margin losses per input score: margin - x[y] + x[i], clamp, (power), sum; backward: compare,
    # scale, accumulate. multilabel is priced for one target per row (its work grows with the
    # number of targets, which only the data knows).
    ("multi_margin_loss multilabel_margin_loss_forward", "reduce", {"cost": 4, "input": 0}),
    ("multi_margin_loss_backward multilabel_margin_loss_backward", "reduce", {"cost": 3, "input": 1}),
    # CTC: per element of log_alpha [N, T, 2S+1] (output 1), logsumexp of 3 predecessors (max 2,
    # subtract 3, exp 3, add 2, log 1, add max 1) + the emission log-prob (1) = 13. Backward: beta
    # the same (13) + alpha + beta folded into the class sums by log-add-exp (8) per log_alpha
    # element (argument 6), and exp(lp) - exp(lcab + nll - lp), times grad (6) per gradient element.
    ("_ctc_loss", "reduce", {"cost": 0, "input": 0, "cost_out": 13, "out_index": 1}),
    ("_ctc_loss_backward", "reduce", {"cost": 21, "input": 6, "cost_out": 6}),
    # cuDNN / MIOpen: (log_probs [T, N, C], targets, input_lengths, target_lengths, blank, ...) ->
    # (loss, grad): loss and gradient in one call, priced as _ctc_loss and its backward together:
    # alpha 13 + beta 13 + the log-add-exp fold 8 = 34 per lattice element, 6 per gradient element.
    ("_cudnn_ctc_loss miopen_ctc_loss", "ctc", {"log_probs": 0, "target_lengths": 3, "cost": 34, "grad_cost": 6}),
    # ---- normalization ---------------------------------------------------------------------------
    ("native_layer_norm", "norm", {"input": 0, "weight": 2, "bias": 3, "cost": LAYER_NORM}),
    ("native_group_norm", "norm", {"input": 0, "weight": 1, "bias": 2, "cost": LAYER_NORM}),
    # Batch norm: training computes statistics (as layer norm); eval only scales (2 per element).
    ("native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_functional "
     "cudnn_batch_norm miopen_batch_norm", "norm",
     {"input": 0, "weight": 1, "bias": 2, "cost": LAYER_NORM, "training": 5, "cost_eval": 2}),
    ("_native_batch_norm_legit.no_stats _native_batch_norm_legit.no_stats_out", "norm",
     {"input": 0, "weight": 1, "bias": 2, "cost": LAYER_NORM, "training": 3, "cost_eval": 2}),
    ("_native_batch_norm_legit_no_training", "norm", {"input": 0, "weight": 1, "bias": 2, "cost": 2}),
    ("_batch_norm_with_update _batch_norm_with_update_functional", "norm",
     {"input": 0, "weight": 1, "bias": 2, "cost": LAYER_NORM}),
    # SyncBatchNorm's CUDA kernels: statistics (mean, subtract, square, sum per element), the
    # per-rank merge (per gathered statistic), the normalization, and the two backward halves
    # (sum dy and sum dy * (x - mean); then dy - means, scaled: 6 per element).
    ("batch_norm_stats batch_norm_update_stats", "reduce", {"cost": 4, "input": 0}),
    ("batch_norm_gather_stats batch_norm_gather_stats_with_counts", "reduce", {"cost": 6, "input": 1}),
    ("batch_norm_elemt", "norm", {"input": 0, "weight": 1, "bias": 2, "cost": 2}),
    ("batch_norm_backward_reduce", "reduce", {"cost": 4, "input": 0}),
    ("batch_norm_backward_elemt", "reduce", {"cost": 6, "input": 0}),
    ("_fused_rms_norm", "norm", {"input": 0, "weight": 2, "cost": RMS_NORM}),
    ("native_layer_norm_backward", "norm_backward",
     {"grad": 0, "output_mask": 7, "cost_input": 8, "cost_weight": 2, "cost_bias": 1}),
    ("native_group_norm_backward native_batch_norm_backward batch_norm_backward", "norm_backward",
     {"grad": 0, "output_mask": 9, "cost_input": 8, "cost_weight": 2, "cost_bias": 1}),
    # cudnn_batch_norm_backward(input, grad_output, weight, ...) and MIOpen's: no mask, all three.
    ("cudnn_batch_norm_backward miopen_batch_norm_backward", "norm_backward",
     {"grad": 1, "cost_input": 8, "cost_weight": 2, "cost_bias": 1}),
    ("_fused_rms_norm_backward", "norm_backward",
     {"grad": 0, "output_mask": 5, "cost_input": 6, "cost_weight": 2, "cost_bias": 0}),
    # ---- pooling ---------------------------------------------------------------------------------
    ("max_pool1d max_pool1d_with_indices", "pool", {"kernel": 1, "rank": 1}),
    ("max_pool2d max_pool2d_with_indices avg_pool2d", "pool", {"kernel": 1, "rank": 2}),
    ("max_pool3d max_pool3d_with_indices avg_pool3d", "pool", {"kernel": 1, "rank": 3}),
    # fractional_max_pool(self, kernel_size, output_size, random_samples): window per output
    ("fractional_max_pool2d mkldnn_max_pool2d", "pool", {"kernel": 1, "rank": 2}),
    ("fractional_max_pool3d mkldnn_max_pool3d", "pool", {"kernel": 1, "rank": 3}),
    ("fractional_max_pool2d_backward fractional_max_pool3d_backward", "reduce", {"cost": 1, "input": 0}),
    ("avg_pool2d_backward", "pool", {"kernel": 2, "rank": 2, "counted": 0}),
    ("avg_pool3d_backward", "pool", {"kernel": 2, "rank": 3, "counted": 0}),
    ("max_pool2d_with_indices_backward max_pool3d_with_indices_backward adaptive_max_pool2d_backward "
     "adaptive_max_pool3d_backward", "reduce", {"cost": 1, "input": 0}),
    ("_adaptive_avg_pool2d _adaptive_avg_pool3d", "reduce", {"cost": 1, "input": 0, "cost_out": 1}),
    ("adaptive_max_pool2d adaptive_max_pool3d", "reduce", {"cost": 1, "input": 0}),
    ("_adaptive_avg_pool2d_backward _adaptive_avg_pool3d_backward", "reduce", {"cost": 1, "input": 1}),
    # ---- optimizers: foreach and fused kernels, FLOPs per parameter element ----------------------
    ("_foreach_add _foreach_sub _foreach_mul _foreach_div _foreach_neg _foreach_sqrt _foreach_rsqrt "
     "_foreach_exp _foreach_log _foreach_abs _foreach_sign _foreach_reciprocal _foreach_maximum "
     "_foreach_minimum _foreach_clamp_min _foreach_clamp_max _foreach_pow _foreach_sigmoid "
     "_foreach_tanh _foreach_acos _foreach_asin _foreach_atan _foreach_ceil _foreach_cos _foreach_cosh "
     "_foreach_erf _foreach_erfc _foreach_expm1 _foreach_floor _foreach_frac _foreach_lgamma "
     "_foreach_log10 _foreach_log1p _foreach_log2 _foreach_round _foreach_sin _foreach_sinh "
     "_foreach_tan _foreach_trunc _foreach_max", "foreach", {"tensors": 0, "cost": 1}),
    # GradScaler: a finiteness test and the unscale multiply per gradient element.
    ("_amp_foreach_non_finite_check_and_unscale", "foreach", {"tensors": 0, "cost": 2}),
    ("_foreach_powsum", "foreach", {"tensors": 0, "cost": 2}),  # |x|^p and the sum
    ("_foreach_pow.ScalarAndTensor", "foreach", {"tensors": 1, "cost": 1}),
    ("_foreach_norm", "foreach", {"tensors": 0, "cost": 2}),
    ("_foreach_addcmul _foreach_addcdiv _foreach_lerp", "foreach", {"tensors": 0, "cost": 3}),
    # Adam per element: lerp m (3), v = b2*v + (1-b2)*g*g (4), sqrt(v)/c2 + eps (3), p -= s*m/d (3).
    ("_fused_adam", "foreach", {"tensors": 0, "cost": 13}),
    ("_fused_adamw", "foreach", {"tensors": 0, "cost": 14}),  # + decoupled weight decay p *= 1 - lr*wd
    ("_fused_sgd", "foreach", {"tensors": 0, "cost": 3}),     # momentum: b = m*b + g (2), p -= lr*b (1)
    ("_fused_adagrad", "foreach", {"tensors": 0, "cost": 6}),
    # ---- FFT (FFTW convention: 5 n log2 n per complex transform, half for real input/output) ------
    ("_fft_c2c", "fft", {"signal": 0, "dim": 1}),
    ("_fft_r2c", "fft", {"signal": 0, "dim": 1, "half": 1}),
    ("_fft_c2r", "fft", {"dim": 1, "half": 1}),  # the signal is the real output (last_dim_size long)
    # ---- dense linear algebra (LAPACK Working Note 41; Golub & Van Loan) ----------------------------
    ("cholesky linalg_cholesky_ex linalg_ldl_factor_ex", "linalg", {"matrix": 0, "kind": LA_FACTOR_SYM}),
    ("linalg_lu_factor_ex linalg_lu _linalg_det _linalg_slogdet", "linalg", {"matrix": 0, "kind": LA_FACTOR_LU}),
    ("triangular_solve", "linalg", {"matrix": 1, "kind": LA_TRI_SOLVE}),
    ("linalg_solve_triangular", "linalg", {"matrix": 0, "kind": LA_TRI_SOLVE}),
    ("linalg_lu_solve linalg_ldl_solve", "linalg", {"matrix": 0, "kind": LA_FACTORED_SOLVE}),
    ("cholesky_solve lu_solve", "linalg", {"matrix": 1, "kind": LA_FACTORED_SOLVE}),
    ("_linalg_solve_ex", "linalg", {"matrix": 0, "kind": LA_SOLVE}),
    ("linalg_inv_ex", "linalg", {"matrix": 0, "kind": LA_INVERSE}),
    ("cholesky_inverse", "linalg", {"matrix": 0, "kind": LA_INVERSE_FROM_CHOLESKY}),
    ("linalg_qr", "linalg", {"matrix": 0, "kind": LA_QR, "flag": 1}),
    ("geqrf", "linalg", {"matrix": 0, "kind": LA_QR}),  # the reflectors only: no Q formed
    ("linalg_householder_product", "linalg", {"matrix": 0, "kind": LA_HOUSEHOLDER_PRODUCT, "other": 1}),
    ("ormqr", "linalg", {"matrix": 0, "kind": LA_APPLY_Q, "other": 1, "flag": 3}),
    ("_linalg_eigh", "linalg", {"matrix": 0, "kind": LA_EIGH, "flag": 2}),
    ("linalg_eig", "linalg", {"matrix": 0, "kind": LA_EIG}),
    # linalg_eigvals is composite (counted by its parts: with any dispatch mode active it computes
    # the vectors too, through linalg_eig); its out= kernel computes the values only.
    ("linalg_eigvals.out", "linalg", {"matrix": 0, "kind": LA_EIGVALS}),
    ("_linalg_svd", "linalg", {"matrix": 0, "kind": LA_SVD, "flag": 2, "flag2": 1}),
    ("linalg_pinv linalg_pinv.rcond_tensor", "linalg", {"matrix": 0, "kind": LA_PINV, "flag": 2}),
    ("linalg_pinv.atol_rtol_float linalg_pinv.atol_rtol_tensor", "linalg", {"matrix": 0, "kind": LA_PINV, "flag": 3}),
    ("linalg_lstsq", "linalg", {"matrix": 0, "kind": LA_LSTSQ, "other": 1}),
    ("linalg_matrix_exp", "linalg", {"matrix": 0, "kind": LA_MATRIX_EXP}),
    # torch 2.14: CPU kernels of their own (their backward formulas run as priced aten ops)
    ("linalg_polar", "linalg", {"matrix": 0, "kind": LA_POLAR}),
    ("linalg_matrix_sqrth", "linalg", {"matrix": 0, "kind": LA_MATRIX_SQRTH}),
    ("linalg_cross", "elementwise", {"cost": 3}),  # each component a1*b2 - a2*b1
    ("lu_unpack", "move", {}),  # P, L, U from the packed factors and pivots: copies
    ("_linalg_check_errors", "zero", {}),  # reads the info codes LAPACK returned: no arithmetic
    # ---- nn.Bilinear and other contractions -----------------------------------------------------------
    ("_trilinear", "trilinear", {"i1": 0, "expand1": 3}),
    # ---- pairwise distances ---------------------------------------------------------------------------
    ("_cdist_forward", "distance", {"x1": 0, "x2": 1, "p": 2}),
    ("_cdist_backward", "distance", {"x1": 1, "x2": 2, "p": 3, "kind": 1}),
    ("_euclidean_dist", "distance", {"x1": 0, "x2": 1, "kind": 2}),
    ("_pdist_forward", "distance", {"x1": 0, "p": 1}),
    ("_pdist_backward", "distance", {"x1": 1, "p": 2, "kind": 1}),
    # ---- embedding bag --------------------------------------------------------------------------------
    ("_embedding_bag _embedding_bag_forward_only", "embedding_bag",
     {"rows": 0, "indices": 1, "mode": 4, "per_sample_weights": 6}),
    ("_embedding_bag_backward", "embedding_bag",
     {"rows": 0, "indices": 1, "mode": 8, "per_sample_weights": 10, "kind": 1}),
    ("_embedding_bag_dense_backward _embedding_bag_sparse_backward", "embedding_bag",
     {"rows": 0, "indices": 1, "mode": 7, "per_sample_weights": 8, "kind": 1}),
    ("_embedding_bag_per_sample_weights_backward", "embedding_bag", {"rows": 0, "indices": 2, "mode": 5, "kind": 2}),
    # ---- grid sampling: interpolation as the upsample ops (9 bilinear, 21 trilinear, 35 bicubic) ------
    ("grid_sampler_2d _grid_sampler_2d_cpu_fallback", "grid_sampler",
     {"grid": 1, "mode": 2, "linear_cost": 9, "cubic_cost": 35, "coord_cost": 3}),
    ("cudnn_grid_sampler", "grid_sampler", {"grid": 1, "linear_cost": 9, "coord_cost": 3}),
    ("grid_sampler_3d", "grid_sampler", {"grid": 1, "mode": 2, "linear_cost": 21, "coord_cost": 3}),
    ("grid_sampler_2d_backward", "grid_sampler",
     {"counted": 0, "grid": 2, "mode": 3, "output_mask": 6, "linear_cost": 9, "cubic_cost": 35, "coord_cost": 3}),
    ("_grid_sampler_2d_cpu_fallback_backward", "grid_sampler",
     {"counted": 0, "grid": 2, "mode": 3, "linear_cost": 9, "cubic_cost": 35, "coord_cost": 3}),
    ("grid_sampler_3d_backward", "grid_sampler",
     {"counted": 0, "grid": 2, "mode": 3, "output_mask": 6, "linear_cost": 21, "coord_cost": 3}),
    ("cudnn_grid_sampler_backward", "grid_sampler", {"counted": 2, "grid": 1, "linear_cost": 9, "coord_cost": 3}),
    # ---- weight norm: w = g * v / |v| (norm over every dim but `dim`) ---------------------------------
    # forward: square and add per element of v, sqrt and g / norm per norm, one multiply per element
    ("_weight_norm_interface", "reduce", {"input": 0, "cost": 3, "out_index": 1, "cost_out": 2}),
    # backward: grad_g = sum(grad_w * v) / norm (2 per element, 1 per norm); grad_v =
    # g / norm * (grad_w - v * grad_g / norm) (3 per element, 2 per norm)
    ("_weight_norm_interface_backward", "reduce", {"input": 0, "cost": 5, "out_index": 1, "cost_out": 3}),
    # ---- F.linear_cross_entropy's chunked custom ops: logits, log-softmax loss (5 per logit as
    # _log_softmax) and, precomputed in forward, softmax - one-hot (2 per logit) and the gradients --------
    ("torch_nn::_linear_cross_entropy_batch_chunked", "linear_cross_entropy",
     {"input": 0, "weight": 1, "bias": 3, "grads": 12, "cost": SOFTMAX, "grad_cost": 2}),
    ("torch_nn::_linear_cross_entropy_batch_chunked_no_reduction", "linear_cross_entropy",
     {"input": 0, "weight": 1, "bias": 3, "cost": SOFTMAX, "grad_cost": 2}),
    # ---- sparse CSR x dense: one MAC per stored element per dense column ----------------------------
    # sampled_addmm: mat1 @ mat2 at self's stored positions (k MACs each), then beta*self + alpha*(.)
    ("sparse_sampled_addmm", "sparse_matmul", {"sparse": 0, "dense": 1, "cost": 3}),
    ("_sparse_mm_reduce_impl", "sparse_matmul", {"sparse": 0, "dense": 1}),
    # backward: grad_self (sampled grad_out @ weight^T) and grad_weight (self^T @ grad_out) as requested
    ("_sparse_mm_reduce_impl_backward", "sparse_matmul", {"sparse": 0, "dense": 1, "output_mask": 5}),
    # ---- found undeclared by listing every non-composite aten overload (tests/formulas/test_op_coverage.py) ----
    # Queries, checks and metadata: no arithmetic, nothing written.
    ("_assert_scalar _functional_assert_scalar _functional_sym_constrain_range "
     "_functional_sym_constrain_range_for_size _print _dimI _dimV dense_dim sparse_dim _nnz is_coalesced "
     "is_pinned is_set_to _has_same_storage_numel _use_miopen_ctc_loss _nested_tensor_storage_offsets "
     "_validate_compressed_sparse_indices q_per_channel_axis q_scale q_zero_point qscheme", "zero", {}),
    # Views and aliases (forward-mode dual parts, sparse parts, a lazy copy-on-write clone), storage
    # resizes, and tensors that are allocated but not written, as empty: no FLOPs, no bytes.
    ("_fw_primal _make_dual _indices _values indices crow_indices col_indices ccol_indices row_indices "
     "_coalesced _sparse_broadcast_to slice_inverse unsafe_split_with_sizes lift _lazy_clone "
     "resize resize_as _resize_output resize_as_sparse sparse_resize sparse_resize_and_clear set "
     "shallow_copy_data_ "  # torch 2.14: self takes source's storage, as set_ does
     "_empty_affine_quantized _empty_per_channel_affine_quantized empty_quantized "
     "_sparse_coo_tensor_with_dims _sparse_coo_tensor_with_dims_and_tensors sparse_coo_tensor.size",
     "zero", {}),
    # Copies: the *_copy forms of views (functionalization), layout conversions, repacking, padding
    # between jagged and dense, index generation, and random sampling (as normal/uniform above).
    ("_conj_copy _neg_view_copy _fw_primal_copy _make_dual_copy _indices_copy _values_copy values_copy "
     "indices_copy ccol_indices_copy col_indices_copy crow_indices_copy row_indices_copy "
     "_nested_get_values_copy _nested_view_from_jagged_copy _reshape_alias_copy _sparse_broadcast_to_copy "
     "view_as_complex_copy view_as_real_copy _copy_from _copy_from_and_resize _stack _mkldnn_reshape "
     "_mkldnn_transpose to_mkldnn mkldnn_reorder_conv2d_weight mkldnn_reorder_conv3d_weight "
     "_convert_weight_to_int4pack _convert_weight_to_int4pack_for_cpu _dyn_quant_pack_4bit_weight "
     "_pack_padded_sequence _jagged_to_padded_dense_forward _padded_dense_to_jagged_forward "
     "_convert_indices_from_coo_to_csr _convert_indices_from_csr_to_coo copy_sparse_to_sparse "
     "_new_zeros_with_same_feature_meta zero unique_dim_consecutive range tril_indices triu_indices "
     "fft_fftfreq fft_rfftfreq from_file _spdiags int_repr q_per_channel_scales q_per_channel_zero_points "
     "binomial poisson geometric cauchy log_normal normal_functional _standard_gamma _sample_dirichlet "
     "_philox_normal _philox_uniform _philox_key_split _philox_key_fold_in _fill_mem_eff_dropout_mask",
     "move", {}),
    # Bit shifts and integer number theory: one operation per element (gcd's Euclid loop counted once,
    # as the special functions' series); lcm = |a / gcd(a, b) * b|: gcd, divide, multiply.
    # (conj_physical's default overload is composite: counted by its parts; its out= and in-place
    # kernels are not)
    ("__lshift__ __rshift__ __ilshift__ __irshift__ bitwise_left_shift bitwise_right_shift gcd "
     "conj_physical.out conj_physical_", "elementwise", {"cost": 1}),
    ("lcm", "elementwise", {"cost": 3}),
    ("_add_relu", "elementwise", {"cost": 2}),  # add, relu (as clamp_min)
    ("log_softmax.int_out softmax.int_out", "elementwise", {"cost": SOFTMAX}),  # out= kernels of the composites
    ("rrelu_with_noise_functional", "elementwise", {"cost": 3}),  # as rrelu_with_noise
    # Reparameterized-sampling gradients: one series evaluation per element, as the special functions.
    ("_standard_gamma_grad _dirichlet_grad", "elementwise", {"cost": 1}),
    # Fake quantization per element: x / s + z, round, clamp (2), then (q - z) * s: 7.
    ("fake_quantize_per_tensor_affine_cachemask fake_quantize_per_channel_affine_cachemask "
     "_fake_quantize_per_tensor_affine_cachemask_tensor_qparams _fake_quantize_learnable_per_tensor_affine "
     "_fake_quantize_learnable_per_channel_affine", "elementwise", {"cost": 7}),
    # glu_jvp(glu, x, dx, dim): dglu = da * s + glu * (1 - s) * db with s = sigmoid(b) recomputed:
    # sigmoid 4, da * s 1, (1 - s), * glu, * db 3, add 1 = 9 per output element.
    ("glu_jvp", "elementwise", {"cost": SIGMOID + 5}),
    # cudnn_affine_grid_generator(theta [N, 2, 3], N, C, H, W) -> grid [N, H, W, 2]: each coordinate
    # the dot of a theta row with (x, y, 1): 3 multiplies and 3 adds (the composite affine_grid's
    # bmm: 3 MACs per coordinate). Backward: grad [N, H, W, 2] folded into theta, 3 MACs per element.
    ("cudnn_affine_grid_generator affine_grid_generator", "elementwise", {"cost": 6}),
    ("cudnn_affine_grid_generator_backward", "reduce", {"cost": 6, "input": 0}),
    # Lanczos-3 antialiased resize: 6 taps per axis, separable as the bicubic (4 taps: 35) is priced
    # per output element: 6 x 6 weights multiplied and summed (36 + 35) = 71.
    ("_upsample_lanczos2d_aa.default _upsample_lanczos2d_aa.out", "elementwise", {"cost": 71}),  # .vec: composite
    ("_upsample_lanczos2d_aa_backward", "reduce", {"cost": 71, "input": 0}),
    # Window functions per output element (n the index, M = N - 1): hann and hamming a - b cos(2 pi n / M):
    # scale, cos, multiply, subtract = 4; bartlett 1 - |2n / M - 1|: 4; blackman two cosine terms
    # (scale, cos, multiply each) and two adds = 8; kaiser I0(beta sqrt(1 - (2n / M - 1)^2)) / I0(beta):
    # scale, subtract, square, subtract, sqrt, multiply, i0, divide = 8.
    ("hann_window hamming_window bartlett_window", "elementwise", {"cost": 4}),
    ("blackman_window kaiser_window", "elementwise", {"cost": 8}),
    # Reductions and scans, as their public forms above.
    ("_aminmax _cummax_helper _cummin_helper _logcumsumexp _is_all_true _is_any_true", "reduce",
     {"cost": 1, "input": 0}),
    ("linalg__powsum", "reduce", {"cost": 2, "input": 0}),  # |x|^p and the sum (no root), as _foreach_powsum
    # Pooling kernels' out= forms and backward kernels, as their functional rows above.
    ("adaptive_avg_pool1d.out adaptive_avg_pool2d.out adaptive_avg_pool3d.out", "reduce",
     {"cost": 1, "input": 0, "cost_out": 1}),
    ("adaptive_avg_pool3d_backward.grad_input mkldnn_adaptive_avg_pool2d_backward", "reduce",
     {"cost": 1, "input": 1}),
    ("max_pool2d_backward mkldnn_max_pool2d_backward mkldnn_max_pool3d_backward", "reduce",
     {"cost": 1, "input": 0}),
    ("avg_pool1d.out", "pool", {"kernel": 1, "rank": 1}),
    # Better Transformer's input projection epilogue: the bias added to every element of qkv
    # [B, T, 3D], and q (output 0, [B, H, T, D/H]) scaled by 1/sqrt(D/H).
    ("_transform_bias_rescale_qkv", "reduce", {"cost": 1, "input": 0, "cost_out": 1, "out_index": 0}),
    # Batch norm with the running statistics, never updating them (eval): scale and shift.
    ("_batch_norm_no_update", "norm", {"input": 0, "weight": 1, "bias": 2, "cost": 2}),
    # The backend-extension convolution, with convolution's schema.
    ("convolution_overrideable", "conv", {"input": 0, "weight": 1, "bias": 2, "transposed": 6}),
    ("convolution_backward_overrideable", "conv_backward",
     {"grad_out": 0, "input": 1, "weight": 2, "transposed": 6, "output_mask": 9}),
    # Solves and eigenvalues behind cholesky_solve and linalg.eigvals' composite.
    ("_cholesky_solve_helper", "linalg", {"matrix": 1, "kind": LA_FACTORED_SOLVE}),
    ("_linalg_eigvals", "linalg", {"matrix": 0, "kind": LA_EIGVALS}),
    # ---- communication (torch.distributed): no FLOPs; payload, bus bytes and group size per call --
    # c10d ops (dist.all_reduce, DDP, FSDP2): the group is a ProcessGroup; in-place buffers are
    # both sent and received.
    ("c10d::allreduce_ c10d::allreduce_coalesced_", "comm",
     {"kind": COMM_ALL_REDUCE, "send": 0, "recv": 0, "group": 1}),
    ("c10d::allgather_ c10d::_allgather_base_ c10d::allgather_coalesced_ c10d::allgather_into_tensor_coalesced_",
     "comm", {"kind": COMM_ALL_GATHER, "send": 1, "recv": 0, "group": 2}),
    ("c10d::reduce_scatter_ c10d::_reduce_scatter_base_ c10d::reduce_scatter_tensor_coalesced_", "comm",
     {"kind": COMM_REDUCE_SCATTER, "send": 1, "recv": 0, "group": 2}),
    ("c10d::alltoall_ c10d::alltoall_base_", "comm", {"kind": COMM_ALL_TO_ALL, "send": 1, "recv": 0, "group": 2}),
    ("c10d::broadcast_", "comm", {"kind": COMM_BROADCAST, "send": 0, "recv": 0, "group": 1, "root": 2}),
    ("c10d::reduce_", "comm", {"kind": COMM_REDUCE, "send": 0, "recv": 0, "group": 1, "root": 3}),
    ("c10d::gather_", "comm", {"kind": COMM_GATHER, "send": 1, "recv": 0, "group": 2, "root": 3}),
    ("c10d::scatter_", "comm", {"kind": COMM_SCATTER, "send": 1, "recv": 0, "group": 2, "root": 3}),
    ("c10d::send", "comm", {"kind": COMM_SEND, "send": 0, "group": 1}),
    ("c10d::recv_ c10d::recv_any_source_", "comm", {"kind": COMM_RECV, "recv": 0, "group": 1}),
    ("c10d::barrier c10d::monitored_barrier_", "comm", {"kind": COMM_BARRIER, "group": 1}),
    # reads the tensor to test it for NaN before a collective (TORCH_NCCL_NAN_CHECK): a check, no arithmetic
    ("c10d::check_for_nan", "move", {}),
    # Functional collectives (DTensor, torch.compile'd code): the group is its name; the output is
    # received; wait_tensor is the wait of the async collective (its time shows with timing).
    ("_c10d_functional::all_reduce _c10d_functional::all_reduce_coalesced", "comm",
     {"kind": COMM_ALL_REDUCE, "send": 0, "group": 2}),
    ("_c10d_functional::all_reduce_ _c10d_functional::all_reduce_coalesced_", "comm",
     {"kind": COMM_ALL_REDUCE, "send": 0, "recv": 0, "group": 2}),
    ("_c10d_functional::all_gather_into_tensor _c10d_functional::all_gather_into_tensor_coalesced "
     "_c10d_functional_autograd::all_gather_into_tensor", "comm", {"kind": COMM_ALL_GATHER, "send": 0, "group": 2}),
    ("_c10d_functional::all_gather_into_tensor_out", "comm",
     {"kind": COMM_ALL_GATHER, "send": 0, "recv": 3, "group": 2}),
    ("_c10d_functional::reduce_scatter_tensor _c10d_functional::reduce_scatter_tensor_coalesced "
     "_c10d_functional_autograd::reduce_scatter_tensor", "comm", {"kind": COMM_REDUCE_SCATTER, "send": 0, "group": 3}),
    ("_c10d_functional::reduce_scatter_tensor_out", "comm",
     {"kind": COMM_REDUCE_SCATTER, "send": 0, "recv": 4, "group": 3}),
    ("_c10d_functional::all_to_all_single _c10d_functional_autograd::all_to_all_single _dtensor::shard_dim_alltoall",
     "comm", {"kind": COMM_ALL_TO_ALL, "send": 0, "group": 3}),
    ("_c10d_functional::broadcast", "comm", {"kind": COMM_BROADCAST, "send": 0, "group": 2, "root": 1}),
    ("_c10d_functional::broadcast_", "comm", {"kind": COMM_BROADCAST, "send": 0, "recv": 0, "group": 2, "root": 1}),
    ("_c10d_functional::isend", "comm", {"kind": COMM_SEND, "send": 0, "group": 3}),
    ("_c10d_functional::irecv", "comm", {"kind": COMM_RECV, "recv": 0, "group": 3}),
    # a batch of sends and receives: each tensor once, as point-to-point
    ("_c10d_functional::batch_p2p_ops c10d_functional::batch_p2p_ops", "comm",
     {"kind": COMM_SEND, "send": 3, "group": 4}),
    ("_c10d_functional::wait_tensor c10d_functional::wait_tensor", "comm", {"kind": COMM_WAIT}),
    # the legacy functional collectives (tag, ranks, group_size): the group is its size
    ("c10d_functional::all_reduce c10d_functional::all_reduce_coalesced", "comm",
     {"kind": COMM_ALL_REDUCE, "send": 0, "group": 4}),
    ("c10d_functional::all_gather_into_tensor c10d_functional::all_gather_into_tensor_coalesced", "comm",
     {"kind": COMM_ALL_GATHER, "send": 0, "group": 3}),
    ("c10d_functional::reduce_scatter_tensor c10d_functional::reduce_scatter_tensor_coalesced", "comm",
     {"kind": COMM_REDUCE_SCATTER, "send": 0, "group": 4}),
    ("c10d_functional::all_to_all_single", "comm", {"kind": COMM_ALL_TO_ALL, "send": 0, "group": 5}),
    ("c10d_functional::broadcast", "comm", {"kind": COMM_BROADCAST, "send": 0, "group": 4}),
    ("c10d_functional::isend", "comm", {"kind": COMM_SEND, "send": 0, "group": 3}),
    ("c10d_functional::irecv", "comm", {"kind": COMM_RECV, "recv": 0, "group": 3}),
    # wraps a functional collective's output for autograd; a device mesh's group lookup: no data
    ("_c10d_functional::_wrap_tensor_autograd _dtensor::mesh_get_process_group", "zero", {}),
    # FSDP2's local copies around its collectives: copy-in of the rank's shards into the all-gather
    # buffer, copy-out of the gathered buffer into the parameters, gradients chunked and
    # concatenated into the reduce-scatter buffer, and a plain copy.
    ("fsdp::all_gather_copy_in", "comm", {"kind": COMM_COPY, "send": 0}),  # writes what it reads
    ("fsdp::split_with_sizes_copy fsdp::chunk_cat", "comm", {"kind": COMM_COPY, "send": 0, "recv": 3}),
    ("fsdp::copy_", "comm", {"kind": COMM_COPY, "send": 1, "recv": 0}),
]


def _params_tuple(family, params):
    names = FAMILY_PARAMS[family]
    unknown = set(params) - set(names) - {"overwrites"}
    if unknown:
        raise ValueError(f"{family}: unknown parameters {sorted(unknown)}")
    return tuple(params.get(n, -1 if n in _POSITION_PARAMS else 0) for n in names)


def build_table():
    """{aten name or name.overload: (family, params tuple, overwritten arg)} from OPS.

    A later line overrides an earlier one for the same key (used for overload-specific rows).
    """
    table = {}
    for names, family, params in OPS:
        entry = (family, _params_tuple(family, params), params.get("overwrites", -1))
        for name in names.split():
            table[name] = entry
    return table


TABLE = build_table()


def missing_from_torch(table=None):
    """The aten keys of `table` (default TABLE) that the running torch does not define, sorted.

    A release removes ops (torch 2.14 dropped aten::cholesky) and the table also names ops that
    only newer releases have (aten::linalg_polar). Such a row is kept and matches nothing: ops are
    looked up by the name of the op that runs, never resolved from the table, so a missing op
    cannot break counting. This is the record of which rows are idle under this torch (tests and
    tools that build calls from the table skip these). Keys in other namespaces (c10d, fsdp, ...)
    are not checked: their libraries load on demand.
    """
    import torch  # only here: the table itself is plain data

    missing = []
    for key in sorted(TABLE if table is None else table):
        if "::" in key:
            continue
        base, _, overload = key.partition(".")
        packet = getattr(torch.ops.aten, base, None)
        if packet is None or (overload and overload not in packet.overloads()):
            missing.append(key)
    return missing

