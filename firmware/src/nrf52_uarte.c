// UARTE0 driver without SHORTS (see nrf52_uarte.h for why it exists and how it is tested).
#include "nrf52_uarte.h"

#include <string.h>

#if (NRF52_UARTE_RX_RING_BYTES & (NRF52_UARTE_RX_RING_BYTES - 1u)) != 0
#error "NRF52_UARTE_RX_RING_BYTES must be a power of two"
#endif

static uintptr_t g_base;
static nrf52_uarte_restart_t g_restart;

// EasyDMA target of every RX transaction (MAXCNT 1): written by the peripheral, hence volatile.
static volatile uint8_t g_rx_dma;
static uint8_t g_tx_dma[NRF52_UARTE_TX_CHUNK];

// RX ring: the interrupt handler is the only writer of g_rx_head, nrf52_uarte_read the only
// writer of g_rx_tail, so neither needs a lock (aligned 32-bit accesses are atomic on the M4).
static uint8_t g_rx_ring[NRF52_UARTE_RX_RING_BYTES];
static volatile uint32_t g_rx_head;
static volatile uint32_t g_rx_tail;
static volatile uint32_t g_rx_dropped;

static uint32_t reg_read(uint32_t off) {
    return NRF52_UARTE_READ(g_base, off);
}
static void reg_write(uint32_t off, uint32_t val) {
    NRF52_UARTE_WRITE(g_base, off, val);
}

void nrf52_uarte_init(uintptr_t base, uint32_t psel_txd, uint32_t psel_rxd, uint32_t baudrate,
                      nrf52_uarte_restart_t restart) {
    g_base = base;
    g_restart = restart;
    g_rx_head = 0;
    g_rx_tail = 0;
    g_rx_dropped = 0;

    reg_write(NRF52_UARTE_INTENCLR, 0xFFFFFFFFu);
    // PSEL registers may only be written while the peripheral is disabled.
    reg_write(NRF52_UARTE_ENABLE, 0);
    reg_write(NRF52_UARTE_SHORTS, 0);  // on silicon too: no transaction starts by itself
    reg_write(NRF52_UARTE_PSEL_RTS, NRF52_UARTE_PSEL_DISCONNECTED);
    reg_write(NRF52_UARTE_PSEL_CTS, NRF52_UARTE_PSEL_DISCONNECTED);
    reg_write(NRF52_UARTE_PSEL_TXD, psel_txd);
    reg_write(NRF52_UARTE_PSEL_RXD, psel_rxd);
    reg_write(NRF52_UARTE_BAUDRATE, baudrate);
    reg_write(NRF52_UARTE_CONFIG, 0);  // no parity, one stop bit, no hardware flow control
    reg_write(NRF52_UARTE_EVENTS_ENDRX, 0);
    reg_write(NRF52_UARTE_EVENTS_ENDTX, 0);
    reg_write(NRF52_UARTE_EVENTS_ERROR, 0);
    reg_write(NRF52_UARTE_EVENTS_RXTO, 0);
    reg_write(NRF52_UARTE_EVENTS_RXSTARTED, 0);
    reg_write(NRF52_UARTE_ENABLE, NRF52_UARTE_ENABLE_UARTE);

    // RXD.PTR and MAXCNT never change: every transaction is the same single byte.
    reg_write(NRF52_UARTE_RXD_PTR, NRF52_UARTE_DMA_ADDR((const void*)&g_rx_dma));
    reg_write(NRF52_UARTE_RXD_MAXCNT, 1);
    reg_write(NRF52_UARTE_INTENSET, NRF52_UARTE_INT_ENDRX);
    reg_write(NRF52_UARTE_TASKS_STARTRX, 1);
}

void nrf52_uarte_irq(void) {
    // ENDRX is the only interrupt enabled. Loop while it is set: under Renode the second STARTRX
    // below completes the next transaction at once when bytes are waiting.
    while (reg_read(NRF52_UARTE_EVENTS_ENDRX) != 0) {
        const uint8_t byte = g_rx_dma;
        const uint32_t head = g_rx_head;
        if (head - g_rx_tail < NRF52_UARTE_RX_RING_BYTES) {
            g_rx_ring[head & (NRF52_UARTE_RX_RING_BYTES - 1u)] = byte;
            g_rx_head = head + 1u;
        } else {
            g_rx_dropped = g_rx_dropped + 1u;
        }
        if (g_restart == NRF52_UARTE_RESTART_RENODE) {
            reg_write(NRF52_UARTE_TASKS_STARTRX, 1);
            reg_write(NRF52_UARTE_EVENTS_ENDRX, 0);
            reg_write(NRF52_UARTE_TASKS_STARTRX, 1);
        } else {
            reg_write(NRF52_UARTE_EVENTS_ENDRX, 0);
            reg_write(NRF52_UARTE_TASKS_STARTRX, 1);
        }
    }
}

size_t nrf52_uarte_read(uint8_t* buf, size_t max) {
    size_t n = 0;
    uint32_t tail = g_rx_tail;
    const uint32_t head = g_rx_head;
    while (n < max && tail != head) {
        buf[n++] = g_rx_ring[tail & (NRF52_UARTE_RX_RING_BYTES - 1u)];
        ++tail;
    }
    g_rx_tail = tail;
    return n;
}

void nrf52_uarte_write(const uint8_t* buf, size_t len) {
    while (len > 0) {
        const size_t n = len < NRF52_UARTE_TX_CHUNK ? len : NRF52_UARTE_TX_CHUNK;
        memcpy(g_tx_dma, buf, n);
        reg_write(NRF52_UARTE_EVENTS_ENDTX, 0);
        reg_write(NRF52_UARTE_TXD_PTR, NRF52_UARTE_DMA_ADDR(g_tx_dma));
        reg_write(NRF52_UARTE_TXD_MAXCNT, (uint32_t)n);
        reg_write(NRF52_UARTE_TASKS_STARTTX, 1);
        // ENDTX: EasyDMA has read the whole buffer, so it may be refilled.
        while (reg_read(NRF52_UARTE_EVENTS_ENDTX) == 0) {
        }
        reg_write(NRF52_UARTE_EVENTS_ENDTX, 0);
        buf += n;
        len -= n;
    }
}

uint32_t nrf52_uarte_dropped(void) {
    return g_rx_dropped;
}
