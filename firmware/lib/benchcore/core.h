/* The portable benchmark core: frame receiver, command dispatch, input conversion, timing,
 * counters and the self-test. It talks to the world only through board.h and backend.h, and
 * to the model only through the generated model_meta.h / model_selftest.h. No dynamic
 * allocation; every input byte sequence leads to a reply or is ignored, never to a hang.
 *
 * A port's main is:  board_init(); core_init(); for (;;) { core_poll(); board_wait(); }
 * (core_run() does exactly that), or on Arduino core_init() in setup() and core_poll() in
 * loop(). */
#ifndef NANO_TFLM_CORE_H_
#define NANO_TFLM_CORE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NANO_TFLM_FW_VERSION "0.1.0"

/* Initialises the backend and writes the boot line (and, in builds with
 * NANO_TFLM_SELFTEST_AT_BOOT, the self-test line). Call after board_init(). */
void core_init(void);

/* Writes text as one log line (docs/PROTOCOL.md): between frame delimiters, so the host shows
 * or ignores it and no frame is corrupted. For messages that arise outside the core, e.g. the
 * TFLM library's own log (backend_tflm.cpp). Safe from core_init() on, also during a command
 * (the line then precedes the reply). Text should be printable ASCII without newlines. */
void core_log(const char* text);

/* Reads every byte the board has buffered and handles each completed frame (replying to it).
 * Returns the number of bytes consumed (0: nothing was there; the caller may board_wait()). */
size_t core_poll(void);

/* Feeds bytes as if they had been read from the board (used by core_poll, and by tests). */
void core_feed(const uint8_t* data, size_t len);

/* Drops a half-received frame: for a port whose link can be replaced (the host build's TCP
 * server accepting a new client), so bytes of the old link never join the new one's first
 * frame. Counters are kept. */
void core_link_reset(void);

/* board_init(), core_init(), then core_poll()/board_wait() forever. */
void core_run(void);

/* Runs the self-test over model_selftest.h, writing "selftest: pass N/N" or
 * "selftest: FAIL ..." (no newline) into text (NUL-terminated, cut to max). Returns 0 on pass. */
int core_selftest(char* text, size_t max);

#ifdef __cplusplus
}
#endif

#endif /* NANO_TFLM_CORE_H_ */
