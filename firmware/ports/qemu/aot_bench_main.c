/* AOT benchmark image for tools/aot_bench.py: runs model_aot_invoke on the int8 inputs compiled
 * into bench_inputs.c and prints, per input, the SysTick ticks around the call only and the
 * output vector in hex:
 *   bench variant=<c99|dsp> n=<N> input_bytes=<I> output_bytes=<O> arena_bytes=<A>
 * ticks_to_units=40 r <index> <rc> <ticks> <hex output> bench stack_used=<bytes>
 * overhead_ticks=<ticks of an empty timed interval> then exits via semihosting (status 0, or 1 if
 * any invoke failed). Inputs are compiled in, not sent over the UART, so the run is deterministic
 * and fast. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "board.h"
#include "kernels.h"
#include "model_aot.h"
#include "qemu_port.h"

extern const int8_t g_bench_inputs[];
extern const uint32_t g_bench_count;

static void put_hex(const int8_t* p, size_t n) {
    static const char kHex[] = "0123456789abcdef";
    char buf[2];
    for (size_t i = 0; i < n; i++) {
        buf[0] = kHex[((uint8_t)p[i]) >> 4];
        buf[1] = kHex[((uint8_t)p[i]) & 0xFu];
        board_write((const uint8_t*)buf, 2);
    }
}

/* Keeps the call out of line so that the timed interval is exactly the call. */
__attribute__((noinline)) static int timed_invoke(const int8_t* in, int8_t* out, uint32_t* ticks) {
    const uint32_t t0 = board_ticks();
    const int rc = model_aot_invoke(in, out);
    *ticks = board_ticks() - t0;
    return rc;
}

int main(void) {
    board_init();
    static int8_t out[MODEL_AOT_OUTPUT_BYTES];
    qemu_uart_puts("bench variant=" NANO_TFLM_KERNELS_VARIANT " n=");
    qemu_uart_put_u32(g_bench_count);
    qemu_uart_puts(" input_bytes=");
    qemu_uart_put_u32(MODEL_AOT_INPUT_BYTES);
    qemu_uart_puts(" output_bytes=");
    qemu_uart_put_u32(MODEL_AOT_OUTPUT_BYTES);
    qemu_uart_puts(" arena_bytes=");
    qemu_uart_put_u32(MODEL_AOT_ARENA_BYTES);
    qemu_uart_puts(" ticks_to_units=");
    qemu_uart_put_u32(board_ticks_to_units());
    qemu_uart_puts("\n");
    int failed = 0;
    for (uint32_t i = 0; i < g_bench_count; i++) {
        uint32_t ticks = 0;
        const int rc =
            timed_invoke(g_bench_inputs + (size_t)i * MODEL_AOT_INPUT_BYTES, out, &ticks);
        failed |= rc != 0;
        qemu_uart_puts("r ");
        qemu_uart_put_u32(i);
        qemu_uart_puts(rc == 0 ? " 0 " : " 1 ");
        qemu_uart_put_u32(ticks);
        qemu_uart_puts(" ");
        put_hex(out, MODEL_AOT_OUTPUT_BYTES);
        qemu_uart_puts("\n");
    }
    const uint32_t t0 = board_ticks();
    const uint32_t overhead = board_ticks() - t0;
    qemu_uart_puts("bench stack_used=");
    qemu_uart_put_u32((uint32_t)board_stack_used());
    qemu_uart_puts(" overhead_ticks=");
    qemu_uart_put_u32(overhead);
    qemu_uart_puts("\n");
    return failed;
}
