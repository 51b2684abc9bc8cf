/* Checks protocol.c against the shared byte vectors (the test suite's protocol_vectors.json).
 *
 * test_protocol.py flattens the JSON into one record per line on stdin (C has no JSON
 * parser here, and the flattening is a plain re-spelling of the same bytes):
 *   crc <data hex|-> <crc decimal>
 *   cobs <decoded hex|-> <encoded hex>
 *   cobs_bad <encoded hex>
 *   packet <type> <seq> <body hex|-> <packet hex> <frame hex>
 *   packet_bad <packet hex|-> <error> <seq>
 *   stream <bytes hex> <event>...      event: f:<decoded hex> | framing | oversize
 *   rle <pixels hex> <rle hex>
 *   rle_bad <rle hex>
 * Prints one line per failure and ends with "protocol vectors: N passed, M failed".
 * Exit status 0 only when nothing failed. Host-only test code (uses malloc, getline).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

static int g_passed;
static int g_failed;

static void check(int ok, const char* what, long line) {
    if (ok) {
        ++g_passed;
    } else {
        ++g_failed;
        printf("FAIL line %ld: %s\n", line, what);
    }
}

/* Decodes hex into a new buffer; "-" is empty. */
static uint8_t* unhex(const char* hex, size_t* len) {
    if (strcmp(hex, "-") == 0) {
        *len = 0;
        return malloc(1);
    }
    size_t n = strlen(hex) / 2;
    uint8_t* out = malloc(n + 1);
    for (size_t i = 0; i < n; ++i) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
    *len = n;
    return out;
}

static void run_line(char* line, long lineno) {
    char* save = NULL;
    char* kind = strtok_r(line, " \n", &save);
    if (kind == NULL) {
        return;
    }
    if (strcmp(kind, "crc") == 0) {
        size_t n;
        uint8_t* data = unhex(strtok_r(NULL, " \n", &save), &n);
        unsigned long want = strtoul(strtok_r(NULL, " \n", &save), NULL, 10);
        check(proto_crc32(0, data, n) == (uint32_t)want, "crc32", lineno);
        /* Chunked feeding must give the same result. */
        uint32_t c = proto_crc32(0, data, n / 2);
        c = proto_crc32(c, data + n / 2, n - n / 2);
        check(c == (uint32_t)want, "crc32 chunked", lineno);
        free(data);
    } else if (strcmp(kind, "cobs") == 0) {
        size_t n, m;
        uint8_t* raw = unhex(strtok_r(NULL, " \n", &save), &n);
        uint8_t* enc = unhex(strtok_r(NULL, " \n", &save), &m);
        uint8_t* buf = malloc(PROTO_COBS_MAX_ENCODED(n) + 1);
        size_t k = proto_cobs_encode(raw, n, buf);
        check(k <= PROTO_COBS_MAX_ENCODED(n), "cobs encode bound", lineno);
        check(k == m && memcmp(buf, enc, m) == 0, "cobs encode", lineno);
        uint8_t* dec = malloc(m + 1);
        long d = proto_cobs_decode(enc, m, dec, m + 1);
        check(d == (long)n && memcmp(dec, raw, n) == 0, "cobs decode", lineno);
        /* In place, as the comment in protocol.h promises. */
        memcpy(dec, enc, m);
        d = proto_cobs_decode(dec, m, dec, m);
        check(d == (long)n && memcmp(dec, raw, n) == 0, "cobs decode in place", lineno);
        if (n > 0) {
            d = proto_cobs_decode(enc, m, dec, n - 1);
            check(d == -1, "cobs decode refuses a short output buffer", lineno);
        }
        free(raw);
        free(enc);
        free(buf);
        free(dec);
    } else if (strcmp(kind, "cobs_bad") == 0) {
        size_t m;
        uint8_t* enc = unhex(strtok_r(NULL, " \n", &save), &m);
        uint8_t out[4096];
        check(proto_cobs_decode(enc, m, out, sizeof(out)) == -1, "cobs_bad rejected", lineno);
        free(enc);
    } else if (strcmp(kind, "packet") == 0) {
        int type = atoi(strtok_r(NULL, " \n", &save));
        int seq = atoi(strtok_r(NULL, " \n", &save));
        size_t nb, np, nf;
        uint8_t* body = unhex(strtok_r(NULL, " \n", &save), &nb);
        uint8_t* pkt = unhex(strtok_r(NULL, " \n", &save), &np);
        uint8_t* frame = unhex(strtok_r(NULL, " \n", &save), &nf);
        uint8_t out[PROTO_MAX_PACKET];
        size_t k = proto_build_packet((uint8_t)type, (uint16_t)seq, body, nb, out, sizeof(out));
        check(k == np && memcmp(out, pkt, np) == 0, "build packet", lineno);
        uint8_t enc[PROTO_MAX_FRAME];
        size_t e = proto_cobs_encode(out, k, enc);
        enc[e++] = 0;
        check(e == nf && memcmp(enc, frame, nf) == 0, "frame bytes", lineno);
        proto_packet_t p;
        uint16_t s;
        int err = proto_parse_packet(pkt, np, &p, &s);
        check(err == 0 && p.type == type && p.seq == seq && p.body_len == nb &&
                  memcmp(p.body, body, nb) == 0 && s == seq,
              "parse packet", lineno);
        /* Byte-at-a-time receiver must deliver exactly the packet. */
        proto_rx_t rx;
        proto_rx_init(&rx);
        int last = PROTO_RX_NONE;
        for (size_t i = 0; i < nf; ++i) {
            last = proto_rx_push(&rx, frame[i]);
            if (i + 1 < nf) {
                check(last == PROTO_RX_NONE, "receiver waits for the delimiter", lineno);
            }
        }
        check(last == PROTO_RX_FRAME && rx.len == np && memcmp(rx.buf, pkt, np) == 0,
              "receiver delivers the packet", lineno);
        free(body);
        free(pkt);
        free(frame);
    } else if (strcmp(kind, "packet_bad") == 0) {
        size_t n;
        uint8_t* pkt = unhex(strtok_r(NULL, " \n", &save), &n);
        int want_err = atoi(strtok_r(NULL, " \n", &save));
        int want_seq = atoi(strtok_r(NULL, " \n", &save));
        proto_packet_t p;
        uint16_t s;
        int err = proto_parse_packet(pkt, n, &p, &s);
        if (err != want_err || s != want_seq) {
            printf("  got error %d seq %d, want %d %d\n", err, s, want_err, want_seq);
        }
        check(err == want_err && s == want_seq, "bad packet error code and seq", lineno);
        free(pkt);
    } else if (strcmp(kind, "stream") == 0) {
        size_t n;
        uint8_t* bytes = unhex(strtok_r(NULL, " \n", &save), &n);
        static proto_rx_t rx;
        proto_rx_init(&rx);
        char* ev = strtok_r(NULL, " \n", &save);
        for (size_t i = 0; i < n; ++i) {
            int r = proto_rx_push(&rx, bytes[i]);
            if (r == PROTO_RX_NONE || r == PROTO_RX_EMPTY) {
                continue;
            }
            if (ev == NULL) {
                check(0, "stream: an event more than expected", lineno);
                break;
            }
            if (strncmp(ev, "f:", 2) == 0) {
                size_t m;
                uint8_t* want = unhex(ev + 2, &m);
                check(r == PROTO_RX_FRAME && rx.len == m && memcmp(rx.buf, want, m) == 0,
                      "stream frame", lineno);
                free(want);
            } else if (strcmp(ev, "framing") == 0) {
                check(r == PROTO_RX_FRAMING, "stream framing", lineno);
            } else if (strcmp(ev, "oversize") == 0) {
                check(r == PROTO_RX_OVERSIZE, "stream oversize", lineno);
            }
            ev = strtok_r(NULL, " \n", &save);
        }
        check(ev == NULL, "stream: all expected events seen", lineno);
        free(bytes);
    } else if (strcmp(kind, "rle") == 0) {
        size_t n, m;
        uint8_t* px = unhex(strtok_r(NULL, " \n", &save), &n);
        uint8_t* rle = unhex(strtok_r(NULL, " \n", &save), &m);
        uint8_t out[784];
        check(proto_rle_decode(rle, m, out, sizeof(out)) == (long)n && memcmp(out, px, n) == 0,
              "rle decode", lineno);
        if (n > 0) {
            check(proto_rle_decode(rle, m, out, n - 1) == -1, "rle decode respects out_max",
                  lineno);
        }
        free(px);
        free(rle);
    } else if (strcmp(kind, "rle_bad") == 0) {
        size_t m;
        uint8_t* rle = unhex(strtok_r(NULL, " \n", &save), &m);
        uint8_t out[784];
        check(proto_rle_decode(rle, m, out, sizeof(out)) == -1, "rle_bad rejected", lineno);
        free(rle);
    } else {
        check(0, "unknown record kind", lineno);
    }
}

int main(void) {
    char* line = NULL;
    size_t cap = 0;
    long lineno = 0;
    while (getline(&line, &cap, stdin) > 0) {
        run_line(line, ++lineno);
    }
    free(line);
    printf("protocol vectors: %d passed, %d failed\n", g_passed, g_failed);
    return (g_failed == 0 && g_passed > 0) ? 0 : 1;
}
