/* nano-tflm serial protocol, version 1: the C side.
 *
 * The specification is docs/PROTOCOL.md; nanobench/protocol.py is the Python side. Both are
 * checked against the same byte vectors (the test suite's protocol_vectors.json).
 *
 * A frame on the wire is COBS(packet) followed by 0x00. A packet is
 *   u8 version | u8 type | u16le seq | u16le body_len | body | u32le crc32(bytes before it)
 * No board headers and no dynamic allocation here: this file is shared by every port.
 */
#ifndef NANO_TFLM_PROTOCOL_H_
#define NANO_TFLM_PROTOCOL_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_VERSION 1u
#define PROTO_HEADER_BYTES 6u
#define PROTO_CRC_BYTES 4u
#define PROTO_OVERHEAD_BYTES (PROTO_HEADER_BYTES + PROTO_CRC_BYTES)
/* The largest body either side sends or accepts: room for one 784-byte MNIST image plus
 * headroom for larger inputs and info texts. */
#define PROTO_MAX_BODY 1024u
#define PROTO_MAX_PACKET (PROTO_MAX_BODY + PROTO_OVERHEAD_BYTES)
/* COBS adds one code byte per started run of 254 bytes: n + ceil(n / 254), at least 1. */
#define PROTO_COBS_MAX_ENCODED(n) ((n) + ((n) + 253u) / 254u + ((n) == 0u ? 1u : 0u))
/* Encoded packet plus its 0x00 delimiter. */
#define PROTO_MAX_FRAME (PROTO_COBS_MAX_ENCODED(PROTO_MAX_PACKET) + 1u)
/* Sequence number used in an error reply when the request's header could not be read. */
#define PROTO_SEQ_NONE 0xFFFFu

/* Packet types. Requests are 0x01..0x06; a reply is the request type | 0x80. */
enum {
    PROTO_HELLO = 0x01,
    PROTO_INFER = 0x02,
    PROTO_STATS = 0x03,
    PROTO_RESET = 0x04,
    PROTO_SELFTEST = 0x05,
    PROTO_INFER_RLE = 0x06, /* INFER with zero-run-length coded pixels (proto_rle_decode) */
    PROTO_REPLY_FLAG = 0x80,
    PROTO_ERROR = 0x7F,
};

/* Error codes carried in the first body byte of a PROTO_ERROR packet. */
enum {
    PROTO_ERR_BAD_CRC = 1,
    PROTO_ERR_BAD_LENGTH = 2,
    PROTO_ERR_UNKNOWN_COMMAND = 3,
    PROTO_ERR_INPUT_SIZE = 4,
    PROTO_ERR_NOT_READY = 5,
    PROTO_ERR_VERSION = 6,
    PROTO_ERR_FRAMING = 7,
    PROTO_ERR_OVERSIZE = 8,
    PROTO_ERR_INVOKE = 9,
};

/* A parsed packet; body points into the buffer that was parsed (no copy). */
typedef struct {
    uint8_t version;
    uint8_t type;
    uint16_t seq;
    uint16_t body_len;
    const uint8_t* body;
} proto_packet_t;

/* CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320), identical to zlib.crc32.
 * Start with crc = 0; feed chunks by passing the previous result. */
uint32_t proto_crc32(uint32_t crc, const uint8_t* data, size_t len);

/* COBS-encodes len bytes of in into out (no delimiter). out must hold
 * PROTO_COBS_MAX_ENCODED(len) bytes and must not overlap in. Returns the encoded length. */
size_t proto_cobs_encode(const uint8_t* in, size_t len, uint8_t* out);

/* Decodes one COBS block (without delimiter). out may equal in (decoding in place is safe, the
 * output never overtakes the input). Returns the decoded length, or -1 when the input is not
 * valid COBS (a 0x00 inside, or a code byte pointing past the end) or out_max is too small. */
long proto_cobs_decode(const uint8_t* in, size_t len, uint8_t* out, size_t out_max);

/* Writes a packet (header, body, CRC; not encoded) into out of size out_max.
 * Returns its length, or 0 when body_len > PROTO_MAX_BODY or out_max is too small. */
size_t proto_build_packet(uint8_t type, uint16_t seq, const uint8_t* body, size_t body_len,
                          uint8_t* out, size_t out_max);

/* Checks a decoded packet. Returns 0 and fills *pkt on success, else a PROTO_ERR_* code.
 * Order of checks: size < 10 (BAD_LENGTH), version (VERSION), length field vs size
 * (BAD_LENGTH), CRC (BAD_CRC). The type is not checked here. *seq_out receives the packet's
 * sequence number when at least 4 bytes are there, else PROTO_SEQ_NONE. */
int proto_parse_packet(const uint8_t* buf, size_t len, proto_packet_t* pkt, uint16_t* seq_out);

/* Decodes an INFER_RLE body: each byte 1..255 is one pixel of that value; a 0x00 byte is
 * followed by a count n (1..255) of zero pixels. MNIST digits are ~80 % background, so this
 * cuts a request from 796 to ~216 bytes on the wire, and under QEMU the link is the bottleneck
 * (20-50 us of host time per received byte, measured). Writes at most out_max pixels; returns
 * the number of pixels, or -1 on a zero run of length 0, a missing count, or more than out_max
 * pixels. */
long proto_rle_decode(const uint8_t* in, size_t len, uint8_t* out, size_t out_max);

/* Streaming frame receiver: takes bytes one at a time, COBS-decoding into a fixed buffer, and
 * reports a finished frame at each 0x00 delimiter. A frame longer than the buffer is dropped up
 * to the next delimiter and reported as PROTO_RX_OVERSIZE; bytes are never lost from the next
 * frame, which is how the receiver resynchronizes. */
typedef struct {
    uint8_t buf[PROTO_MAX_PACKET];
    size_t len;      /* decoded bytes so far */
    size_t raw_len;  /* encoded bytes so far in this frame (for statistics) */
    uint8_t code;    /* current COBS code byte */
    uint8_t left;    /* data bytes left in the current COBS block */
    uint8_t started; /* a code byte has been read in this frame */
    uint8_t status;  /* PROTO_RX_* of the frame so far */
} proto_rx_t;

enum {
    PROTO_RX_NONE = 0,     /* byte consumed, frame not finished */
    PROTO_RX_FRAME = 1,    /* a complete decoded packet is in rx->buf[0..rx->len) */
    PROTO_RX_EMPTY = 2,    /* an empty frame (two delimiters in a row): ignore it */
    PROTO_RX_FRAMING = 3,  /* invalid COBS in the frame just ended */
    PROTO_RX_OVERSIZE = 4, /* the frame just ended did not fit; rx->buf holds its first bytes */
};

void proto_rx_init(proto_rx_t* rx);
/* Feeds one byte. Returns PROTO_RX_*. After any result other than PROTO_RX_NONE the caller uses
 * rx->buf/rx->len before the next call, which starts a new frame. */
int proto_rx_push(proto_rx_t* rx, uint8_t byte);

static inline void proto_put_u16(uint8_t* p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}
static inline void proto_put_u32(uint8_t* p, uint32_t v) {
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t proto_get_u16(const uint8_t* p) {
    return (uint16_t)(p[0] | ((uint16_t)p[1] << 8));
}
static inline uint32_t proto_get_u32(const uint8_t* p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_PROTOCOL_H_ */
