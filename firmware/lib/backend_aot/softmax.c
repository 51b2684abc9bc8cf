/* SOFTMAX, int8 in and out, in gemmlowp fixed point as TFLM's
 * reference_ops::Softmax. Portable C99, no variant. */
#include "kernels.h"

/* Saturating multiply by 2^exponent (exponent > 0) or rounding divide (exponent < 0). */
static int32_t sat_pot(int32_t x, int32_t exponent) {
    if (exponent > 0) {
        const int32_t hi = INT32_MAX >> exponent;
        const int32_t lo = INT32_MIN >> exponent;
        if (x > hi) {
            return INT32_MAX;
        }
        if (x < lo) {
            return INT32_MIN;
        }
        return (int32_t)((uint32_t)x << exponent);
    }
    return exponent < 0 ? nt_rdbpot(x, -exponent) : x;
}

/* exp(x) for x in [-1/4, 0), x and result in Q0.31. */
static int32_t exp_quarter(int32_t a) {
    const int32_t kConstTerm = 1895147668; /* exp(-1/8) */
    const int32_t kOneThird = 715827883;   /* 1/3 */
    const int32_t x = a + (1 << 28);       /* a + 1/8 */
    const int32_t x2 = nt_srdhm(x, x);
    const int32_t x3 = nt_srdhm(x2, x);
    const int32_t x4 = nt_srdhm(x2, x2);
    const int32_t x4_over_4 = nt_rdbpot(x4, 2);
    const int32_t poly = nt_rdbpot(nt_srdhm(x4_over_4 + x3, kOneThird) + x2, 1);
    return kConstTerm + nt_srdhm(kConstTerm, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26; result in Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t exp_neg_q5(int32_t a) {
    const int32_t kFracBits = 26;
    const int32_t kOneQuarter = 1 << (kFracBits - 2);
    const int32_t mask = kOneQuarter - 1;
    const int32_t a_mod = (a & mask) - kOneQuarter;
    int32_t result = exp_quarter(sat_pot(a_mod, 5));
    const int32_t remainder = a_mod - a;
    /* multipliers exp(-2^k) for k = -2..4, applied for each set bit of the remainder */
    static const int32_t kMult[7] = {1672461947, 1302514674, 790015084, 290630308,
                                     39332535,   720401,     242};
    for (int32_t k = 0; k < 7; ++k) {
        if (remainder & (1 << (kFracBits - 2 + k))) {
            result = nt_srdhm(result, kMult[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), x in Q0.31, result in Q0.31 (Newton-Raphson, gemmlowp). */
static int32_t one_over_one_plus_x(int32_t a) {
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_den = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2); /* Q0.31 */
    const int32_t k48_17 = 1515870810;                                   /* 48/17 in Q2.29 */
    const int32_t kNeg32_17 = -1010580540;                               /* -32/17 in Q2.29 */
    int32_t x = k48_17 + nt_srdhm(half_den, kNeg32_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t hdx = nt_srdhm(half_den, x);  /* Q2.29 */
        const int32_t one_minus = (1 << 29) - hdx;  /* Q2.29 */
        x = x + sat_pot(nt_srdhm(x, one_minus), 2); /* Q4.27 -> Q2.29 */
    }
    return sat_pot(x, 1); /* x/2 in Q1.30 read as Q0.31 */
}

static int32_t clz32(uint32_t v) {
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while (!(v & 0x80000000u)) {
        v <<= 1;
        ++n;
    }
    return n;
}

int nt_softmax(const nt_softmax_params* p, const int8_t* in, int8_t* out) {
    const int32_t kAccumBits = 12;
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t* x = in + (size_t)r * (size_t)p->depth;
        int8_t* y = out + (size_t)r * (size_t)p->depth;
        int32_t max_v = -128;
        for (int32_t c = 0; c < p->depth; ++c) {
            max_v = x[c] > max_v ? x[c] : max_v;
        }
        int32_t sum = 0; /* Q12.19 */
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = nt_mul_q(diff, p->input_multiplier, p->input_left_shift);
                sum += sat_pot(exp_neg_q5(scaled), -kAccumBits);
            }
        }
        const int32_t headroom = clz32((uint32_t)sum);
        const int32_t bits_over_unit = kAccumBits - headroom;
        const int32_t shifted_minus_one =
            (int32_t)(((uint32_t)sum << headroom) - ((uint32_t)1 << 31));
        const int32_t scale = one_over_one_plus_x(shifted_minus_one);
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = nt_mul_q(diff, p->input_multiplier, p->input_left_shift);
                const int32_t e = exp_neg_q5(scaled);
                const int32_t unsat = nt_rdbpot(nt_srdhm(scale, e), bits_over_unit + 31 - 8);
                y[c] = (int8_t)nt_clamp(unsat - 128, -128, 127);
            } else {
                y[c] = -128;
            }
        }
    }
    return NT_OK;
}
