// TEST-ONLY stand-in (tests/tflm_stub/README.md) for mbed.h: the CMSIS-RTOS2 calls used
// (cmsis_os2.h signatures).
#pragma once
#include <stdint.h>
typedef void* osThreadId_t;
osThreadId_t osThreadGetId(void);
uint32_t osThreadGetStackSize(osThreadId_t thread_id);
uint32_t osThreadGetStackSpace(osThreadId_t thread_id);
