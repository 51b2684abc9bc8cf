/* Port self-check image for test_qemu_port.py: calibrates SysTick ticks against a loop of
 * known instruction count, then echoes UART input (through the interrupt-driven ring buffer and
 * board_wait) until it receives EOT (0x04), then exits via semihosting with status 0. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "qemu_port.h"

/* 2 * n + 1 instructions between the two timer reads (n >= 1): `subs` + `bne`
 * per iteration, plus the `mov` that loads n. Thumb-2 assembly, so the compiler cannot change
 * the count. */
static uint32_t timed_loop(uint32_t n) {
    uint32_t t0 = board_ticks();
    __asm volatile(
        "mov r3, %0\n"
        "1:\n\t"
        "subs r3, r3, #1\n\t"
        "bne 1b\n"
        :
        : "r"(n)
        : "r3", "cc");
    return board_ticks() - t0;
}

int main(void) {
    board_init();
    qemu_uart_puts("hello board=");
    qemu_uart_puts(board_name());
    qemu_uart_puts(" timer=");
    qemu_uart_puts(board_timer_kind());
    qemu_uart_puts(" tick_hz=");
    qemu_uart_put_u32(board_tick_hz());
    qemu_uart_puts(" ticks_to_units=");
    qemu_uart_put_u32(board_ticks_to_units());
    qemu_uart_puts("\n");

    /* Two loop lengths: the difference cancels the fixed cost of the timer reads. The longer one
     * (700M instructions, 17.5M ticks) crosses a 2^24-tick SysTick reload: checks the extension. */
    static const uint32_t kLoops[] = {1u, 1000000u, 10000000u, 350000000u};
    for (size_t i = 0; i < sizeof(kLoops) / sizeof(kLoops[0]); i++) {
        qemu_uart_puts("calib loop_instructions=");
        qemu_uart_put_u32(2u * kLoops[i]);
        qemu_uart_puts(" ticks=");
        qemu_uart_put_u32(timed_loop(kLoops[i]));
        qemu_uart_puts("\n");
    }

    qemu_uart_puts("ready\n");
    for (;;) {
        uint8_t buf[64];
        size_t n = board_read(buf, sizeof(buf));
        if (n == 0) {
            board_wait();
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            if (buf[i] == 0x04u) {
                board_write(buf, i);
                qemu_uart_puts("\nstack_used=");
                qemu_uart_put_u32((uint32_t)board_stack_used());
                qemu_uart_puts(" stack_size=");
                qemu_uart_put_u32((uint32_t)board_stack_size());
                qemu_uart_puts("\n");
                return 0;
            }
        }
        board_write(buf, n);
    }
}
