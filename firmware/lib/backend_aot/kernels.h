/* nano-tflm AOT kernels: the API that generated model_aot.c calls.
 *
 * Every kernel is int8 in / int8 out, bit-exact with TFLite Micro's reference kernels
 * (tensorflow/lite/kernels/internal/reference/integer_ops/). All requantization constants
 * (per-channel multipliers and shifts, folded biases, lookup tables) are computed offline by the
 * generator (trainer/aot/), so kernels do no floating point and no allocation.
 *
 * Variants. nt_fully_connected, nt_conv2d and nt_depthwise_conv2d dispatch at compile time:
 * the *_dsp variant (<op>_dsp.c, ACLE SIMD) when __ARM_FEATURE_DSP is defined and
 * NANO_TFLM_FORCE_C99 is not, else the portable *_c99 variant (<op>_c99.c). Both variants
 * read the same parameter structs and the same weight layout, so one generated model_aot.c works
 * with either; both must produce identical outputs.
 *
 * Conventions (shared by every variant):
 * - Tensors are NHWC, batch 1 unless a struct says otherwise, row-major, int8.
 * - Weights are stored once, as int8, symmetric (zero point 0), in TFLite's own layout:
 *     fully connected: [out_features][in_features]
 *     conv2d:          [out_c][k_h][k_w][in_c]         (OHWI)
 *     depthwise:       [k_h][k_w][out_c]               (1HWO), out_c = in_c * depth_multiplier
 *   weight_layout selects an alternative offline layout (nt_weight_layout below; the generator
 *   emits NT_LAYOUT_FC_STACKED for fully connected layers of even depth); a kernel that gets a
 *   layout it cannot read returns NT_ERR_LAYOUT.
 * - Biases are FOLDED: bias_folded[o] = bias[o] - in_zp * sum_k w[o][k] (int32, over all taps
 *   of output channel o; bias = 0 when the model has none). TFLM accumulates
 *   sum_k (x[k] - in_zp) * w[o][k] + bias[o] over valid (non-padding) taps only. With the folded
 *   bias that is bias_folded[o] + sum_k x'[k] * w[o][k], where x'[k] = x[k] on valid taps and
 *   x'[k] = in_zp on padding taps (i.e. pad the input with in_zp, as CMSIS-NN does). A kernel may
 *   use either form; integer sums are exact, so the results are identical.
 * - Requantization: out = clamp(nt_mul_q(acc, multiplier[c], shift[c]) + out_zp, act_min,
 *   act_max). shift > 0 is a left shift (TFLM convention). multiplier/shift hold one entry per
 *   output channel when per_channel != 0, else one entry for the whole tensor.
 * - Scratch: the generator reserves, in the arena, the scratch bytes each kernel may use
 *   (NT_*_SCRATCH_BYTES below), 4-byte aligned and live only during that call. These macros are
 *   the one definition: trainer/aot/verify.py reads and evaluates them when it plans the arena
 *   (keep each one line of +, * and casts over its arguments). The c99 variants do not use
 *   it; the dsp variants may (e.g. int16 im2col columns, input widened to int16).
 *
 * Return value of every kernel: 0 (NT_OK) or a negative NT_ERR_* code.
 */
#ifndef NANO_TFLM_KERNELS_H
#define NANO_TFLM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    NT_OK = 0,
    NT_ERR_LAYOUT = -1, /* weight_layout not supported by this variant */
    NT_ERR_PARAM = -2,  /* parameters out of range (should have been refused at export) */
};

/* Offline weight layouts. A new layout is added here first, then to the generator, then to BOTH
 * variants (the c99 variant must read every layout so the same generated file builds for any
 * target). */
typedef enum {
    NT_LAYOUT_TFLITE = 0,
    /* Fully connected only, in_features even: rows in pairs, each byte pair one input of both
     * rows, so that a word read as two int16 lanes is (256 w[2j+1][k] + w[2j][k] + 128) for two
     * inputs k: the DSP loop multiplies it unpacked (one SMLAD gives row 2j + 256 x row 2j + 1
     * + 128 x the inputs' sum) and unpacks only row 2j + 1's bytes (fully_connected_dsp.c).
     * Pair j (rows 2j, 2j + 1) starts at 2j * in_features; per block of 8 inputs k0..k7, 16
     * bytes: words (k0, k2), (k1, k3), (k4, k6), (k5, k7) (the lane order of widened
     * activations), each [w[2j][ka] ^ 0x80, w[2j+1][ka], w[2j][kb] ^ 0x80, w[2j+1][kb]]; then
     * the in_features % 8 remaining inputs of row 2j, then of row 2j + 1, as is. An odd last
     * row is stored as in NT_LAYOUT_TFLITE. Same size; row 2j's block bytes have their top
     * bit flipped (nt_fc_weight_flip). (Value 1 was NT_LAYOUT_FC_PAIRS8, the same order
     * without the stacking, now retired: code generated for it no longer compiles.) */
    NT_LAYOUT_FC_STACKED = 2,
} nt_weight_layout;

/* Byte index of weight (row o, input k) of a fully connected layer in `layout`. */
static inline size_t nt_fc_weight_index(int32_t layout, int32_t depth, int32_t rows, int32_t o,
                                        int32_t k) {
    if (layout != NT_LAYOUT_FC_STACKED || ((rows & 1) && o == rows - 1)) {
        return (size_t)o * (size_t)depth + (size_t)k;
    }
    const size_t base = (size_t)(o & ~1) * (size_t)depth;
    const int32_t body = depth & ~7;
    if (k < body) {
        /* input i of the block: word 2 (i / 4) + i % 2, half (i / 2) % 2, byte o % 2 */
        const int32_t i = k & 7;
        const int32_t word = ((i >> 2) << 1) + (i & 1);
        return base + 2u * (size_t)(k & ~7) + (size_t)(4 * word + 2 * ((i >> 1) & 1) + (o & 1));
    }
    return base + 2u * (size_t)body + (size_t)(o & 1) * (size_t)(depth - body) + (size_t)(k - body);
}

/* XOR mask of the stored byte of weight (row o, input k) in `layout`: 0x80 for the even row of
 * a stacked pair inside the 8-input blocks, else 0 (stored = (uint8_t)w ^ mask, and back). */
static inline uint8_t nt_fc_weight_flip(int32_t layout, int32_t depth, int32_t rows, int32_t o,
                                        int32_t k) {
    const int plain = layout != NT_LAYOUT_FC_STACKED || ((rows & 1) && o == rows - 1);
    return (uint8_t)(!plain && (o & 1) == 0 && k < (depth & ~7) ? 0x80u : 0u);
}

/* ---- fixed-point helpers (TFLM reference semantics) --------------------------------------- */

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31) with TFLM's nudge (division
 * truncates toward zero after adding +-2^30), saturating INT32_MIN * INT32_MIN. */
static inline int32_t nt_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: arithmetic shift right by exponent, rounding half away from
 * zero. exponent in [0, 31]. */
static inline int32_t nt_rdbpot(int32_t x, int32_t exponent) {
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLM MultiplyByQuantizedMultiplier (int32 path): x * multiplier * 2^shift / 2^31, with
 * TFLM's default double rounding (high-mul rounding, then rounding right shift). Define
 * NT_SINGLE_ROUNDING to get the TFLITE_SINGLE_ROUNDING variant (one int64 rounding). The left
 * shift wraps like TFLM's int32 multiply (done in uint32 to avoid C undefined behaviour). */
static inline int32_t nt_mul_q(int32_t x, int32_t multiplier, int32_t shift) {
#ifdef NT_SINGLE_ROUNDING
    const int32_t total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)x * multiplier + round) >> total_shift);
#else
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t xs = (int32_t)((uint32_t)x << left);
    return nt_rdbpot(nt_srdhm(xs, multiplier), right);
#endif
}

static inline int32_t nt_clamp(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---- fully connected ----------------------------------------------------------------------- */

typedef struct {
    int32_t batches;      /* rows of the input: product of all input dims / in_features */
    int32_t in_features;  /* accumulation depth */
    int32_t out_features; /* output channels */
    int32_t in_zp;        /* input zero point (already folded into bias_folded) */
    int32_t out_zp;
    int32_t act_min, act_max;   /* fused activation clamp, int8 domain */
    int32_t per_channel;        /* 1: multiplier/shift have out_features entries, 0: one entry */
    int32_t weight_layout;      /* nt_weight_layout: NT_LAYOUT_TFLITE or NT_LAYOUT_FC_STACKED */
    const int8_t* weights;      /* [out_features][in_features] (nt_fc_weight_index) */
    const int32_t* bias_folded; /* [out_features] */
    const int32_t* multiplier;
    const int32_t* shift;
    void* scratch; /* NT_FC_SCRATCH_BYTES(p), dsp only */
} nt_fc_params;

/* dsp variant may widen the input row to int16 once. */
#define NT_FC_SCRATCH_BYTES(in_features) ((size_t)(in_features) * 2u)

int nt_fully_connected_c99(const nt_fc_params* p, const int8_t* in, int8_t* out);

/* ---- conv2d / depthwise conv2d ------------------------------------------------------------- */

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_top, pad_left; /* TFLM padding (SAME: computed by the generator like TFLM) */
    int32_t depth_multiplier;  /* depthwise only: out_c = in_c * depth_multiplier */
    int32_t in_zp;
    int32_t out_zp;
    int32_t act_min, act_max;
    int32_t per_channel;
    int32_t weight_layout;
    const int8_t* weights;      /* conv: OHWI, depthwise: [k_h][k_w][out_c] */
    const int32_t* bias_folded; /* [out_c] */
    const int32_t* multiplier;
    const int32_t* shift;
    void* scratch; /* NT_CONV_*_SCRATCH_BYTES, dsp only; NULL:
                    * the kernel runs without (the dsp variant falls back to c99) */
    /* Fused MAX_POOL_2D (0 = none): out is then (out_h / pool_h) x (out_w / pool_w) x out_c,
     * each value the max over a pool_h x pool_w window of the conv outputs defined above
     * (VALID pooling, stride = window; act_min/act_max are the conv's and the pool's clamps
     * combined). The full-resolution conv output never exists. */
    int32_t pool_h, pool_w;
} nt_conv_params;

/* dsp conv may build two int16 im2col columns (CMSIS-NN style), padded with in_zp. */
#define NT_CONV_SCRATCH_BYTES(k_h, k_w, in_c) ((size_t)(k_h) * (k_w) * (in_c) * 2u * 2u)
/* plus, with a fused pool, the running max of two pooled pixels' accumulators (int32). */
#define NT_CONV_POOL_SCRATCH_BYTES(out_c) ((size_t)(out_c) * 2u * 4u)
/* plus, for a 1-channel input with 5-tap rows, the weights widened to int16 pairs (after the
 * columns and the pooled maxima). */
#define NT_CONV_C1_SCRATCH_BYTES(out_c, k_h) ((size_t)(out_c) * (k_h) * 3u * 4u)
/* dsp depthwise needs none: its tap pointer tables and zero-point row are on the stack. */
#define NT_DW_SCRATCH_BYTES() ((size_t)0)

int nt_conv2d_c99(const nt_conv_params* p, const int8_t* in, int8_t* out);
int nt_depthwise_conv2d_c99(const nt_conv_params* p, const int8_t* in, int8_t* out);

/* ---- pooling ------------------------------------------------------------------------------- */

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t filter_h, filter_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
    int32_t act_min, act_max; /* input and output share scale and zero point (TFLM requires it) */
} nt_pool_params;

/* Average: sum over valid taps, divided by the count of valid taps, rounding half away from
 * zero (TFLM reference AveragePool int8). */
int nt_avg_pool(const nt_pool_params* p, const int8_t* in, int8_t* out);
/* Max pool has a DSP variant too (SSUB8/SEL, four channels per instruction; added by the
 * Cortex-M4 kernels work because the c99 pool was ~1/6 of cnn's instructions): the generated
 * code calls nt_max_pool, dispatched below like the other three. */
int nt_max_pool_c99(const nt_pool_params* p, const int8_t* in, int8_t* out);

/* ---- mean over axes ------------------------------------------------------------------------ */

/* Mean over the middle of an [outer][reduce][inner] view (e.g. NHWC over H,W: outer = N,
 * reduce = H*W, inner = C). TFLM's int8 MEAN output is a function of the int32 sum of the raw
 * int8 inputs only (its reference computes it through float or integer division depending on
 * the quantization), and a non-decreasing one. The generator reads that function off the TFLM
 * reference and stores it as thresholds: out = out_base + (number of thresholds <= sum). No
 * floating point on the device, and exact for every possible sum. */
typedef struct {
    int32_t outer, reduce, inner;
    int32_t out_base;
    int32_t n_thresholds;
    const int32_t* thresholds; /* ascending */
} nt_mean_params;

int nt_mean(const nt_mean_params* p, const int8_t* in, int8_t* out);

/* ---- elementwise add ----------------------------------------------------------------------- */

/* TFLM int8 add (add.cc / reference_integer_ops::AddElementwise): both inputs are shifted left
 * by left_shift (20), rescaled to a common scale, added, and rescaled to the output.
 * Broadcast: in2_stride 0 means in2 is a scalar; otherwise both have `count` elements. */
typedef struct {
    int32_t count;
    int32_t in1_offset, in2_offset, out_offset; /* offsets = -zero point, out_offset = +out_zp */
    int32_t left_shift;
    int32_t in1_multiplier, in1_shift;
    int32_t in2_multiplier, in2_shift;
    int32_t out_multiplier, out_shift;
    int32_t act_min, act_max;
    int32_t in2_stride; /* 1, or 0 for a scalar second input */
} nt_add_params;

int nt_add(const nt_add_params* p, const int8_t* in1, const int8_t* in2, int8_t* out);

/* TFLM int8 MUL (reference_integer_ops::MulElementwise): the product of the offset inputs,
 * requantized with one multiplier (in1_scale * in2_scale / out_scale). in2_stride as nt_add. */
typedef struct {
    int32_t count;
    int32_t in1_offset, in2_offset, out_offset;
    int32_t out_multiplier, out_shift;
    int32_t act_min, act_max;
    int32_t in2_stride;
} nt_mul_params;

int nt_mul(const nt_mul_params* p, const int8_t* in1, const int8_t* in2, int8_t* out);

/* ---- softmax ------------------------------------------------------------------------------- */

/* TFLM int8 softmax (reference_ops::Softmax, fixed point, gemmlowp exp on negative values):
 * input_multiplier / input_left_shift / diff_min come from TFLM's PreprocessSoftmaxScaling
 * (computed by the generator). Output int8 has scale 1/256, zero point -128. */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier;
    int32_t input_left_shift;
    int32_t diff_min;
} nt_softmax_params;

int nt_softmax(const nt_softmax_params* p, const int8_t* in, int8_t* out);

/* ---- elementwise by table ------------------------------------------------------------------ */

/* out[i] = table[(uint8_t)in[i]]: any int8 -> int8 elementwise op whose output depends only on
 * the input value (LOGISTIC, TANH, ELU, EXP, RELU, LEAKY_RELU, HARD_SWISH, QUANTIZE int8->int8,
 * ...). The generator fills the 256-entry table with exactly TFLM's output for each input. */
int nt_lut(const int8_t table[256], const int8_t* in, int8_t* out, int32_t count);

/* ---- data movement ------------------------------------------------------------------------- */

#define NT_MAX_DIMS 6

/* Strided gather: out (dense, shape out_shape[0..dims-1]) [i0..i5] =
 * in[offset + sum_d i_d * in_stride[d]] (strides in elements, may be any int32).
 * Covers TRANSPOSE, STRIDED_SLICE, SLICE, SPLIT (one call per output), and copies. */
typedef struct {
    int32_t dims;
    int32_t out_shape[NT_MAX_DIMS];
    int32_t in_stride[NT_MAX_DIMS];
    int32_t offset;
} nt_gather_params;

int nt_gather(const nt_gather_params* p, const int8_t* in, int8_t* out);

/* CONCATENATION of inputs with identical quantization (TFLM copies bytes): for each of `outer`
 * blocks, copy copy_bytes[i] bytes from each input i in turn. */
int nt_concat(const int8_t* const* ins, const int32_t* copy_bytes, int32_t n_inputs, int32_t outer,
              int8_t* out);

/* ---- PAD, broadcasting ADD / MUL (pad.c, binary_broadcast.c; one portable variant) ------ */

/* PAD / PADV2: out (out_shape) is filled with `value`, and in (in_shape) is copied to the
 * position pad_before in each dimension. value is the output zero point (PAD) or the int8
 * constant (PADV2), as TFLM's int8 PAD. */
typedef struct {
    int32_t dims;
    int32_t in_shape[NT_MAX_DIMS];
    int32_t pad_before[NT_MAX_DIMS];
    int32_t out_shape[NT_MAX_DIMS];
    int32_t value;
} nt_pad_params;

int nt_pad(const nt_pad_params* p, const int8_t* in, int8_t* out);

/* Broadcast read pattern of one input: element i of the flat output reads input element
 * (i / div) % mod (same shape: 1, count; scalar: 1, 1; a trailing per-channel vector: 1, C;
 * one value per pixel of an NHWC map: C, H*W). The generator derives it from the shapes and
 * refuses broadcasts that do not have this form. */
typedef struct {
    int32_t div, mod;
} nt_bcast_index;

/* nt_add / nt_mul with both inputs read through their broadcast patterns (in2_stride unused). */
int nt_add_broadcast(const nt_add_params* p, const nt_bcast_index* ix1, const nt_bcast_index* ix2,
                     const int8_t* in1, const int8_t* in2, int8_t* out);
int nt_mul_broadcast(const nt_mul_params* p, const nt_bcast_index* ix1, const nt_bcast_index* ix2,
                     const int8_t* in1, const int8_t* in2, int8_t* out);

/* ---- variant dispatch ---------------------------------------------------------------------- */

/* nt_conv2d_fast / nt_fully_connected_fast: the same kernels without run-time dispatch, for
 * layers the generator checked at export against the DSP fast path's preconditions (conv: its
 * scratch, 4..256 taps, tap offsets below 2^16, at most 128 channels, per-channel multipliers 0
 * or in [2^30, 2^31), and with a fused pool every shift <= 0; fully connected: its scratch).
 * An image then links only the paths its model uses. The dsp versions trust that check (they
 * refuse, NT_ERR_PARAM, only what would overrun their buffers: no scratch, more than 256 taps or
 * 128 channels); nt_conv2d_fast_ok_dsp is the check. In c99 builds they are the c99 kernels. */

#if defined(__ARM_FEATURE_DSP) && !defined(NANO_TFLM_FORCE_C99)
#define NANO_TFLM_KERNELS_VARIANT "dsp"
int nt_fully_connected_dsp(const nt_fc_params* p, const int8_t* in, int8_t* out);
int nt_conv2d_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out);
int nt_depthwise_conv2d_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out);
static inline int nt_fully_connected(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    return nt_fully_connected_dsp(p, in, out);
}
static inline int nt_conv2d(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_conv2d_dsp(p, in, out);
}
static inline int nt_depthwise_conv2d(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_depthwise_conv2d_dsp(p, in, out);
}
int nt_max_pool_dsp(const nt_pool_params* p, const int8_t* in, int8_t* out);
static inline int nt_max_pool(const nt_pool_params* p, const int8_t* in, int8_t* out) {
    return nt_max_pool_dsp(p, in, out);
}
int nt_conv2d_fast_ok_dsp(const nt_conv_params* p);
int nt_conv2d_fast_dsp(const nt_conv_params* p, const int8_t* in, int8_t* out);
int nt_fully_connected_fast_dsp(const nt_fc_params* p, const int8_t* in, int8_t* out);
static inline int nt_conv2d_fast(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_conv2d_fast_dsp(p, in, out);
}
static inline int nt_fully_connected_fast(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    return nt_fully_connected_fast_dsp(p, in, out);
}
#else
#define NANO_TFLM_KERNELS_VARIANT "c99"
static inline int nt_fully_connected(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    return nt_fully_connected_c99(p, in, out);
}
static inline int nt_conv2d(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_conv2d_c99(p, in, out);
}
static inline int nt_depthwise_conv2d(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_depthwise_conv2d_c99(p, in, out);
}
static inline int nt_max_pool(const nt_pool_params* p, const int8_t* in, int8_t* out) {
    return nt_max_pool_c99(p, in, out);
}
static inline int nt_conv2d_fast(const nt_conv_params* p, const int8_t* in, int8_t* out) {
    return nt_conv2d_c99(p, in, out);
}
static inline int nt_fully_connected_fast(const nt_fc_params* p, const int8_t* in, int8_t* out) {
    return nt_fully_connected_c99(p, in, out);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_KERNELS_H */
