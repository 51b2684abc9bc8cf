// TEST-ONLY: firmware/src/nrf52_uarte.c compiled on the host with its register and EasyDMA
// accesses routed to callbacks (tests/test_uarte_driver.py installs a Python model of the
// UARTE). The driver source is included unchanged, so the test runs the same code as the board.
#include <stdint.h>

typedef uint32_t (*host_read_fn)(uint32_t off);
typedef void (*host_write_fn)(uint32_t off, uint32_t val);

static host_read_fn g_host_read;
static host_write_fn g_host_write;

// EasyDMA addresses are 32-bit; host pointers are not. Each buffer the driver hands to the
// peripheral gets a fake Data RAM address (kDmaBase + slot * kDmaSlot); host_dma_ptr maps an
// address back to the host pointer.
enum { kDmaSlots = 8 };
static const uint32_t kDmaBase = 0x20000000u;
static const uint32_t kDmaSlot = 0x10000u;
static const void* g_dma[kDmaSlots];

void host_uarte_hooks(host_read_fn rd, host_write_fn wr) {
    g_host_read = rd;
    g_host_write = wr;
}

static uint32_t host_dma_addr(const void* p) {
    int i = 0;
    while (i < kDmaSlots && g_dma[i] != 0 && g_dma[i] != p) {
        ++i;
    }
    if (i == kDmaSlots) {
        return 0;  // the model rejects address 0
    }
    g_dma[i] = p;
    return kDmaBase + (uint32_t)i * kDmaSlot;
}

void* host_dma_ptr(uint32_t addr) {
    const uint32_t slot = (addr - kDmaBase) / kDmaSlot;
    if (addr < kDmaBase || slot >= kDmaSlots || g_dma[slot] == 0) {
        return 0;
    }
    return (uint8_t*)g_dma[slot] + (addr - kDmaBase) % kDmaSlot;
}

#define NRF52_UARTE_READ(base, off) ((void)(base), g_host_read(off))
#define NRF52_UARTE_WRITE(base, off, val) ((void)(base), g_host_write((off), (val)))
#define NRF52_UARTE_DMA_ADDR(ptr) host_dma_addr(ptr)
#include "nrf52_uarte.c"
