// Board port for the Arduino Nano 33 BLE (nRF52840, Cortex-M4F at 64 MHz) on the Arduino mbed
// core: the only file of the sketch that includes board headers (board.h is the contract).
//
// Two link flavours, chosen by platformio.ini:
// - real board (default): `Serial`, the USB CDC port (/dev/ttyACM0); latency in CPU cycles from
//   DWT->CYCCNT. USB has its own flow control, so the core's buffering is enough.
// - NANO_TFLM_SERIAL1 (env nano33ble_renode): the Serial1 pins (TX = P1.03, RX = P1.10, the
//   variant's PIN_SERIAL_TX/RX), which the mbed core drives through UARTE0 (0x40002000) and
//   Renode models as sysbus.uart0;
//   Renode has no USB device model, so `Serial` would be silent there. Renode's UART delivers a
//   whole request frame (~800 bytes) at once, back to back in interrupts, and the core's Serial1
//   keeps only 256 bytes (the rest is dropped), so this port reads the UART itself, the way the
//   core does (mbed::UnbufferedSerial + an RX interrupt callback), into an 8 KiB ring: room for
//   the host's whole pipelining window (4 frames).
// - NANO_TFLM_TIMER_VIRTUAL_US (env nano33ble_renode): Renode does not model DWT->CYCCNT on this
//   platform, and its virtual time is instruction count / PerformanceInMips. micros() runs on
//   that virtual time, so with `cpu PerformanceInMips NANO_TFLM_RENODE_MIPS` (renode/*.resc) one
//   microsecond tick is NANO_TFLM_RENODE_MIPS instructions: labelled "instructions", not cycles.
#include <Arduino.h>

#if defined(ARDUINO_ARCH_MBED)
// mbed::UnbufferedSerial, CMSIS-RTOS2 (osThreadGetStackSize/Space), the CMSIS core (DWT).
#include <mbed.h>
#endif

#include "board.h"

namespace {

#if defined(NANO_TFLM_SERIAL1)
constexpr char kBoardName[] = "nano33ble-renode";
#else
constexpr char kBoardName[] = "nano33ble";
#endif

#ifndef NANO_TFLM_SERIAL_BAUD
// UART line rate (USB CDC ignores it; Renode's UART model transfers at once regardless).
#define NANO_TFLM_SERIAL_BAUD 115200
#endif

#ifndef NANO_TFLM_RENODE_MIPS
#define NANO_TFLM_RENODE_MIPS 64  // must equal `cpu PerformanceInMips` in renode/nano33ble.resc
#endif

#if defined(F_CPU)
constexpr uint32_t kClockHz = F_CPU;  // 64 MHz, from PlatformIO's board definition
#else
constexpr uint32_t kClockHz = 64000000u;
#endif

#if defined(NANO_TFLM_SERIAL1)
// RX ring filled by the UART interrupt, drained by board_read: one producer, one consumer, so
// the indices need no lock (each is written by one side only; 32-bit accesses are atomic).
constexpr uint32_t kRxRingBytes = 8192;  // power of two
static_assert((kRxRingBytes & (kRxRingBytes - 1)) == 0, "ring size must be a power of two");
uint8_t g_rx_ring[kRxRingBytes];
volatile uint32_t g_rx_head = 0;  // next write (interrupt)
volatile uint32_t g_rx_tail = 0;  // next read (board_read)
mbed::UnbufferedSerial *g_uart = nullptr;

void on_uart_rx() {
  // Same loop as the core's UART::on_rx: take every byte the driver holds.
  while (g_uart->readable()) {
    char c;
    g_uart->read(&c, 1);
    const uint32_t head = g_rx_head;
    if (head - g_rx_tail < kRxRingBytes) {  // full: drop; the frame's CRC check reports it
      g_rx_ring[head & (kRxRingBytes - 1)] = static_cast<uint8_t>(c);
      g_rx_head = head + 1;
    }
  }
}
#else
// How long board_init waits for a host to open the USB port, so that the boot line is not lost
// when a terminal is already waiting; the firmware runs without a host after that.
constexpr unsigned long kUsbWaitMs = 2000;

// A USB write that makes no progress this many times in a row is dropped (host gone), so a
// vanished host cannot hang the firmware.
constexpr int kMaxStalledWrites = 1000;
#endif

}  // namespace

extern "C" {

void board_init(void) {
#if defined(NANO_TFLM_SERIAL1)
  // Constructed here, not at static-init time, so the mbed OS is up; never destroyed. The pins
  // are Serial1's (variant.cpp: D0/TX = P1_3, D1/RX = P1_10), named directly as variant.cpp does.
  static mbed::UnbufferedSerial uart(P1_3, P1_10, NANO_TFLM_SERIAL_BAUD);
  g_uart = &uart;
  uart.attach(&on_uart_rx, mbed::SerialBase::RxIrq);
#else
  Serial.begin(NANO_TFLM_SERIAL_BAUD);
  const unsigned long start = millis();
  while (!Serial && millis() - start < kUsbWaitMs) {
    delay(10);
  }
#endif
#if !defined(NANO_TFLM_TIMER_VIRTUAL_US)
  // The Nano 33 BLE variant's initVariant() clears CoreDebug->DEMCR (an erratum: the I2C pull-up
  // shares the SWO pin), which also stops the DWT: set TRCENA again, then start CYCCNT. Trace
  // output stays off (NRF_CLOCK->TRACECONFIG is untouched).
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
#endif
}

size_t board_read(uint8_t *buf, size_t max) {
  size_t n = 0;
#if defined(NANO_TFLM_SERIAL1)
  uint32_t tail = g_rx_tail;
  const uint32_t head = g_rx_head;
  while (n < max && tail != head) {
    buf[n++] = g_rx_ring[tail & (kRxRingBytes - 1)];
    ++tail;
  }
  g_rx_tail = tail;
#else
  while (n < max) {
    const int c = Serial.read();
    if (c < 0) {
      break;
    }
    buf[n++] = static_cast<uint8_t>(c);
  }
#endif
  return n;
}

void board_write(const uint8_t *buf, size_t len) {
#if defined(NANO_TFLM_SERIAL1)
  // UnbufferedSerial writes block until every byte is in the UART.
  g_uart->write(buf, len);
#else
  int stalled = 0;
  while (len > 0) {
    const size_t n = Serial.write(buf, len);
    if (n == 0) {
      if (++stalled >= kMaxStalledWrites || !Serial) {
        return;
      }
      yield();
      continue;
    }
    stalled = 0;
    buf += n;
    len -= n;
  }
#endif
}

// Lets the mbed RTOS run its other threads (USB stack, serial events) while the host is
// quiet; yield() is the Arduino API for that on every core.
void board_wait(void) { yield(); }

uint32_t board_ticks(void) {
#if defined(NANO_TFLM_TIMER_VIRTUAL_US)
  return static_cast<uint32_t>(micros());
#else
  return DWT->CYCCNT;
#endif
}

const char *board_name(void) { return kBoardName; }

const char *board_timer_kind(void) {
#if defined(NANO_TFLM_TIMER_VIRTUAL_US)
  return "instructions";
#else
  return "cycles";
#endif
}

uint32_t board_tick_hz(void) {
#if defined(NANO_TFLM_TIMER_VIRTUAL_US)
  return 1000000u;  // virtual microseconds
#else
  return kClockHz;
#endif
}

uint32_t board_ticks_to_units(void) {
#if defined(NANO_TFLM_TIMER_VIRTUAL_US)
  return NANO_TFLM_RENODE_MIPS;
#else
  return 1u;
#endif
}

uint32_t board_clock_hz(void) { return kClockHz; }

// Stack figures are the mbed main thread's (setup/loop run there). RTX paints each thread stack
// with a watermark pattern when mbed's stack statistics are on (MBED_ALL_STATS_ENABLED in the
// Nano 33 BLE's mbed_config.h); osThreadGetStackSpace scans for the deepest overwritten word.
size_t board_stack_size(void) {
#if defined(ARDUINO_ARCH_MBED)
  return osThreadGetStackSize(osThreadGetId());
#else
  return 0u;
#endif
}

size_t board_stack_used(void) {
#if defined(ARDUINO_ARCH_MBED)
  const osThreadId_t self = osThreadGetId();
  const uint32_t size = osThreadGetStackSize(self);
  const uint32_t space = osThreadGetStackSpace(self);
  return space <= size ? size - space : 0u;
#else
  return 0u;
#endif
}

}  // extern "C"
