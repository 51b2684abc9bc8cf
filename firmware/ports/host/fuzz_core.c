/* libFuzzer harness of the benchmark core: protocol.c (COBS receiver, packet parser) and core.c
 * (command dispatch, input conversion, replies) with the real AOT backend of a model.
 *
 *   make -C firmware/ports/host fuzz      (needs clang: -fsanitize=fuzzer,address,undefined)
 *   build/host-fuzz/fuzz_core -max_total_time=60
 *
 * Each input is a byte stream as a host could send it. Besides the sanitizers, the harness
 * checks the protocol's promise: every non-empty delimited chunk gets exactly one reply frame
 * (a frame ends with the 0x00 delimiter), and nothing else is written; a violation aborts. A
 * chunk left open at the end of an input is dropped (core_link_reset), so inputs do not depend
 * on each other. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "board.h"
#include "core.h"

/* Delimiters written since the last reset: one per reply frame. */
static size_t g_frames_out = 0;
static int g_ready = 0;

size_t board_read(uint8_t* buf, size_t max) {
    (void)buf;
    (void)max;
    return 0u; /* input comes through core_feed */
}

void board_write(const uint8_t* buf, size_t len) {
    for (size_t i = 0; i < len; ++i) {
        g_frames_out += (buf[i] == 0u);
    }
}

void board_init(void) {}
void board_wait(void) {}
/* A counter, not a clock: inputs must replay the same way. */
uint32_t board_ticks(void) {
    static uint32_t t = 0;
    return t += 7u;
}
const char* board_name(void) {
    return "fuzz";
}
const char* board_timer_kind(void) {
    return "us";
}
uint32_t board_tick_hz(void) {
    return 1000000u;
}
uint32_t board_ticks_to_units(void) {
    return 1u;
}
uint32_t board_clock_hz(void) {
    return 0u;
}
/* Input arrives through core_feed only: nothing to hold during invoke. */
void board_link_hold(void) {}
void board_link_release(void) {}
const char* board_timing(void) {
    return "polled";
}
uint32_t board_link_irqs(void) {
    return 0u;
}
size_t board_stack_size(void) {
    return 0u;
}
size_t board_stack_used(void) {
    return 0u;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (!g_ready) {
        core_init(); /* boot line: not counted */
        g_ready = 1;
    }
    core_link_reset();
    g_frames_out = 0;
    size_t chunks = 0;
    size_t open = 0; /* bytes in the chunk being received */
    for (size_t i = 0; i < size; ++i) {
        if (data[i] == 0u) {
            chunks += (open > 0u);
            open = 0;
        } else {
            ++open;
        }
    }
    core_feed(data, size);
    if (g_frames_out != chunks) {
        abort(); /* a chunk without exactly one reply: the protocol's promise is broken */
    }
    return 0;
}
