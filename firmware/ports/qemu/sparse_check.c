/* Differential check of the block-sparse fully connected kernel (kernels_sparse.h) under QEMU:
 * random shapes (depth even, with and without a tail of depth % 8 inputs), random 2 x 8 blocks
 * kept, zero points, activation clamps and per-tensor / per-channel requantization. Each case
 * encodes the weights as NT_FC_BLOCK8X2 here, runs the DSP variant, the c99 variant and a naive
 * dense reference over the unencoded weights (from the kernels.h contract), and compares the
 * int8 outputs byte for byte. Prints one line per failing case and
 * "sparse_check: pass N/N" or "sparse_check: FAIL M/N"; exit status 0 when all agree. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "kernels_sparse.h"
#include "qemu_port.h"

#ifndef NT_CHECK_CASES
#define NT_CHECK_CASES 120
#endif

static uint32_t s_rng = 0x2545F491u;
static uint32_t rnd(void) { /* xorshift32: deterministic, no libc */
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 17;
    s_rng ^= s_rng << 5;
    return s_rng;
}
static int32_t rnd_range(int32_t lo, int32_t hi) {
    return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
}

enum { kMaxW = 20 * 1024, kMaxRows = 48, kMaxDepth = 2 * 1024 + 6, kMaxBatch = 2 };
static int8_t s_in[kMaxBatch * kMaxDepth];
static int8_t s_w[kMaxW];                                    /* dense [rows][depth] */
static int8_t s_ws[kMaxW + 64] __attribute__((aligned(16))); /* encoded */
static uint8_t s_idx[kMaxW / 16];
static uint16_t s_cnt[kMaxRows / 2];
static int8_t s_out_dsp[kMaxBatch * kMaxRows], s_out_c99[kMaxBatch * kMaxRows];
static int8_t s_out_ref[kMaxBatch * kMaxRows];
static int32_t s_bias[kMaxRows], s_mult[kMaxRows], s_shift[kMaxRows];
static uint32_t s_scratch[kMaxDepth / 2 + 1];

static int check(int32_t idx) {
    nt_fc_sparse_params p;
    memset(&p, 0, sizeof(p));
    p.batches = rnd_range(1, kMaxBatch);
    p.out_features = 2 * rnd_range(1, kMaxRows / 2);
    /* Depths up to 256 blocks (the uint8 index's limit), most small enough for the buffers. */
    const int32_t max_depth =
        kMaxW / p.out_features < kMaxDepth ? kMaxW / p.out_features : kMaxDepth;
    p.in_features =
        idx == 0 ? 2048 / 8 * 8 / (p.out_features <= 10 ? 1 : 4) : 2 * rnd_range(1, max_depth / 2);
    if (p.in_features * p.out_features > kMaxW)
        p.in_features = kMaxW / p.out_features & ~1;
    p.out_zp = rnd_range(-128, 127);
    switch (rnd() % 3u) {
        case 0:
            p.act_min = -128;
            p.act_max = 127;
            break;
        case 1:
            p.act_min = p.out_zp;
            p.act_max = 127;
            break;
        default:
            p.act_min = rnd_range(-128, 0);
            p.act_max = rnd_range(1, 127);
            break;
    }
    p.per_channel = (int32_t)(rnd() & 1u);
    const int32_t rows = p.out_features, depth = p.in_features;
    const int32_t body = depth & ~7, tail = depth - body;
    const uint32_t keep_permille = rnd() % 1001u; /* 0 %: only tails, 100 %: every block */
    for (int32_t i = 0; i < p.batches * depth; i++)
        s_in[i] = (int8_t)rnd();
    memset(s_w, 0, (size_t)(rows * depth));
    int32_t nw = 0, nb = 0;
    for (int32_t j = 0; j < rows / 2; j++) {
        uint16_t c = 0;
        for (int32_t b = 0; b < body / 8; b++) {
            if (rnd() % 1000u >= keep_permille)
                continue;
            for (int32_t r = 0; r < 2; r++) {
                for (int32_t i = 0; i < 8; i++) {
                    const int8_t v = (int8_t)rnd();
                    s_w[(2 * j + r) * depth + 8 * b + i] = v;
                    s_ws[nw++] = v;
                }
            }
            s_idx[nb++] = (uint8_t)b;
            c++;
        }
        for (int32_t r = 0; r < 2; r++) {
            for (int32_t i = 0; i < tail; i++) {
                const int8_t v = (int8_t)rnd();
                s_w[(2 * j + r) * depth + body + i] = v;
                s_ws[nw++] = v;
            }
        }
        s_cnt[j] = c;
    }
    for (int32_t o = 0; o < rows; o++) {
        s_bias[o] = rnd_range(-(1 << 20), 1 << 20);
        s_mult[o] = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu)); /* [2^30, 2^31) like TFLM */
        s_shift[o] = rnd_range(-14, 1);
    }
    p.weights = s_ws;
    p.block_index = s_idx;
    p.block_count = s_cnt;
    p.bias_folded = s_bias;
    p.multiplier = s_mult;
    p.shift = s_shift;
    p.scratch = (idx % 9 == 4) ? NULL : s_scratch; /* NULL: the DSP entry's c99 fallback */
    for (int32_t b = 0; b < p.batches; b++) {
        for (int32_t o = 0; o < rows; o++) {
            int32_t acc = s_bias[o];
            for (int32_t k = 0; k < depth; k++)
                acc += s_in[b * depth + k] * s_w[o * depth + k];
            const int32_t q = p.per_channel ? o : 0;
            s_out_ref[b * rows + o] = (int8_t)nt_clamp(
                nt_mul_q(acc, s_mult[q], s_shift[q]) + p.out_zp, p.act_min, p.act_max);
        }
    }
    const size_t n = (size_t)(p.batches * rows);
    memset(s_out_dsp, 0x55, n);
    memset(s_out_c99, 0x55, n);
    int bad = 0;
    if (nt_fully_connected_sparse(&p, s_in, s_out_dsp) != NT_OK)
        bad |= 4;
    if (nt_fully_connected_sparse_c99(&p, s_in, s_out_c99) != NT_OK)
        bad |= 4;
    if (memcmp(s_out_dsp, s_out_ref, n) != 0)
        bad |= 1;
    if (memcmp(s_out_c99, s_out_ref, n) != 0)
        bad |= 2;
    if (bad) {
        qemu_uart_puts("fc_sparse case ");
        qemu_uart_put_i32(idx);
        qemu_uart_puts(bad & 1 ? " dsp!=ref" : "");
        qemu_uart_puts(bad & 2 ? " c99!=ref" : "");
        qemu_uart_puts(bad & 4 ? " error" : "");
        qemu_uart_puts("\n");
    }
    return bad != 0;
}

int main(void) {
    board_init();
    int32_t fails = 0;
    for (int32_t i = 0; i < NT_CHECK_CASES; i++)
        fails += check(i);
    qemu_uart_puts(fails ? "sparse_check: FAIL " : "sparse_check: pass ");
    qemu_uart_put_i32(fails ? fails : NT_CHECK_CASES);
    qemu_uart_puts("/");
    qemu_uart_put_i32(NT_CHECK_CASES);
    qemu_uart_puts(" (" NANO_TFLM_KERNELS_VARIANT ", c99, reference)\n");
    return fails ? 1 : 0;
}
