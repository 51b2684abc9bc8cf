/* Board API: the only functions the portable core (benchcore) needs from a port.
 * One implementation per port (firmware/ports/<port>/, firmware/src/ for Arduino); only that file
 * includes board headers. Contract: docs/DEVELOPING.md, "Board API". */
#ifndef NANO_TFLM_BOARD_H_
#define NANO_TFLM_BOARD_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

void board_init(void);
size_t board_read(uint8_t* buf, size_t max);      /* non-blocking; returns bytes read (0: none) */
void board_write(const uint8_t* buf, size_t len); /* blocking */
void board_wait(void);                            /* idle until input may be there (wfi on Arm) */
uint32_t board_ticks(void);                       /* free-running, wraps at 2^32 */
const char* board_name(void);
const char* board_timer_kind(void); /* "cycles", "instructions", "us" */
uint32_t board_tick_hz(void);
uint32_t board_ticks_to_units(void); /* units (cycles/instructions) per tick */
uint32_t board_clock_hz(void);
size_t board_stack_size(void);
size_t board_stack_used(void); /* painted-stack high-water mark */

/* Timing the inference alone: the core calls board_link_hold() just before it starts the timer
 * around invoke and board_link_release() just after it stops it. A port whose transport buffers
 * safely while the link's receive interrupt is masked (flow control, nothing lost) masks it
 * there, so no link interrupt runs inside the timed region; one that cannot does nothing.
 * board_timing() names what the port does: "link-held" (receive interrupt masked during
 * invoke), "polled" (the link has no interrupt: it is read only when the core asks) or
 * "link-live" (link interrupts may run inside the timed region and are counted in latency).
 * board_link_irqs(): receive interrupts the port's own handler has taken since boot (wraps);
 * 0 for a port without one. The core reports how many fell inside the timed region. */
void board_link_hold(void);
void board_link_release(void);
const char* board_timing(void);
uint32_t board_link_irqs(void);

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_BOARD_H_ */
