/* The portable benchmark core (see core.h and docs/PROTOCOL.md). */
#include "core.h"

#include <string.h>

#include "backend.h"
#include "board.h"
#include "model_meta.h"
#include "model_selftest.h"
#include "protocol.h"
#include "text.h"

#if MODEL_SELFTEST_INPUT_BYTES != MODEL_INPUT_BYTES
#error "model_selftest.h and model_meta.h disagree on the input size: re-export the model"
#endif
#if MODEL_SELFTEST_OUTPUT_BYTES != MODEL_OUTPUT_BYTES
#error "model_selftest.h and model_meta.h disagree on the output size: re-export the model"
#endif
#if MODEL_OUTPUT_BYTES > 255
#error "the INFER reply carries at most 255 scores (u8 n)"
#endif

/* Bytes taken from the board per board_read call; small, so a burst is handled frame by frame
 * from a stack buffer without a second copy of the receive buffer. */
#define kReadChunk 64u

typedef struct {
    uint32_t inferences;
    uint32_t errors; /* error replies sent */
    uint32_t rx_bytes;
    uint32_t frames_ok;  /* valid requests handled */
    uint32_t frames_bad; /* framing, oversize, length, version, CRC or unknown-type errors */
    uint32_t latency_min;
    uint32_t latency_max;
    uint32_t link_irqs_in_invoke; /* link receive interrupts taken inside the timed region */
} counters_t;

static proto_rx_t g_rx;
/* Replies are built in place: the body goes straight after the header, then CRC, then COBS. */
static uint8_t g_tx_packet[PROTO_MAX_PACKET];
static uint8_t g_tx_frame[PROTO_MAX_FRAME];
static counters_t g_count;
static int g_ready;

static const int32_t kInputShape[MODEL_INPUT_DIMS] = MODEL_INPUT_SHAPE;
static const int32_t kOutputShape[MODEL_OUTPUT_DIMS] = MODEL_OUTPUT_SHAPE;

/* A float macro from model_meta.h as text, for kv_literal. */
#define kStr2(x) #x
#define kStr(x) kStr2(x)

/* ---- output ---- */

static uint8_t* reply_body(void) {
    return &g_tx_packet[PROTO_HEADER_BYTES];
}

static void send_packet(uint8_t type, uint16_t seq, size_t body_len) {
    size_t n =
        proto_build_packet(type, seq, reply_body(), body_len, g_tx_packet, sizeof(g_tx_packet));
    if (n == 0u) {
        return; /* cannot happen: every body is built within PROTO_MAX_BODY */
    }
    size_t m = proto_cobs_encode(g_tx_packet, n, g_tx_frame);
    g_tx_frame[m++] = 0u;
    board_write(g_tx_frame, m);
}

static void send_error(uint16_t seq, uint8_t code, const char* message) {
    uint8_t* body = reply_body();
    body[0] = code;
    text_t t;
    text_init(&t, (char*)&body[1], PROTO_MAX_BODY - 1u);
    text_str(&t, message);
    ++g_count.errors;
    send_packet((uint8_t)PROTO_ERROR, seq, 1u + t.len);
}

/* A log line between delimiters; the host shows or ignores it, never parses it as a frame. */
static void send_line(const char* text) {
    static const uint8_t kDelimiter = 0u;
    board_write((const uint8_t*)text, strlen(text));
    board_write((const uint8_t*)"\n", 1u);
    board_write(&kDelimiter, 1u);
}

void core_log(const char* text) {
    send_line(text);
}

/* ---- commands ---- */

static void load_input(const uint8_t* pixels, int8_t* input, size_t n) {
    /* The exported LUT is the host's quantization (trainer.reference.input_lut), so device and
     * reference see the same int8 input bit for bit. */
    for (size_t i = 0; i < n; ++i) {
        input[i] = kModelInputLut[pixels[i]];
    }
}

static uint8_t argmax(const int8_t* scores, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; ++i) {
        if (scores[i] > scores[best]) {
            best = i; /* first maximum wins, as numpy.argmax */
        }
    }
    return (uint8_t)best;
}

static void handle_hello(uint16_t seq) {
    text_t t;
    text_init(&t, (char*)reply_body(), PROTO_MAX_BODY);
    kv_str(&t, "fw", NANO_TFLM_FW_VERSION);
    kv_u32(&t, "proto", PROTO_VERSION);
    kv_str(&t, "board", board_name());
    kv_str(&t, "backend", backend_name());
    kv_str(&t, "model_sha256", MODEL_SHA256_PREFIX);
    kv_u32(&t, "ready", (uint32_t)g_ready);
    text_str(&t, "input_shape=");
    text_shape(&t, kInputShape, MODEL_INPUT_DIMS);
    text_char(&t, '\n');
    kv_literal(&t, "input_scale", kStr(MODEL_INPUT_SCALE));
    kv_i32(&t, "input_zero_point", MODEL_INPUT_ZERO_POINT);
    text_str(&t, "output_shape=");
    text_shape(&t, kOutputShape, MODEL_OUTPUT_DIMS);
    text_char(&t, '\n');
    kv_literal(&t, "output_scale", kStr(MODEL_OUTPUT_SCALE));
    kv_i32(&t, "output_zero_point", MODEL_OUTPUT_ZERO_POINT);
    kv_u32(&t, "arena_bytes", (uint32_t)backend_arena_bytes());
    kv_u32(&t, "arena_used_bytes", (uint32_t)backend_arena_used_bytes());
    kv_u32(&t, "model_bytes", (uint32_t)MODEL_BYTES);
    kv_u32(&t, "clock_hz", board_clock_hz());
    kv_str(&t, "timer", board_timer_kind());
    kv_str(&t, "timing", board_timing());
    kv_u32(&t, "tick_hz", board_tick_hz());
    kv_u32(&t, "ticks_to_units", board_ticks_to_units());
    kv_u32(&t, "stack_bytes", (uint32_t)board_stack_size());
    kv_u32(&t, "stack_used_bytes", (uint32_t)board_stack_used());
    kv_u32(&t, "max_body", PROTO_MAX_BODY);
    kv_u32(&t, "selftest_count", MODEL_SELFTEST_COUNT);
    kv_u32(&t, "infer_rle", 1u); /* INFER_RLE (0x06) understood */
    send_packet(PROTO_HELLO | PROTO_REPLY_FLAG, seq, t.len);
}

static void handle_stats(uint16_t seq) {
    text_t t;
    text_init(&t, (char*)reply_body(), PROTO_MAX_BODY);
    kv_u32(&t, "inferences", g_count.inferences);
    kv_u32(&t, "errors", g_count.errors);
    kv_u32(&t, "rx_bytes", g_count.rx_bytes);
    kv_u32(&t, "frames_ok", g_count.frames_ok);
    kv_u32(&t, "frames_bad", g_count.frames_bad);
    kv_u32(&t, "stack_used_bytes", (uint32_t)board_stack_used());
    kv_u32(&t, "latency_min", g_count.inferences ? g_count.latency_min : 0u);
    kv_u32(&t, "latency_max", g_count.latency_max);
    kv_u32(&t, "link_irqs_in_invoke", g_count.link_irqs_in_invoke);
    send_packet(PROTO_STATS | PROTO_REPLY_FLAG, seq, t.len);
}

static void send_input_size_error(uint16_t seq, size_t want, long got) {
    char msg[48];
    text_t t;
    text_init(&t, msg, sizeof(msg));
    text_str(&t, "expected ");
    text_u32(&t, (uint32_t)want);
    if (got < 0) {
        text_str(&t, " pixels, bad run-length code");
    } else {
        text_str(&t, " pixels, got ");
        text_u32(&t, (uint32_t)got);
    }
    send_error(seq, PROTO_ERR_INPUT_SIZE, msg);
}

/* INFER (raw pixels) and INFER_RLE (zero-run coded pixels): same reply, type | 0x80. */
/* ERR_NOT_READY names what failed, so the host can say it without a serial monitor. */
static void send_not_ready(uint16_t seq) {
    char msg[192]; /* the prefix and backend_tflm's longest reason fit */
    text_t t;
    text_init(&t, msg, sizeof(msg));
    text_str(&t, "backend failed to initialise");
    const char* why = backend_init_error();
    if (why != NULL && why[0] != '\0') {
        text_str(&t, ": ");
        text_str(&t, why);
    }
    send_error(seq, PROTO_ERR_NOT_READY, msg);
}

static void handle_infer(uint8_t type, uint16_t seq, const uint8_t* body, size_t len) {
    if (!g_ready) {
        send_not_ready(seq);
        return;
    }
    size_t n_in = backend_input_bytes();
    int8_t* input = backend_input();
    if (type == PROTO_INFER_RLE) {
        /* Decode the pixels into the input tensor itself, then map them through the LUT in place:
         * no second 784-byte buffer. */
        long n = proto_rle_decode(body, len, (uint8_t*)input, n_in);
        if (n != (long)n_in) {
            send_input_size_error(seq, n_in, n);
            return;
        }
        load_input((const uint8_t*)input, input, n_in);
    } else {
        if (len != n_in) {
            send_input_size_error(seq, n_in, (long)len);
            return;
        }
        load_input(body, input, n_in);
    }
    /* Latency covers the backend's invoke only: input conversion and I/O are the host's
     * round_trip figure. The link is held quiet around it where the port can (board.h), so the
     * receive interrupts of requests already in flight run after the timed region, not in it. */
    board_link_hold();
    const uint32_t irqs0 = board_link_irqs();
    uint32_t t0 = board_ticks();
    int rc = backend_invoke();
    uint32_t ticks = board_ticks() - t0;
    g_count.link_irqs_in_invoke += board_link_irqs() - irqs0;
    board_link_release();
    if (rc != 0) {
        send_error(seq, PROTO_ERR_INVOKE, "backend invoke failed");
        return;
    }
    const int8_t* out = backend_output();
    size_t n_out = backend_output_bytes();
    uint8_t* reply = reply_body();
    reply[0] = argmax(out, n_out);
    reply[1] = (uint8_t)n_out;
    memcpy(&reply[2], out, n_out);
    proto_put_u32(&reply[2 + n_out], ticks);
    if (g_count.inferences == 0u || ticks < g_count.latency_min) {
        g_count.latency_min = ticks;
    }
    if (ticks > g_count.latency_max) {
        g_count.latency_max = ticks;
    }
    ++g_count.inferences;
    send_packet((uint8_t)(type | PROTO_REPLY_FLAG), seq, 2u + n_out + 4u);
}

int core_selftest(char* text, size_t max) {
    text_t t;
    text_init(&t, text, max);
    if (!g_ready) {
        text_str(&t, "selftest: FAIL backend not ready");
        return 1;
    }
    uint32_t passed = 0;
    int first_bad = -1;
    char detail[192]; /* the first difference only; later failures are just counted */
    text_t d;
    text_init(&d, detail, sizeof(detail));
    for (int i = 0; i < MODEL_SELFTEST_COUNT; ++i) {
        load_input(kModelSelftestInput[i], backend_input(), MODEL_INPUT_BYTES);
        int rc = backend_invoke();
        const int8_t* out = backend_output();
        if (rc == 0 && memcmp(out, kModelSelftestOutput[i], MODEL_OUTPUT_BYTES) == 0) {
            ++passed;
        } else if (first_bad < 0) {
            first_bad = i;
            if (rc != 0) {
                text_str(&d, " invoke failed");
            } else {
                text_str(&d, " got=");
                text_scores(&d, out, MODEL_OUTPUT_BYTES);
                text_str(&d, " want=");
                text_scores(&d, kModelSelftestOutput[i], MODEL_OUTPUT_BYTES);
            }
        }
    }
    text_str(&t, first_bad < 0 ? "selftest: pass " : "selftest: FAIL ");
    text_u32(&t, passed);
    text_char(&t, '/');
    text_u32(&t, (uint32_t)MODEL_SELFTEST_COUNT);
    if (first_bad >= 0) {
        text_str(&t, " image=");
        text_u32(&t, (uint32_t)first_bad);
        text_str(&t, detail);
    }
    return first_bad < 0 ? 0 : 1;
}

static void handle_packet(const proto_packet_t* p) {
    ++g_count.frames_ok;
    switch (p->type) {
        case PROTO_HELLO:
            handle_hello(p->seq);
            break;
        case PROTO_INFER:
        case PROTO_INFER_RLE:
            handle_infer(p->type, p->seq, p->body, p->body_len);
            break;
        case PROTO_STATS:
            handle_stats(p->seq);
            break;
        case PROTO_RESET:
            memset(&g_count, 0, sizeof(g_count));
            send_packet(PROTO_RESET | PROTO_REPLY_FLAG, p->seq, 0u);
            break;
        case PROTO_SELFTEST: {
            core_selftest((char*)reply_body(), PROTO_MAX_BODY);
            send_packet(PROTO_SELFTEST | PROTO_REPLY_FLAG, p->seq, strlen((char*)reply_body()));
            break;
        }
        default:
            --g_count.frames_ok;
            ++g_count.frames_bad;
            send_error(p->seq, PROTO_ERR_UNKNOWN_COMMAND, "unknown command");
            break;
    }
}

static uint16_t rx_seq(void) {
    return g_rx.len >= 4u ? proto_get_u16(&g_rx.buf[2]) : (uint16_t)PROTO_SEQ_NONE;
}

static void handle_rx(int result) {
    switch (result) {
        case PROTO_RX_FRAME: {
            proto_packet_t p;
            uint16_t seq;
            int err = proto_parse_packet(g_rx.buf, g_rx.len, &p, &seq);
            if (err != 0) {
                ++g_count.frames_bad;
                static const char* const kWhy[] = {
                    "", "bad crc", "bad length", "", "", "", "unsupported protocol version"};
                send_error(seq, (uint8_t)err, err < 7 ? kWhy[err] : "");
            } else {
                handle_packet(&p);
            }
            break;
        }
        case PROTO_RX_FRAMING:
            ++g_count.frames_bad;
            send_error(rx_seq(), PROTO_ERR_FRAMING, "bad cobs framing");
            break;
        case PROTO_RX_OVERSIZE:
            ++g_count.frames_bad;
            send_error(rx_seq(), PROTO_ERR_OVERSIZE, "frame longer than the receive buffer");
            break;
        default: /* PROTO_RX_NONE, PROTO_RX_EMPTY: nothing to answer */
            break;
    }
}

void core_feed(const uint8_t* data, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        ++g_count.rx_bytes;
        handle_rx(proto_rx_push(&g_rx, data[i]));
    }
}

void core_link_reset(void) {
    proto_rx_init(&g_rx);
}

size_t core_poll(void) {
    uint8_t chunk[kReadChunk];
    size_t total = 0;
    for (;;) {
        size_t n = board_read(chunk, sizeof(chunk));
        if (n == 0u) {
            return total;
        }
        core_feed(chunk, n);
        total += n;
    }
}

void core_init(void) {
    proto_rx_init(&g_rx);
    memset(&g_count, 0, sizeof(g_count));
    /* A delimiter first, so whatever the line held before the reset ends as its own chunk; then
     * the backend's initialisation, whose log lines (core_log) come before the boot line. */
    static const uint8_t kDelimiter = 0u;
    board_write(&kDelimiter, 1u);
    g_ready = (backend_init() == 0 && backend_input_bytes() == MODEL_INPUT_BYTES &&
               backend_output_bytes() == MODEL_OUTPUT_BYTES);
    char line[160];
    text_t t;
    text_init(&t, line, sizeof(line));
    text_str(&t, "nano-tflm fw=" NANO_TFLM_FW_VERSION " proto=");
    text_u32(&t, PROTO_VERSION);
    text_str(&t, " board=");
    text_str(&t, board_name());
    text_str(&t, " backend=");
    text_str(&t, backend_name());
    text_str(&t, " model=" MODEL_SHA256_PREFIX);
    if (!g_ready) {
        text_str(&t, " error=backend-not-ready");
    }
    send_line(line);
#ifdef NANO_TFLM_SELFTEST_AT_BOOT
#ifdef NANO_TFLM_SELFTEST_TICKS
    const uint32_t t0 = board_ticks();
#endif
    /* The reply buffer is free before the first frame: no 1 KiB on the stack. */
    core_selftest((char*)reply_body(), PROTO_MAX_BODY);
#ifdef NANO_TFLM_SELFTEST_TICKS
    const uint32_t ticks = board_ticks() - t0;
#endif
    send_line((const char*)reply_body());
#ifdef NANO_TFLM_SELFTEST_TICKS
    /* How long the self-test took, in board ticks: the Renode test boots the same image twice and
     * expects the same figure (under Renode it is an instruction count). */
    text_init(&t, line, sizeof(line));
    text_str(&t, "selftest: ticks=");
    text_u32(&t, ticks);
    send_line(line);
#endif
#endif
}

void core_run(void) {
    board_init();
    core_init();
    for (;;) {
        if (core_poll() == 0u) {
            board_wait();
        }
    }
}
