// UARTE0 driver for the nRF52840 (Serial1 pins of the Nano 33 BLE) that does not depend on the
// SHORTS register: every received byte ends a 1-byte EasyDMA transaction (ENDRX, the only
// interrupt enabled) and the interrupt handler starts the next one itself (TASKS_STARTRX).
//
// Why not the mbed core's serial HAL: mbed's nRF52 serial_api.c receives into 1-byte EasyDMA
// buffers and relies on the ENDRX_STARTRX shortcut to start the next transaction. Renode's
// NRF52840_UART model (v1.16.0 and its head) never implements SHORTS (0x200 is named but not a
// register), so after the first byte nothing restarts reception: Renode keeps DMA-writing past
// the 1-byte buffer without ever raising ENDRX again, and Serial1 receives only its first
// character (renode issue 796).
//
// Portable C99: the registers are reached through NRF52_UARTE_READ / NRF52_UARTE_WRITE and
// buffer addresses through NRF52_UARTE_DMA_ADDR, which default to the memory-mapped block.
// test_uarte_driver.py compiles this same source on the host with those macros routed to
// a Python model of the peripheral.
#ifndef NANO_TFLM_NRF52_UARTE_H_
#define NANO_TFLM_NRF52_UARTE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Register offsets from the UARTE base (nRF52840 Product Specification, UARTE registers; the
// same offsets as Renode's NRF52840_UART.cs).
#define NRF52_UARTE_TASKS_STARTRX 0x000u
#define NRF52_UARTE_TASKS_STOPRX 0x004u
#define NRF52_UARTE_TASKS_STARTTX 0x008u
#define NRF52_UARTE_TASKS_STOPTX 0x00Cu
#define NRF52_UARTE_EVENTS_ENDRX 0x110u
#define NRF52_UARTE_EVENTS_ENDTX 0x120u
#define NRF52_UARTE_EVENTS_ERROR 0x124u
#define NRF52_UARTE_EVENTS_RXTO 0x144u
#define NRF52_UARTE_EVENTS_RXSTARTED 0x14Cu
#define NRF52_UARTE_SHORTS 0x200u
#define NRF52_UARTE_INTENSET 0x304u
#define NRF52_UARTE_INTENCLR 0x308u
#define NRF52_UARTE_ERRORSRC 0x480u
#define NRF52_UARTE_ENABLE 0x500u
#define NRF52_UARTE_PSEL_RTS 0x508u
#define NRF52_UARTE_PSEL_TXD 0x50Cu
#define NRF52_UARTE_PSEL_CTS 0x510u
#define NRF52_UARTE_PSEL_RXD 0x514u
#define NRF52_UARTE_BAUDRATE 0x524u
#define NRF52_UARTE_RXD_PTR 0x534u
#define NRF52_UARTE_RXD_MAXCNT 0x538u
#define NRF52_UARTE_RXD_AMOUNT 0x53Cu
#define NRF52_UARTE_TXD_PTR 0x544u
#define NRF52_UARTE_TXD_MAXCNT 0x548u
#define NRF52_UARTE_CONFIG 0x56Cu

#define NRF52_UARTE_INT_ENDRX (1u << 4)  // INTEN bit of EVENTS_ENDRX
#define NRF52_UARTE_ENABLE_UARTE 8u      // ENABLE value that selects the EasyDMA UARTE
#define NRF52_UARTE_PSEL_DISCONNECTED 0xFFFFFFFFu
#define NRF52_UARTE_PSEL(port, pin) (((uint32_t)(port) << 5) | (uint32_t)(pin))  // CONNECT = 0
// The UARTE's BAUDRATE value for 115200 (actual rate 115108; the legacy UART's 0x01D7E000 is the
// one Renode's model lists, so Renode reports this rate as 0, which nothing there uses).
#define NRF52_UARTE_BAUD_115200 0x01D60000u

#define NRF52_UARTE0_BASE 0x40002000u

#ifndef NRF52_UARTE_READ
#define NRF52_UARTE_READ(base, off) (*(volatile uint32_t*)((base) + (off)))
#define NRF52_UARTE_WRITE(base, off, val) (*(volatile uint32_t*)((base) + (off)) = (val))
// EasyDMA takes 32-bit Data RAM addresses.
#define NRF52_UARTE_DMA_ADDR(ptr) ((uint32_t)(uintptr_t)(ptr))
#endif

#ifndef NRF52_UARTE_RX_RING_BYTES
// Room for the host's whole pipelining window (4 request frames of at most ~1.1 KB encoded).
#define NRF52_UARTE_RX_RING_BYTES 8192u
#endif
#ifndef NRF52_UARTE_TX_CHUNK
// Bytes per TX transaction: EasyDMA reads Data RAM only, so writes are copied through this
// buffer (the caller's bytes may be in flash).
#define NRF52_UARTE_TX_CHUNK 64u
#endif

// How the interrupt handler starts the next 1-byte transaction.
typedef enum {
    // Silicon: clear EVENTS_ENDRX, then TASKS_STARTRX. A byte that arrives in between waits in
    // the UARTE's RX FIFO until STARTRX (nRF52840 PS, UARTE reception; not checked on a board
    // here).
    NRF52_UARTE_RESTART_SILICON = 0,
    // Renode's model: TASKS_STARTRX, clear EVENTS_ENDRX, TASKS_STARTRX. The model moves a byte
    // only when one arrives or at STARTRX, and an arrival while ENDRX is clear lands at the DMA
    // pointer even when the transaction is complete. Arrivals come at time-sync points, which
    // can fall between any two instructions: with the silicon order, one between the clear and
    // STARTRX would be written past the 1-byte buffer and lost. The first STARTRX resets the
    // model's DMA pointer and count while ENDRX still holds arrivals back; the second moves a
    // byte that was already waiting. Not for silicon, where the first STARTRX could complete a
    // transaction whose ENDRX the clear would then erase.
    NRF52_UARTE_RESTART_RENODE = 1,
} nrf52_uarte_restart_t;

// Configures the UARTE at `base` (8N1, no flow control, `baudrate` a BAUDRATE register value,
// `psel_*` PSEL register values) and starts reception with ENDRX as the only interrupt. The
// caller routes the interrupt (UARTE0_UART0_IRQn) to nrf52_uarte_irq and enables it in the NVIC
// afterwards. Also resets the RX ring and the counters.
void nrf52_uarte_init(uintptr_t base, uint32_t psel_txd, uint32_t psel_rxd, uint32_t baudrate,
                      nrf52_uarte_restart_t restart);

// The UARTE interrupt handler: moves each received byte into the RX ring and restarts
// reception.
void nrf52_uarte_irq(void);

// Up to `max` received bytes from the RX ring (never waits); returns how many.
size_t nrf52_uarte_read(uint8_t* buf, size_t max);

// Sends `len` bytes, waiting for each TX transaction to end (EVENTS_ENDTX, polled).
void nrf52_uarte_write(const uint8_t* buf, size_t len);

// Bytes dropped because the RX ring was full (the frames they belonged to fail their CRC).
uint32_t nrf52_uarte_dropped(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // NANO_TFLM_NRF52_UARTE_H_
