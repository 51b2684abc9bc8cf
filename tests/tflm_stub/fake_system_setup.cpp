// TEST-ONLY (tests/tflm_stub/README.md): the library's DebugLog as its system_setup.cpp defines
// it for the Nano 33 BLE, Serial.print of the text, i.e. raw bytes on the protocol's link (here
// the host firmware's stdout). A separate file, as in the library: -Wl,--wrap=DebugLog
// redirects only references from other object files.
#include <string.h>
#include <unistd.h>

#include "tensorflow/lite/micro/debug_log.h"

extern "C" void DebugLog(const char* s) {
    ssize_t n = write(STDOUT_FILENO, s, strlen(s));
    (void)n;
}
