// nano-tflm sketch for the Arduino Nano 33 BLE: the benchmark core (firmware/lib/benchcore)
// behind the board port in board_nano33ble.cpp, with the backend chosen by platformio.ini.
// Protocol: docs/PROTOCOL.md. Flash with `pio run -t upload`, then run tools/bench.py.
#include <Arduino.h>

#include "board.h"
#include "core.h"

// The backend header is what makes PlatformIO build the backend library; each env lib_ignores
// the other one, so only the selected implementation of backend.h is linked.
#if defined(NANO_TFLM_BACKEND_AOT)
#include "kernels.h"  // firmware/lib/backend_aot
#else
#include "backend_tflm.h"
#endif

void setup() {
    board_init();
    core_init();  // backend init, boot line (and the self-test line in selftest builds)
}

void loop() {
    if (core_poll() == 0) {
        board_wait();
    }
}
