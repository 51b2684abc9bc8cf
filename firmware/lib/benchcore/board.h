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
size_t board_read(uint8_t *buf, size_t max);      /* non-blocking; returns bytes read (0: none) */
void board_write(const uint8_t *buf, size_t len);  /* blocking */
void board_wait(void);                             /* idle until input may be there (wfi on Arm) */
uint32_t board_ticks(void);                        /* free-running, wraps at 2^32 */
const char *board_name(void);
const char *board_timer_kind(void);                /* "cycles", "instructions", "us" */
uint32_t board_tick_hz(void);
uint32_t board_ticks_to_units(void);               /* units (cycles/instructions) per tick */
uint32_t board_clock_hz(void);
size_t board_stack_size(void);
size_t board_stack_used(void);                     /* painted-stack high-water mark */

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_BOARD_H_ */
