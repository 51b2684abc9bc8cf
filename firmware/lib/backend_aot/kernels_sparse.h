/* nano-tflm AOT kernels: block-sparse fully connected.
 *
 * A pruned model keeps every zero weight in its flatbuffer, and TFLM multiplies by all of them.
 * Skipping a zero weight does not change an integer sum, so a kernel that stores and visits only
 * the non-zero blocks of a layer's weights is bit-exact with TFLM running the same model densely
 * (same folded bias, same requantization as nt_fully_connected, kernels.h).
 *
 * Format NT_FC_BLOCK8X2 (the generator chooses it per layer, only when it is smaller than the
 * dense layout; trainer --prune-block 8x2 makes the zeros fall in these blocks):
 * - out_features and in_features even, in_features / 8 <= 256. Rows are taken in pairs
 *   (2j, 2j + 1); the first in_features / 8 * 8 inputs are cut into blocks of 8; block b of
 *   pair j is the 2 x 8 weights of rows 2j, 2j + 1 at inputs 8b .. 8b + 7. A block is stored
 *   only if one of its 16 weights is non-zero.
 * - weights: for each pair in order, its stored blocks in ascending b, each 16 bytes (row 2j's
 *   8 weights, then row 2j + 1's: the order the DSP loop loads them), then the pair's
 *   in_features % 8 remaining inputs, dense: row 2j's, then row 2j + 1's. Every pair starts on
 *   a word boundary (16 bytes per block, 2 x an even tail), the array on 16 bytes.
 * - block_index: for each stored block in the same order, its b (uint8).
 * - block_count: for each pair, how many blocks it stores (uint16).
 * Flash: 17 bytes per stored block + 2 x tail + 2 bytes per pair, against out x in dense.
 */
#ifndef NANO_TFLM_KERNELS_SPARSE_H
#define NANO_TFLM_KERNELS_SPARSE_H

#include "kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t batches;      /* rows of the input: product of all input dims / in_features */
    int32_t in_features;  /* even, in_features / 8 <= 256 */
    int32_t out_features; /* even */
    int32_t out_zp;
    int32_t act_min, act_max;    /* fused activation clamp, int8 domain */
    int32_t per_channel;         /* 1: multiplier/shift have out_features entries, 0: one */
    const int8_t* weights;       /* stored blocks and tails, NT_FC_BLOCK8X2 (above) */
    const uint8_t* block_index;  /* input block of each stored block */
    const uint16_t* block_count; /* stored blocks of each row pair, out_features / 2 entries */
    const int32_t* bias_folded;  /* [out_features], bias - in_zp * sum(w) as in kernels.h */
    const int32_t* multiplier;
    const int32_t* shift;
    void* scratch; /* NT_FC_SPARSE_SCRATCH_BYTES, dsp only (NULL: c99 path) */
} nt_fc_sparse_params;

/* dsp variant widens the input row to int16 once (SMLAD lane order), like nt_fully_connected. */
#define NT_FC_SPARSE_SCRATCH_BYTES(in_features) ((size_t)(in_features) * 2u)

int nt_fully_connected_sparse_c99(const nt_fc_sparse_params* p, const int8_t* in, int8_t* out);

#if defined(__ARM_FEATURE_DSP) && !defined(NANO_TFLM_FORCE_C99)
int nt_fully_connected_sparse_dsp(const nt_fc_sparse_params* p, const int8_t* in, int8_t* out);
static inline int nt_fully_connected_sparse(const nt_fc_sparse_params* p, const int8_t* in,
                                            int8_t* out) {
    return nt_fully_connected_sparse_dsp(p, in, out);
}
#else
static inline int nt_fully_connected_sparse(const nt_fc_sparse_params* p, const int8_t* in,
                                            int8_t* out) {
    return nt_fully_connected_sparse_c99(p, in, out);
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_KERNELS_SPARSE_H */
