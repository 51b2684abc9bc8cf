// TEST-ONLY stand-in (tests/tflm_stub/README.md). The real one is empty as well: including it
// makes the Arduino toolchain build the library.
#pragma once
