// Board port for the Arduino Nano 33 BLE (nRF52840, Cortex-M4F at 64 MHz) on the Arduino mbed
// core: the only file of the sketch that includes board headers (board.h is the contract).
//
// Two link flavours, chosen by platformio.ini:
// - real board (default): `Serial`, the USB CDC port (/dev/ttyACM0); latency in CPU cycles from
//   DWT->CYCCNT. USB has its own flow control, so the core's buffering is enough.
// - NANO_TFLM_SERIAL1 (env nano33ble_renode): the Serial1 pins (TX = P1.03, RX = P1.10, the
//   variant's PIN_SERIAL_TX/RX) on UARTE0 (0x40002000, Renode's sysbus.uart0; Renode has no USB
//   device model, so `Serial` would be silent there), driven by our own driver (nrf52_uarte.c),
//   not the core's Serial1/mbed serial HAL. mbed's nRF52 serial_api.c receives into 1-byte
//   EasyDMA buffers and relies on the ENDRX_STARTRX shortcut to start the next one; Renode's UART
//   model does not implement SHORTS, so with the core's serial only the first received byte
//   arrived (renode issue 796) and every later one was DMA-written past mbed's buffer. Our
//   driver starts each 1-byte transaction itself from the ENDRX interrupt into an 8 KiB ring
//   (room for the host's whole pipelining window). It drives silicon the same way, so a real
//   board can use this link too (without NANO_TFLM_RENODE).
// - NANO_TFLM_RENODE (env nano33ble_renode): the restart order Renode's model needs (see
//   nrf52_uarte.h), and latency labelled "instructions": renode/nano33ble.resc adds Renode's DWT
//   model at NANO_TFLM_RENODE_MIPS MHz with `cpu PerformanceInMips NANO_TFLM_RENODE_MIPS`, so
//   one CYCCNT tick is one executed instruction (Renode does not count cycles). CYCCNT, not
//   micros(): Renode's DWT syncs the CPU's virtual time on every read, while mbed's us_ticker
//   (TIMER1 CAPTURE) can lag by up to one time quantum (100 us = 6,400 instructions).
#include <Arduino.h>

#if defined(ARDUINO_ARCH_MBED)
// CMSIS-RTOS2 (osThreadGetStackSize/Space), the CMSIS core (DWT, NVIC), the nRF52840 MDK.
#include <mbed.h>
#endif

#include "board.h"
#if defined(NANO_TFLM_SERIAL1)
#include "nrf52_uarte.h"
#endif

namespace {

#if defined(NANO_TFLM_RENODE)
constexpr char kBoardName[] = "nano33ble-renode";
#else
constexpr char kBoardName[] = "nano33ble";
#endif

#ifndef NANO_TFLM_SERIAL_BAUD
// USB CDC line rate (ignored by USB). The Serial1 link runs at 115200 (NRF52_UARTE_BAUD_115200);
// Renode's UART model transfers at once regardless.
#define NANO_TFLM_SERIAL_BAUD 115200
#endif

#ifndef NANO_TFLM_RENODE_MIPS
#define NANO_TFLM_RENODE_MIPS 64u  // `cpu PerformanceInMips` and the DWT MHz in renode/*.resc
#endif

#if defined(F_CPU)
constexpr uint32_t kClockHz = F_CPU;  // 64 MHz, from PlatformIO's board definition
#else
constexpr uint32_t kClockHz = 64000000u;
#endif

#if defined(NANO_TFLM_SERIAL1)
#if defined(NANO_TFLM_RENODE)
constexpr nrf52_uarte_restart_t kUarteRestart = NRF52_UARTE_RESTART_RENODE;
#else
constexpr nrf52_uarte_restart_t kUarteRestart = NRF52_UARTE_RESTART_SILICON;
#endif
// Serial1's pins: TX = P1.03, RX = P1.10 (the variant's PIN_SERIAL_TX/RX).
constexpr uint32_t kTxPort = 1, kTxPin = 3, kRxPort = 1, kRxPin = 10;
// High (0 is the highest): on silicon, bytes that arrive while the handler is held up wait in
// the UARTE's RX FIFO, which holds only a few (nRF52840 PS; not checked on a board here), and at
// 115200 baud one arrives every 87 us.
constexpr uint32_t kUarteIrqPriority = 1;
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
    // TXD an output at idle level (high), RXD an input with its buffer connected, as the UARTE
    // expects of its pins (nRF52840 PS, UARTE pin configuration).
    NRF_P1->OUTSET = 1u << kTxPin;
    NRF_P1->PIN_CNF[kTxPin] = (GPIO_PIN_CNF_DIR_Output << GPIO_PIN_CNF_DIR_Pos) |
                              (GPIO_PIN_CNF_INPUT_Disconnect << GPIO_PIN_CNF_INPUT_Pos);
    NRF_P1->PIN_CNF[kRxPin] = (GPIO_PIN_CNF_DIR_Input << GPIO_PIN_CNF_DIR_Pos) |
                              (GPIO_PIN_CNF_INPUT_Connect << GPIO_PIN_CNF_INPUT_Pos);
    nrf52_uarte_init(NRF52_UARTE0_BASE, NRF52_UARTE_PSEL(kTxPort, kTxPin),
                     NRF52_UARTE_PSEL(kRxPort, kRxPin), NRF52_UARTE_BAUD_115200, kUarteRestart);
    // mbed keeps the vector table in RAM (its nRF52 serial HAL installs its UARTE handler the
    // same way), so the handler is installed at run time rather than by a strong
    // UARTE0_UART0_IRQHandler symbol.
    NVIC_SetVector(UARTE0_UART0_IRQn,
                   static_cast<uint32_t>(reinterpret_cast<uintptr_t>(&nrf52_uarte_irq)));
    NVIC_SetPriority(UARTE0_UART0_IRQn, kUarteIrqPriority);
    NVIC_ClearPendingIRQ(UARTE0_UART0_IRQn);
    NVIC_EnableIRQ(UARTE0_UART0_IRQn);
#else
    Serial.begin(NANO_TFLM_SERIAL_BAUD);
    const unsigned long start = millis();
    while (!Serial && millis() - start < kUsbWaitMs) {
        delay(10);
    }
#endif
    // The Nano 33 BLE variant's initVariant() clears CoreDebug->DEMCR (an erratum: the I2C pull-up
    // shares the SWO pin), which also stops the DWT: set TRCENA again, then start CYCCNT. Trace
    // output stays off (NRF_CLOCK->TRACECONFIG is untouched). Under Renode this reaches the DWT
    // model the .resc adds, which does not look at TRCENA.
    CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
    DWT->CYCCNT = 0;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
}

size_t board_read(uint8_t* buf, size_t max) {
    size_t n = 0;
#if defined(NANO_TFLM_SERIAL1)
    n = nrf52_uarte_read(buf, max);
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

void board_write(const uint8_t* buf, size_t len) {
#if defined(NANO_TFLM_SERIAL1)
    nrf52_uarte_write(buf, len);  // returns when EasyDMA has read every byte
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
void board_wait(void) {
    yield();
}

uint32_t board_ticks(void) {
    return DWT->CYCCNT;
}

const char* board_name(void) {
    return kBoardName;
}

const char* board_timer_kind(void) {
#if defined(NANO_TFLM_RENODE)
    return "instructions";
#else
    return "cycles";
#endif
}

uint32_t board_tick_hz(void) {
#if defined(NANO_TFLM_RENODE)
    return NANO_TFLM_RENODE_MIPS * 1000000u;  // the DWT model's frequency (renode/*.resc)
#else
    return kClockHz;
#endif
}

uint32_t board_ticks_to_units(void) {
    return 1u;
}

uint32_t board_clock_hz(void) {
    return kClockHz;
}

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

// ---- Timing the inference alone (board.h, board_link_hold) ----
// Not run on a board or in Renode here: what follows is unchecked on hardware.
#if defined(NANO_TFLM_SERIAL1)
// Serial1 (our UARTE driver; Renode, or a board without NANO_TFLM_RENODE): not held. A real
// UARTE holds only a few received bytes (no flow control on these pins), so masking its
// interrupt through a ~20 ms invoke at 115200 baud would drop bytes; whether Renode's UART model
// would buffer instead is unchecked. The interrupts of bytes that arrive during invoke count in
// its latency; board_link_irqs does not count them (nrf52_uarte_irq is the vector).
void board_link_hold(void) {}
void board_link_release(void) {}
const char* board_timing(void) {
    return "link-live";
}
uint32_t board_link_irqs(void) {
    return 0u;
}
#else
// USB CDC: the USBD interrupt is masked during invoke. The nRF52840's USBD answers the host's
// OUT tokens with NAK until software has taken the endpoint's last packet (EasyDMA), so the
// host keeps the bytes (USB's own flow control): nothing is lost, the transfer just waits. mbed's
// nRF52840 USBPhy masks USBD_IRQn itself in its ISR and unmasks it when it has processed the
// events: so hold only when it is enabled, and release only what hold masked.
namespace {
bool g_usb_held = false;
}  // namespace

void board_link_hold(void) {
    g_usb_held = NVIC_GetEnableIRQ(USBD_IRQn) != 0;
    if (g_usb_held) {
        NVIC_DisableIRQ(USBD_IRQn);
        __DSB();
        __ISB();
    }
}

void board_link_release(void) {
    if (g_usb_held) {
        g_usb_held = false;
        NVIC_EnableIRQ(USBD_IRQn);
    }
}

const char* board_timing(void) {
    return "link-held";
}

uint32_t board_link_irqs(void) {
    return 0u;
}  // mbed's driver owns the USBD interrupt
#endif

}  // extern "C"
