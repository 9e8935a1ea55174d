// Generated from flopdispatch/_ops.py by csrc/gen_params.py (setup.py runs it): do not edit.
// Each family's parameters, named in the order _ops.FAMILY_PARAMS lists them and the core
// receives them: p[param::matmul::bias] is a matmul row's "bias". Their meaning: _ops.py.
#pragma once

namespace fd {

enum Family : int {
    F_ZERO = 0,
    F_MOVE = 1,
    F_UNSUPPORTED = 2,
    F_MATMUL = 3,
    F_CONV = 4,
    F_CONV_BACKWARD = 5,
    F_ATTENTION = 6,
    F_ELEMENTWISE = 7,
    F_REDUCE = 8,
    F_NORM = 9,
    F_NORM_BACKWARD = 10,
    F_POOL = 11,
    F_FOREACH = 12,
    F_MHA = 13,
    F_ENCODER_LAYER = 14,
    F_RNN = 15,
    F_FFT = 16,
    F_LINALG = 17,
    F_TRILINEAR = 18,
    F_DISTANCE = 19,
    F_EMBEDDING_BAG = 20,
    F_GRID_SAMPLER = 21,
    F_LINEAR_CROSS_ENTROPY = 22,
    F_SPARSE_MATMUL = 23,
    F_COMM = 24,
    F_CTC = 25,
    F_COUNT = 26
};

inline const char* family_name(int f) {
    static const char* names[] = {"zero", "move", "unsupported", "matmul", "conv", "conv_backward", "attention", "elementwise", "reduce", "norm", "norm_backward", "pool", "foreach", "mha", "encoder_layer", "rnn", "fft", "linalg", "trilinear", "distance", "embedding_bag", "grid_sampler", "linear_cross_entropy", "sparse_matmul", "comm", "ctc"};
    return (f >= 0 && f < F_COUNT) ? names[f] : "?";
}

constexpr int kMaxParams = 8;

namespace param {
namespace matmul { enum : int { a = 0, b = 1, bias = 2, kind = 3 }; }
namespace conv { enum : int { input = 0, weight = 1, bias = 2, transposed = 3, always_transposed = 4, cost_out = 5 }; }
namespace conv_backward { enum : int { grad_out = 0, input = 1, weight = 2, transposed = 3, output_mask = 4 }; }
namespace attention { enum : int { q = 0, layout = 1, causal = 2, causal_kind = 3, mask = 4, backward = 5, varlen = 6 }; }
namespace elementwise { enum : int { cost = 0, times = 1 }; }
namespace reduce { enum : int { cost = 0, input = 1, cost_out = 2, only_if = 3, out_index = 4, diagonal = 5 }; }
namespace norm { enum : int { input = 0, weight = 1, bias = 2, cost = 3, training = 4, cost_eval = 5 }; }
namespace norm_backward { enum : int { grad = 0, output_mask = 1, cost_input = 2, cost_weight = 3, cost_bias = 4 }; }
namespace pool { enum : int { kernel = 0, rank = 1, counted = 2 }; }
namespace foreach { enum : int { tensors = 0, cost = 1 }; }
namespace encoder_layer { enum : int { gelu_cost = 0, relu_cost = 1, layer_norm_cost = 2 }; }
namespace rnn { enum : int { input = 0, w_ih = 1, w_hh = 2, products = 3, gate_cost = 4, weights = 5, gru_cost = 6, rnn_cost = 7 }; }
namespace fft { enum : int { signal = 0, dim = 1, half = 2 }; }
namespace linalg { enum : int { matrix = 0, kind = 1, other = 2, flag = 3, flag2 = 4 }; }
namespace trilinear { enum : int { i1 = 0, expand1 = 1 }; }
namespace distance { enum : int { x1 = 0, x2 = 1, p = 2, kind = 3 }; }
namespace embedding_bag { enum : int { rows = 0, indices = 1, mode = 2, per_sample_weights = 3, kind = 4 }; }
namespace grid_sampler { enum : int { counted = 0, grid = 1, mode = 2, output_mask = 3, linear_cost = 4, cubic_cost = 5, coord_cost = 6 }; }
namespace linear_cross_entropy { enum : int { input = 0, weight = 1, bias = 2, grads = 3, cost = 4, grad_cost = 5 }; }
namespace sparse_matmul { enum : int { sparse = 0, dense = 1, output_mask = 2, cost = 3 }; }
namespace comm { enum : int { kind = 0, send = 1, recv = 2, group = 3, root = 4 }; }
namespace ctc { enum : int { log_probs = 0, target_lengths = 1, cost = 2, grad_cost = 3 }; }
}  // namespace param

// The `kind` of a linalg row (the LA_* constants of _ops.py).
enum LinalgKind : int {
    LA_FACTOR_SYM = 0,
    LA_FACTOR_LU = 1,
    LA_TRI_SOLVE = 2,
    LA_FACTORED_SOLVE = 3,
    LA_SOLVE = 4,
    LA_INVERSE = 5,
    LA_INVERSE_FROM_CHOLESKY = 6,
    LA_QR = 7,
    LA_HOUSEHOLDER_PRODUCT = 8,
    LA_APPLY_Q = 9,
    LA_EIGH = 10,
    LA_EIG = 11,
    LA_EIGVALS = 12,
    LA_SVD = 13,
    LA_PINV = 14,
    LA_LSTSQ = 15,
    LA_MATRIX_EXP = 16,
    LA_POLAR = 17,
    LA_MATRIX_SQRTH = 18,
};

}  // namespace fd
