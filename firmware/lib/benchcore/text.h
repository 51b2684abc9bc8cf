/* Text building without printf (no libc formatting on the device): HELLO and STATS bodies,
 * the boot line, error messages, the self-test line. Every write is bounded by the buffer;
 * what does not fit is dropped, and the text stays NUL-terminated.
 *
 * Included by core.c only, and the helpers are static on purpose: they stay in core.c's
 * translation unit, so the compiler inlines them exactly as before they moved here and the
 * firmware image is byte for byte the same (measured with the QEMU image: as a separate
 * text.c, without inlining, its flash figure changes, 46,976 -> 46,272 B). */
#ifndef NANO_TFLM_TEXT_H_
#define NANO_TFLM_TEXT_H_

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char* buf;
    size_t len;
    size_t cap; /* bytes available, including room for a terminating NUL */
} text_t;

static void text_init(text_t* t, char* buf, size_t cap) {
    t->buf = buf;
    t->len = 0;
    t->cap = cap;
    if (cap > 0u) {
        buf[0] = '\0';
    }
}

static void text_char(text_t* t, char c) {
    if (t->len + 1u < t->cap) {
        t->buf[t->len++] = c;
        t->buf[t->len] = '\0';
    }
}

static void text_str(text_t* t, const char* s) {
    while (*s != '\0') {
        text_char(t, *s++);
    }
}

static void text_u32(text_t* t, uint32_t v) {
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        text_char(t, digits[--n]);
    }
}

static void text_i32(text_t* t, int32_t v) {
    if (v < 0) {
        text_char(t, '-');
        text_u32(t, (uint32_t)(-(v + 1)) + 1u);
    } else {
        text_u32(t, (uint32_t)v);
    }
}

/* dims joined by 'x', like 1x28x28x1 */
static void text_shape(text_t* t, const int32_t* dims, int n) {
    for (int i = 0; i < n; ++i) {
        if (i > 0) {
            text_char(t, 'x');
        }
        text_i32(t, dims[i]);
    }
}

/* int8 values joined by ',' */
static void text_scores(text_t* t, const int8_t* v, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        if (i > 0) {
            text_char(t, ',');
        }
        text_i32(t, v[i]);
    }
}

/* "key=value\n" lines (the protocol's info bodies, docs/PROTOCOL.md) */
static void kv_str(text_t* t, const char* key, const char* value) {
    text_str(t, key);
    text_char(t, '=');
    text_str(t, value);
    text_char(t, '\n');
}

static void kv_u32(text_t* t, const char* key, uint32_t value) {
    text_str(t, key);
    text_char(t, '=');
    text_u32(t, value);
    text_char(t, '\n');
}

static void kv_i32(text_t* t, const char* key, int32_t value) {
    text_str(t, key);
    text_char(t, '=');
    text_i32(t, value);
    text_char(t, '\n');
}

/* A float macro's text as the exporter wrote it (%.9g, which round-trips a float32 exactly),
 * without its 'f' suffix: exact, and no float formatting code on the device. */
static void kv_literal(text_t* t, const char* key, const char* literal) {
    text_str(t, key);
    text_char(t, '=');
    while (*literal != '\0' && *literal != 'f' && *literal != 'F') {
        text_char(t, *literal++);
    }
    text_char(t, '\n');
}

#endif /* NANO_TFLM_TEXT_H_ */
