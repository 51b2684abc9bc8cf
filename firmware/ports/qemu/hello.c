/* Port self-check image for tests/test_qemu_port.py: calibrates SysTick ticks against a loop of
 * known instruction count, then echoes UART input (through the interrupt-driven ring buffer and
 * board_wait) until it receives EOT (0x04), then exits via semihosting with status 0. */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "qemu_port.h"

static void put_str(const char *s) {
  size_t n = 0;
  while (s[n] != '\0') {
    n++;
  }
  board_write((const uint8_t *)s, n);
}

static void put_u32(uint32_t v) {
  char buf[11];
  int i = 10;
  buf[i] = '\0';
  do {
    buf[--i] = (char)('0' + v % 10u);
    v /= 10u;
  } while (v != 0u);
  put_str(&buf[i]);
}

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
  put_str("hello board=");
  put_str(board_name());
  put_str(" timer=");
  put_str(board_timer_kind());
  put_str(" tick_hz=");
  put_u32(board_tick_hz());
  put_str(" ticks_to_units=");
  put_u32(board_ticks_to_units());
  put_str("\n");

  /* Two loop lengths: the difference cancels the fixed cost of the timer reads. The longer one
   * (700M instructions, 17.5M ticks) crosses a 2^24-tick SysTick reload: checks the extension. */
  static const uint32_t kLoops[] = {1u, 1000000u, 10000000u, 350000000u};
  for (size_t i = 0; i < sizeof(kLoops) / sizeof(kLoops[0]); i++) {
    put_str("calib loop_instructions=");
    put_u32(2u * kLoops[i]);
    put_str(" ticks=");
    put_u32(timed_loop(kLoops[i]));
    put_str("\n");
  }

  put_str("ready\n");
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
        put_str("\nstack_used=");
        put_u32((uint32_t)board_stack_used());
        put_str(" stack_size=");
        put_u32((uint32_t)board_stack_size());
        put_str("\n");
        return 0;
      }
    }
    board_write(buf, n);
  }
}
