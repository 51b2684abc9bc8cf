/* Differential check of the DSP kernels (<op>_dsp.c: fully connected, conv2d, depthwise,
 * max pool) under QEMU: random shapes, strides,
 * padding, dilation, zero points and per-channel requantization; each case runs the DSP variant,
 * the c99 variant (when built with NT_CHECK_C99) and a naive reference written here from the
 * kernels.h contract, and compares the int8 outputs byte for byte. Prints one line per failing
 * case and a summary "kernel_check: pass N/N" or "kernel_check: FAIL M/N"; exit status 0 when
 * all agree. NT_CHECK_CASES sets the number of cases per kernel. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "kernels.h"
#include "qemu_port.h"

#ifndef NT_CHECK_CASES
#define NT_CHECK_CASES 60
#endif

static uint32_t s_rng = 0x9E3779B9u;
static uint32_t rnd(void) { /* xorshift32: deterministic, no libc */
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 17;
    s_rng ^= s_rng << 5;
    return s_rng;
}
static int32_t rnd_range(int32_t lo, int32_t hi) {
    return lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
}

enum { kMaxBuf = 24 * 1024, kMaxCh = 64 };
static int8_t s_in[kMaxBuf];
/* Weights sit at s_w_base + 0 (word aligned: the LDRD paths) or + 1 (the LDR paths). */
static int8_t s_w_base[kMaxBuf + 4] __attribute__((aligned(16)));
static int8_t* s_w = s_w_base;
static int8_t s_out_dsp[kMaxBuf];
#ifdef NT_CHECK_C99
static int8_t s_out_c99[kMaxBuf];
#endif
static int8_t s_out_ref[kMaxBuf];
static int32_t s_bias[kMaxCh * 4];
static int32_t s_mult[kMaxCh * 4];
static int32_t s_shift[kMaxCh * 4];
static uint32_t s_scratch[kMaxBuf / 4];

static void fill(int8_t* p, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        p[i] = (int8_t)rnd();
}

static void quant(int32_t n, int32_t bias_range) {
    for (int32_t i = 0; i < n; i++) {
        s_bias[i] = rnd_range(-bias_range, bias_range);
        s_mult[i] = (int32_t)((1u << 30) + (rnd() & 0x3FFFFFFFu)); /* [2^30, 2^31) like TFLM */
        s_shift[i] = rnd_range(-14, 1);
    }
}

static int8_t ref_finish(int32_t acc, const int32_t* m, const int32_t* s, int32_t c, int pc,
                         int32_t zp, int32_t lo, int32_t hi) {
    const int32_t q = pc ? c : 0;
    return (int8_t)nt_clamp(nt_mul_q(acc, m[q], s[q]) + zp, lo, hi);
}

static void act(int32_t* lo, int32_t* hi, int32_t out_zp) {
    switch (rnd() % 3u) {
        case 0:
            *lo = -128;
            *hi = 127;
            break;
        case 1:
            *lo = out_zp > -128 ? out_zp : -128;
            *hi = 127;
            break; /* relu */
        default:
            *lo = rnd_range(-128, 0);
            *hi = rnd_range(1, 127);
            break;
    }
}

static int compare(const char* name, int32_t idx, int32_t n) {
    int bad = 0;
    if (memcmp(s_out_dsp, s_out_ref, (size_t)n) != 0)
        bad |= 1;
#ifdef NT_CHECK_C99
    if (memcmp(s_out_c99, s_out_ref, (size_t)n) != 0)
        bad |= 2;
#endif
    if (bad) {
        qemu_uart_puts(name);
        qemu_uart_puts(" case ");
        qemu_uart_put_i32(idx);
        qemu_uart_puts(bad & 1 ? " dsp!=ref" : "");
        qemu_uart_puts(bad & 2 ? " c99!=ref" : "");
        qemu_uart_puts("\n");
    }
    return bad != 0;
}

static int check_fc(int32_t idx) {
    nt_fc_params p;
    s_w = s_w_base + (idx & 1);
    memset(&p, 0, sizeof(p));
    p.batches = rnd_range(1, 3);
    p.in_features = idx < 4 ? 784 / (idx + 1) : rnd_range(1, 300);
    p.out_features = rnd_range(1, 23);
    p.in_zp = rnd_range(-128, 127);
    p.out_zp = rnd_range(-128, 127);
    act(&p.act_min, &p.act_max, p.out_zp);
    p.per_channel = (int32_t)(rnd() & 1u);
    p.weights = s_w;
    p.bias_folded = s_bias;
    p.multiplier = s_mult;
    p.shift = s_shift;
    p.scratch = s_scratch;
    fill(s_in, p.batches * p.in_features);
    fill(s_w, p.in_features * p.out_features);
    quant(p.out_features, 1 << 20);
    for (int32_t b = 0; b < p.batches; b++) {
        for (int32_t o = 0; o < p.out_features; o++) {
            int32_t acc = s_bias[o];
            for (int32_t k = 0; k < p.in_features; k++) {
                acc += s_in[b * p.in_features + k] * s_w[o * p.in_features + k];
            }
            s_out_ref[b * p.out_features + o] =
                ref_finish(acc, s_mult, s_shift, o, p.per_channel, p.out_zp, p.act_min, p.act_max);
        }
    }
    const int32_t n = p.batches * p.out_features;
    /* Every other case with an even depth: the weights reordered as NT_LAYOUT_FC_STACKED (the
     * reference above read them in TFLite order), through the generator's dispatch-free entry. */
    if ((idx & 2) && (p.in_features & 1) == 0) {
        static int8_t s_w_pairs[kMaxBuf] __attribute__((aligned(16)));
        for (int32_t o = 0; o < p.out_features; o++) {
            for (int32_t k = 0; k < p.in_features; k++) {
                s_w_pairs[nt_fc_weight_index(NT_LAYOUT_FC_STACKED, p.in_features, p.out_features, o,
                                             k)] =
                    (int8_t)((uint8_t)s_w[o * p.in_features + k] ^
                             nt_fc_weight_flip(NT_LAYOUT_FC_STACKED, p.in_features, p.out_features,
                                               o, k));
            }
        }
        p.weights = s_w_pairs;
        p.weight_layout = NT_LAYOUT_FC_STACKED;
        memset(s_out_dsp, 0x55, (size_t)n);
        if (nt_fully_connected_fast_dsp(&p, s_in, s_out_dsp) != NT_OK ||
            memcmp(s_out_dsp, s_out_ref, (size_t)n) != 0) {
            qemu_uart_puts("fc_fast case ");
            qemu_uart_put_i32(idx);
            qemu_uart_puts(" dsp!=ref\n");
            return 1;
        }
    }
    if (idx % 7 == 3)
        p.scratch = NULL; /* planned without scratch: the c99 fallback */
    memset(s_out_dsp, 0x55, (size_t)n);
    if (nt_fully_connected_dsp(&p, s_in, s_out_dsp) != NT_OK)
        return 1;
#ifdef NT_CHECK_C99
    if (nt_fully_connected_c99(&p, s_in, s_out_c99) != NT_OK)
        return 1;
#endif
    return compare("fc", idx, n);
}

static void conv_shape(nt_conv_params* p, int depthwise) {
    memset(p, 0, sizeof(*p));
    p->batches = rnd_range(1, 2);
    p->in_h = rnd_range(1, 12);
    p->in_w = rnd_range(1, 12);
    /* One conv in four gets more than 256 taps (the kernel's scratch-staged path). */
    p->in_c =
        depthwise ? rnd_range(1, 20) : (rnd() % 4u == 0 ? rnd_range(12, 40) : rnd_range(1, 9));
    p->depth_multiplier = 1;
    p->out_c = depthwise ? p->in_c : rnd_range(1, 17);
    p->k_h = rnd_range(1, 5);
    p->k_w = rnd_range(1, 5);
    p->stride_h = rnd_range(1, 2);
    p->stride_w = rnd_range(1, 2);
    p->dil_h = (rnd() % 4u) == 0 ? 2 : 1;
    p->dil_w = (rnd() % 4u) == 0 ? 2 : 1;
    const int32_t eff_h = (p->k_h - 1) * p->dil_h + 1;
    const int32_t eff_w = (p->k_w - 1) * p->dil_w + 1;
    if (rnd() & 1u) { /* SAME, computed as TFLM does */
        p->out_h = (p->in_h + p->stride_h - 1) / p->stride_h;
        p->out_w = (p->in_w + p->stride_w - 1) / p->stride_w;
        int32_t ph = ((p->out_h - 1) * p->stride_h + eff_h - p->in_h);
        int32_t pw = ((p->out_w - 1) * p->stride_w + eff_w - p->in_w);
        p->pad_top = ph > 0 ? ph / 2 : 0;
        p->pad_left = pw > 0 ? pw / 2 : 0;
    } else { /* VALID; grow the input if the kernel does not fit */
        if (p->in_h < eff_h)
            p->in_h = eff_h;
        if (p->in_w < eff_w)
            p->in_w = eff_w;
        p->out_h = (p->in_h - eff_h) / p->stride_h + 1;
        p->out_w = (p->in_w - eff_w) / p->stride_w + 1;
    }
    p->in_zp = rnd_range(-128, 127);
    p->out_zp = rnd_range(-128, 127);
    act(&p->act_min, &p->act_max, p->out_zp);
    p->per_channel = (int32_t)(rnd() & 1u);
    p->weights = s_w;
    p->bias_folded = s_bias;
    p->multiplier = s_mult;
    p->shift = s_shift;
    p->scratch = s_scratch;
}

static int check_conv(int32_t idx, int depthwise) {
    nt_conv_params p;
    s_w = s_w_base + ((idx >> 1) & 1);
    conv_shape(&p, depthwise);
    if (idx == 0 && !depthwise) { /* the cnn model's first layer: 28x28x1, 5x5, 8 ch, valid */
        p.batches = 1;
        p.in_h = 28;
        p.in_w = 28;
        p.in_c = 1;
        p.out_c = 8;
        p.k_h = 5;
        p.k_w = 5;
        p.stride_h = p.stride_w = p.dil_h = p.dil_w = 1;
        p.pad_top = p.pad_left = 0;
        p.out_h = p.out_w = 24;
    } else if (!depthwise && idx < 12) { /* 1-channel input, 5-tap rows (the direct DSP path) */
        p.in_c = 1;
        p.k_w = 5;
        p.k_h = rnd_range(1, 5);
        p.stride_w = 1;
        p.dil_h = p.dil_w = 1;
        p.stride_h = rnd_range(1, 2);
        p.out_c = 2 * rnd_range(1, 8);
        p.in_h = rnd_range(p.k_h, 14);
        p.in_w = rnd_range(6, 16);
        p.pad_top = p.pad_left = 0;
        p.out_h = (p.in_h - p.k_h) / p.stride_h + 1;
        p.out_w = p.in_w - 4 - (idx & 1); /* odd and even widths */
    }
    /* One conv in three gets a fused max pool (conv2d only): windows of 1..3 x 1..3. */
    if (!depthwise && rnd() % 3u == 0) {
        p.pool_h = rnd_range(1, 3);
        p.pool_w = rnd_range(1, 3);
        if (p.out_h < p.pool_h || p.out_w < p.pool_w)
            p.pool_h = p.pool_w = 0;
    }
    fill(s_in, p.batches * p.in_h * p.in_w * p.in_c);
    const int32_t taps = p.k_h * p.k_w * (depthwise ? 1 : p.in_c);
    fill(s_w, taps * p.out_c);
    quant(p.out_c, 1 << 18);
    for (int32_t b = 0; b < p.batches; b++) {
        for (int32_t oy = 0; oy < p.out_h; oy++) {
            for (int32_t ox = 0; ox < p.out_w; ox++) {
                for (int32_t o = 0; o < p.out_c; o++) {
                    int32_t acc = s_bias[o];
                    for (int32_t ky = 0; ky < p.k_h; ky++) {
                        for (int32_t kx = 0; kx < p.k_w; kx++) {
                            const int32_t y = oy * p.stride_h - p.pad_top + ky * p.dil_h;
                            const int32_t x = ox * p.stride_w - p.pad_left + kx * p.dil_w;
                            const int inside = y >= 0 && y < p.in_h && x >= 0 && x < p.in_w;
                            const int32_t base = ((b * p.in_h + y) * p.in_w + x) * p.in_c;
                            if (depthwise) {
                                const int32_t xv = inside ? s_in[base + o] : p.in_zp;
                                acc += xv * s_w[(ky * p.k_w + kx) * p.out_c + o];
                            } else {
                                for (int32_t c = 0; c < p.in_c; c++) {
                                    const int32_t xv = inside ? s_in[base + c] : p.in_zp;
                                    acc += xv * s_w[((o * p.k_h + ky) * p.k_w + kx) * p.in_c + c];
                                }
                            }
                        }
                    }
                    s_out_ref[((b * p.out_h + oy) * p.out_w + ox) * p.out_c + o] = ref_finish(
                        acc, s_mult, s_shift, o, p.per_channel, p.out_zp, p.act_min, p.act_max);
                }
            }
        }
    }
    int32_t n = p.batches * p.out_h * p.out_w * p.out_c;
    if (p.pool_h > 0) { /* reference pool of the reference conv, in place (windows go forward) */
        const int32_t qh = p.out_h / p.pool_h, qw = p.out_w / p.pool_w;
        for (int32_t b = 0; b < p.batches; b++) {
            for (int32_t qy = 0; qy < qh; qy++) {
                for (int32_t qx = 0; qx < qw; qx++) {
                    for (int32_t o = 0; o < p.out_c; o++) {
                        int32_t m = -128;
                        for (int32_t dy = 0; dy < p.pool_h; dy++) {
                            for (int32_t dx = 0; dx < p.pool_w; dx++) {
                                const int32_t y = qy * p.pool_h + dy, x = qx * p.pool_w + dx;
                                const int32_t v =
                                    s_out_ref[((b * p.out_h + y) * p.out_w + x) * p.out_c + o];
                                m = v > m ? v : m;
                            }
                        }
                        s_out_ref[((b * qh + qy) * qw + qx) * p.out_c + o] = (int8_t)m;
                    }
                }
            }
        }
        n = p.batches * qh * qw * p.out_c;
    }
    if (!depthwise && nt_conv2d_fast_ok_dsp(&p)) { /* the generator's dispatch-free entry */
        memset(s_out_dsp, 0x55, (size_t)n);
        if (nt_conv2d_fast_dsp(&p, s_in, s_out_dsp) != NT_OK ||
            memcmp(s_out_dsp, s_out_ref, (size_t)n) != 0) {
            qemu_uart_puts("conv_fast case ");
            qemu_uart_put_i32(idx);
            qemu_uart_puts(" dsp!=ref\n");
            return 1;
        }
    }
    if (idx % 7 == 3)
        p.scratch = NULL; /* planned without scratch: the c99 fallback */
    memset(s_out_dsp, 0x55, (size_t)n);
    int rc = depthwise ? nt_depthwise_conv2d_dsp(&p, s_in, s_out_dsp)
                       : nt_conv2d_dsp(&p, s_in, s_out_dsp);
    if (rc != NT_OK)
        return 1;
#ifdef NT_CHECK_C99
    rc = depthwise ? nt_depthwise_conv2d_c99(&p, s_in, s_out_c99)
                   : nt_conv2d_c99(&p, s_in, s_out_c99);
    if (rc != NT_OK)
        return 1;
#endif
    return compare(depthwise ? "depthwise" : "conv", idx, n);
}

static int check_pool(int32_t idx) {
    nt_pool_params p;
    memset(&p, 0, sizeof(p));
    p.batches = rnd_range(1, 2);
    p.in_h = rnd_range(1, 14);
    p.in_w = rnd_range(1, 14);
    p.channels = rnd_range(1, 19);
    p.filter_h = rnd_range(1, 3);
    p.filter_w = rnd_range(1, 3);
    p.stride_h = rnd_range(1, 3);
    p.stride_w = rnd_range(1, 3);
    if (rnd() & 1u) { /* SAME */
        p.out_h = (p.in_h + p.stride_h - 1) / p.stride_h;
        p.out_w = (p.in_w + p.stride_w - 1) / p.stride_w;
        const int32_t ph = (p.out_h - 1) * p.stride_h + p.filter_h - p.in_h;
        const int32_t pw = (p.out_w - 1) * p.stride_w + p.filter_w - p.in_w;
        p.pad_top = ph > 0 ? ph / 2 : 0;
        p.pad_left = pw > 0 ? pw / 2 : 0;
    } else {
        if (p.in_h < p.filter_h)
            p.in_h = p.filter_h;
        if (p.in_w < p.filter_w)
            p.in_w = p.filter_w;
        p.out_h = (p.in_h - p.filter_h) / p.stride_h + 1;
        p.out_w = (p.in_w - p.filter_w) / p.stride_w + 1;
    }
    act(&p.act_min, &p.act_max, rnd_range(-128, 127));
    fill(s_in, p.batches * p.in_h * p.in_w * p.channels);
    for (int32_t b = 0; b < p.batches; b++) {
        for (int32_t oy = 0; oy < p.out_h; oy++) {
            for (int32_t ox = 0; ox < p.out_w; ox++) {
                for (int32_t c = 0; c < p.channels; c++) {
                    int32_t m = -1000;
                    for (int32_t fy = 0; fy < p.filter_h; fy++) {
                        for (int32_t fx = 0; fx < p.filter_w; fx++) {
                            const int32_t y = oy * p.stride_h - p.pad_top + fy;
                            const int32_t x = ox * p.stride_w - p.pad_left + fx;
                            if (y >= 0 && y < p.in_h && x >= 0 && x < p.in_w) {
                                const int32_t v =
                                    s_in[((b * p.in_h + y) * p.in_w + x) * p.channels + c];
                                m = v > m ? v : m;
                            }
                        }
                    }
                    s_out_ref[((b * p.out_h + oy) * p.out_w + ox) * p.channels + c] =
                        (int8_t)nt_clamp(m, p.act_min, p.act_max);
                }
            }
        }
    }
    const int32_t n = p.batches * p.out_h * p.out_w * p.channels;
    memset(s_out_dsp, 0x55, (size_t)n);
    if (nt_max_pool_dsp(&p, s_in, s_out_dsp) != NT_OK)
        return 1;
#ifdef NT_CHECK_C99
    if (nt_max_pool_c99(&p, s_in, s_out_c99) != NT_OK)
        return 1;
#endif
    return compare("max_pool", idx, n);
}

int main(void) {
    board_init();
    int32_t fails = 0;
    int32_t total = 0;
    for (int32_t i = 0; i < NT_CHECK_CASES; i++) {
        fails += check_fc(i);
        fails += check_conv(i, 0);
        fails += check_conv(i, 1);
        fails += check_pool(i);
        total += 4;
    }
    qemu_uart_puts(fails ? "kernel_check: FAIL " : "kernel_check: pass ");
    qemu_uart_put_i32(fails ? fails : total);
    qemu_uart_puts("/");
    qemu_uart_put_i32(total);
#ifdef NT_CHECK_C99
    qemu_uart_puts(" (dsp, c99, reference)\n");
#else
    qemu_uart_puts(" (dsp, reference)\n");
#endif
    return fails ? 1 : 0;
}
