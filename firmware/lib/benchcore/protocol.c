/* nano-tflm serial protocol, version 1 (see protocol.h and docs/PROTOCOL.md). */
#include "protocol.h"

#include <string.h>

/* Nibble table for the reflected CRC-32: 64 bytes of flash instead of 1 KiB, 2 lookups per
 * byte. The link, not the CRC, limits throughput on every port. */
static const uint32_t kCrcNibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t proto_crc32(uint32_t crc, const uint8_t* data, size_t len) {
    crc = ~crc;
    for (size_t i = 0; i < len; ++i) {
        crc ^= data[i];
        crc = (crc >> 4) ^ kCrcNibble[crc & 0x0Fu];
        crc = (crc >> 4) ^ kCrcNibble[crc & 0x0Fu];
    }
    return ~crc;
}

size_t proto_cobs_encode(const uint8_t* in, size_t len, uint8_t* out) {
    size_t code_pos = 0;
    size_t out_pos = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < len; ++i) {
        if (in[i] == 0u) {
            out[code_pos] = code;
            code_pos = out_pos++;
            code = 1;
        } else {
            out[out_pos++] = in[i];
            ++code;
            /* A full block (254 data bytes) ends without an implied zero; start the next block only
             * if more data follows, so 254 non-zero bytes encode to 255 bytes, as in the COBS
             * paper. */
            if (code == 0xFFu) {
                out[code_pos] = code;
                code = 1;
                if (i + 1 < len) {
                    code_pos = out_pos++;
                } else {
                    return out_pos;
                }
            }
        }
    }
    out[code_pos] = code;
    return out_pos;
}

long proto_cobs_decode(const uint8_t* in, size_t len, uint8_t* out, size_t out_max) {
    size_t in_pos = 0;
    size_t out_pos = 0;
    while (in_pos < len) {
        uint8_t code = in[in_pos++];
        if (code == 0u) {
            return -1;
        }
        size_t run = (size_t)code - 1u;
        if (run > len - in_pos || out_pos + run > out_max) {
            return -1;
        }
        for (size_t k = 0; k < run; ++k) {
            uint8_t b = in[in_pos++];
            if (b == 0u) {
                return -1;
            }
            out[out_pos++] = b;
        }
        if (code != 0xFFu && in_pos < len) {
            if (out_pos >= out_max) {
                return -1;
            }
            out[out_pos++] = 0u;
        }
    }
    return (long)out_pos;
}

size_t proto_build_packet(uint8_t type, uint16_t seq, const uint8_t* body, size_t body_len,
                          uint8_t* out, size_t out_max) {
    if (body_len > PROTO_MAX_BODY || out_max < body_len + PROTO_OVERHEAD_BYTES) {
        return 0;
    }
    out[0] = (uint8_t)PROTO_VERSION;
    out[1] = type;
    proto_put_u16(&out[2], seq);
    proto_put_u16(&out[4], (uint16_t)body_len);
    if (body_len > 0u && body != &out[PROTO_HEADER_BYTES]) {
        memmove(&out[PROTO_HEADER_BYTES], body, body_len);
    }
    size_t n = PROTO_HEADER_BYTES + body_len;
    proto_put_u32(&out[n], proto_crc32(0u, out, n));
    return n + PROTO_CRC_BYTES;
}

int proto_parse_packet(const uint8_t* buf, size_t len, proto_packet_t* pkt, uint16_t* seq_out) {
    *seq_out = (len >= 4u) ? proto_get_u16(&buf[2]) : (uint16_t)PROTO_SEQ_NONE;
    if (len < PROTO_OVERHEAD_BYTES) {
        return PROTO_ERR_BAD_LENGTH;
    }
    if (buf[0] != PROTO_VERSION) {
        return PROTO_ERR_VERSION;
    }
    uint16_t body_len = proto_get_u16(&buf[4]);
    if (body_len > PROTO_MAX_BODY || (size_t)body_len + PROTO_OVERHEAD_BYTES != len) {
        return PROTO_ERR_BAD_LENGTH;
    }
    size_t n = PROTO_HEADER_BYTES + body_len;
    if (proto_crc32(0u, buf, n) != proto_get_u32(&buf[n])) {
        return PROTO_ERR_BAD_CRC;
    }
    pkt->version = buf[0];
    pkt->type = buf[1];
    pkt->seq = proto_get_u16(&buf[2]);
    pkt->body_len = body_len;
    pkt->body = &buf[PROTO_HEADER_BYTES];
    return 0;
}

long proto_rle_decode(const uint8_t* in, size_t len, uint8_t* out, size_t out_max) {
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        if (in[i] != 0u) {
            if (n >= out_max) {
                return -1;
            }
            out[n++] = in[i];
            continue;
        }
        if (++i >= len || in[i] == 0u || (size_t)in[i] > out_max - n) {
            return -1;
        }
        memset(&out[n], 0, in[i]);
        n += in[i];
    }
    return (long)n;
}

void proto_rx_init(proto_rx_t* rx) {
    rx->len = 0;
    rx->raw_len = 0;
    rx->code = 0;
    rx->left = 0;
    rx->started = 0;
    rx->status = PROTO_RX_NONE;
}

static void rx_emit(proto_rx_t* rx, uint8_t b) {
    if (rx->len < sizeof(rx->buf)) {
        rx->buf[rx->len++] = b;
    } else {
        rx->status = PROTO_RX_OVERSIZE;
    }
}

int proto_rx_push(proto_rx_t* rx, uint8_t byte) {
    if (byte == 0u) {
        int result;
        if (rx->raw_len == 0u) {
            result = PROTO_RX_EMPTY;
        } else if (rx->status == PROTO_RX_OVERSIZE) {
            result = PROTO_RX_OVERSIZE;
        } else if (rx->status == PROTO_RX_FRAMING || rx->left != 0u) {
            /* A delimiter inside a COBS block: the frame was cut short. */
            result = PROTO_RX_FRAMING;
        } else {
            result = PROTO_RX_FRAME;
        }
        size_t len = rx->len;
        proto_rx_init(rx);
        /* Keep the decoded bytes readable until the next push (header for the error's seq). */
        rx->len = len;
        rx->raw_len = 0;
        return result;
    }
    if (rx->raw_len == 0u) {
        /* First byte of a new frame: forget the previous frame's bytes. */
        rx->len = 0;
    }
    ++rx->raw_len;
    if (rx->status != PROTO_RX_NONE) {
        return PROTO_RX_NONE; /* already bad: skip to the delimiter */
    }
    if (rx->left == 0u) {
        /* A code byte. The block before it ends in an implied zero unless it was a full block. */
        if (rx->started && rx->code != 0xFFu) {
            rx_emit(rx, 0u);
        }
        rx->started = 1;
        rx->code = byte;
        rx->left = (uint8_t)(byte - 1u);
    } else {
        rx_emit(rx, byte);
        --rx->left;
    }
    return PROTO_RX_NONE;
}
