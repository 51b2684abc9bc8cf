/* QEMU mps2-an386 port extras beyond the board API (firmware/lib/benchcore/board.h). */
#ifndef NANO_TFLM_QEMU_PORT_H_
#define NANO_TFLM_QEMU_PORT_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Word written over the free stack at reset; see board_stack_used(). */
#define kStackPaint 0xA5A5A5A5u

/* Ends the emulation with exit status `code` via semihosting SYS_EXIT_EXTENDED. QEMU must run
 * with `-semihosting-config enable=on,target=native`; without it the BKPT is a fault and the
 * CPU locks up, so first writes "\nexit=<code>\n" on UART0 for a host that watches the line. */
__attribute__((noreturn)) void qemu_exit(int code);

/* Writes `msg` on UART0 (polled, interrupts not needed) and exits with status 3. */
__attribute__((noreturn)) void qemu_fatal(const char* msg);

/* Writes `s` on CMSDK UART0, polled: safe in fault handlers and before board_init(). */
void qemu_uart_puts(const char* s);

/* Writes `v` in decimal on UART0, like qemu_uart_puts (for the port's test and bench images). */
void qemu_uart_put_u32(uint32_t v);
void qemu_uart_put_i32(int32_t v);

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_QEMU_PORT_H_ */
