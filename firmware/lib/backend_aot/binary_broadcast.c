/* ADD and MUL (int8) with broadcasting, e.g. a BatchNormalization the converter did not fold
 * into a convolution: x * gamma' + beta' with per-channel constant vectors. Each input element
 * is read at index (i / div) % mod of the flat output index i (nt_bcast_index in kernels.h);
 * the per-element arithmetic is exactly nt_add's / nt_mul's, which is TFLM's
 * (reference_integer_ops::BroadcastAdd6DSlow / BroadcastMul6DSlow apply the same per-element
 * functions as the elementwise ones). */
#include "kernels.h"

/* Walks (i / div) % mod for i = 0, 1, ... without a division per element. */
typedef struct {
    int32_t r, q, div, mod;
} bcast_walk;

static inline void walk_init(bcast_walk* w, const nt_bcast_index* ix) {
    w->r = 0;
    w->q = 0;
    w->div = ix->div;
    w->mod = ix->mod;
}

static inline void walk_next(bcast_walk* w) {
    if (++w->r == w->div) {
        w->r = 0;
        if (++w->q == w->mod) {
            w->q = 0;
        }
    }
}

static int valid(const nt_bcast_index* a, const nt_bcast_index* b) {
    return a->div >= 1 && a->mod >= 1 && b->div >= 1 && b->mod >= 1;
}

int nt_add_broadcast(const nt_add_params* p, const nt_bcast_index* ix1, const nt_bcast_index* ix2,
                     const int8_t* in1, const int8_t* in2, int8_t* out) {
    if (!valid(ix1, ix2)) {
        return NT_ERR_PARAM;
    }
    bcast_walk w1, w2;
    walk_init(&w1, ix1);
    walk_init(&w2, ix2);
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = (p->in1_offset + in1[w1.q]) * (1 << p->left_shift);
        const int32_t b = (p->in2_offset + in2[w2.q]) * (1 << p->left_shift);
        const int32_t sa = nt_mul_q(a, p->in1_multiplier, p->in1_shift);
        const int32_t sb = nt_mul_q(b, p->in2_multiplier, p->in2_shift);
        const int32_t v = nt_mul_q(sa + sb, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
        walk_next(&w1);
        walk_next(&w2);
    }
    return NT_OK;
}

int nt_mul_broadcast(const nt_mul_params* p, const nt_bcast_index* ix1, const nt_bcast_index* ix2,
                     const int8_t* in1, const int8_t* in2, int8_t* out) {
    if (!valid(ix1, ix2)) {
        return NT_ERR_PARAM;
    }
    bcast_walk w1, w2;
    walk_init(&w1, ix1);
    walk_init(&w2, ix2);
    for (int32_t i = 0; i < p->count; ++i) {
        const int32_t a = p->in1_offset + in1[w1.q];
        const int32_t b = p->in2_offset + in2[w2.q];
        const int32_t v = nt_mul_q(a * b, p->out_multiplier, p->out_shift) + p->out_offset;
        out[i] = (int8_t)nt_clamp(v, p->act_min, p->act_max);
        walk_next(&w1);
        walk_next(&w2);
    }
    return NT_OK;
}
