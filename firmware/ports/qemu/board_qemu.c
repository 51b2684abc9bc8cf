/* Board API (firmware/lib/benchcore/board.h) for QEMU's mps2-an386 (Cortex-M4F).
 *
 * Serial: CMSDK APB UART0 at 0x40004000. RX by interrupt (IRQ 0) into a ring buffer so that
 * bytes arriving while an inference runs are kept; TX polled. When the ring is full the RX
 * interrupt is masked and the byte stays in the UART, and QEMU then stops delivering input (it
 * only offers a byte when RX is empty): flow control with no loss.
 * Timing ("link-held"): the RX interrupt is masked in the NVIC around invoke. QEMU's UART model
 * (hw/char/cmsdk-apb-uart.c, uart_can_receive) takes a byte only while RX is enabled and its
 * one-byte buffer is empty, whatever the interrupt masks say: with the interrupt held, one byte
 * waits in the UART, the chardev stops reading, and the rest stays in the host's pipe or socket.
 * On release the pending interrupt is taken at once. Nothing is lost, and no link interrupt runs
 * inside the timed region (before, up to +2,760 instructions per inference at window 4).
 * Time: SysTick on the processor clock (25 MHz), 24-bit, extended to 32 bits by counting its
 * reload interrupts. Under `-icount shift=0` QEMU executes one instruction per virtual ns, so a
 * 25 MHz tick is 40 instructions (checked by test_qemu_port.py against a counted loop).
 */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "qemu_port.h"

#define REG32(addr) (*(volatile uint32_t*)(addr))

/* CMSDK APB UART0 */
#define kUartBase 0x40004000u
#define UART_DATA REG32(kUartBase + 0x00u)
#define UART_STATE REG32(kUartBase + 0x04u)
#define UART_CTRL REG32(kUartBase + 0x08u)
#define UART_INTCLEAR REG32(kUartBase + 0x0Cu)
#define UART_BAUDDIV REG32(kUartBase + 0x10u)
enum {
    kUartStateTxFull = 1u << 0,
    kUartStateRxFull = 1u << 1,
    kUartCtrlTxEn = 1u << 0,
    kUartCtrlRxEn = 1u << 1,
    kUartCtrlRxIrqEn = 1u << 3,
    kUartIntRx = 1u << 1,
};

/* SysTick and NVIC (ARMv7-M System Control Space) */
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_ICSR REG32(0xE000ED04u)
#define NVIC_ISER0 REG32(0xE000E100u)
#define NVIC_ICER0 REG32(0xE000E180u)
#define NVIC_ISPR0 REG32(0xE000E200u)
enum {
    kSystCsrEnable = 1u << 0,
    kSystCsrTickInt = 1u << 1,
    kSystCsrClkSourceCpu = 1u << 2,
    kIcsrPendStSet = 1u << 26,
    kSysTickReload = 0x00FFFFFFu, /* full 24-bit period: fewest interrupts while timing */
    kUart0RxIrq = 0,
};

static const uint32_t kSysClkHz = 25000000u;      /* AN386 SYSCLK; SysTick runs on it */
static const uint32_t kInstructionsPerTick = 40u; /* 1e9 instr/s (icount shift=0) / 25 MHz */

/* Power of two so that indexes wrap by masking; holds more than 2 protocol frames. */
#define kRxRingBytes 4096u
static uint8_t s_rx_ring[kRxRingBytes];
static volatile uint32_t s_rx_head; /* written by the ISR only */
static volatile uint32_t s_rx_tail; /* written by board_read only */
static volatile uint32_t s_systick_wraps;
static volatile uint32_t s_rx_irqs; /* UART RX interrupts taken (board_link_irqs) */
static int s_initialised;

extern uint32_t __stack_limit, __stack_top;

void Uart0Rx_Handler(void) {
    s_rx_irqs = s_rx_irqs + 1u;
    UART_INTCLEAR = kUartIntRx;
    while (UART_STATE & kUartStateRxFull) {
        uint32_t head = s_rx_head;
        if (head - s_rx_tail >= kRxRingBytes) {
            /* Ring full: leave the byte in the UART and mask RX until board_read drains. */
            UART_CTRL &= ~(uint32_t)kUartCtrlRxIrqEn;
            return;
        }
        s_rx_ring[head & (kRxRingBytes - 1u)] = (uint8_t)UART_DATA;
        s_rx_head = head + 1u;
    }
}

void SysTick_Handler(void) {
    s_systick_wraps = s_systick_wraps + 1u;
}

static void uart_putc(uint8_t c) {
    while (UART_STATE & kUartStateTxFull) {
    }
    UART_DATA = c;
}

void qemu_uart_puts(const char* s) {
    /* Usable before board_init(): enable TX without touching RX state. */
    UART_CTRL |= kUartCtrlTxEn;
    while (*s != '\0') {
        uart_putc((uint8_t)*s++);
    }
}

void qemu_uart_put_u32(uint32_t v) {
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    qemu_uart_puts(&buf[i]);
}

void qemu_uart_put_i32(int32_t v) {
    if (v < 0) {
        qemu_uart_puts("-");
    }
    qemu_uart_put_u32(v < 0 ? (uint32_t)-(int64_t)v : (uint32_t)v);
}

void board_init(void) {
    if (s_initialised) {
        return;
    }
    s_initialised = 1;
    /* QEMU ignores the baud rate but flags a divider below 16 as a guest error. */
    UART_BAUDDIV = kSysClkHz / 115200u;
    UART_INTCLEAR = 0xFu;
    UART_CTRL = kUartCtrlTxEn | kUartCtrlRxEn | kUartCtrlRxIrqEn;
    NVIC_ISER0 = 1u << kUart0RxIrq;

    SYST_RVR = kSysTickReload;
    SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    SYST_CSR = kSystCsrEnable | kSystCsrTickInt | kSystCsrClkSourceCpu;
    __asm volatile("cpsie i" ::: "memory");
}

size_t board_read(uint8_t* buf, size_t max) {
    size_t n = 0;
    uint32_t tail = s_rx_tail;
    const uint32_t head = s_rx_head;
    while (n < max && tail != head) {
        buf[n++] = s_rx_ring[tail & (kRxRingBytes - 1u)];
        tail++;
    }
    s_rx_tail = tail;
    if (n > 0 && !(UART_CTRL & kUartCtrlRxIrqEn)) {
        /* The ISR masked RX on a full ring; there is room again. QEMU's model raises the RX
         * interrupt only for a byte received while RXINTEN is set, so a byte that waited in the
         * UART meanwhile raises nothing on unmasking: pend the interrupt by hand so the ISR takes
         * it. */
        UART_CTRL |= kUartCtrlRxIrqEn;
        if (UART_STATE & kUartStateRxFull) {
            NVIC_ISPR0 = 1u << kUart0RxIrq;
        }
    }
    return n;
}

void board_write(const uint8_t* buf, size_t len) {
    for (size_t i = 0; i < len; i++) {
        uart_putc(buf[i]);
    }
}

void board_wait(void) {
    /* Check and sleep with interrupts masked: a byte that arrives between the check and the WFI
     * still wakes the core (WFI wakes on a pending interrupt even when PRIMASK masks it). */
    __asm volatile("cpsid i" ::: "memory");
    if (s_rx_head == s_rx_tail) {
        __asm volatile("wfi" ::: "memory");
    }
    __asm volatile("cpsie i" ::: "memory");
}

void board_link_hold(void) {
    NVIC_ICER0 = 1u << kUart0RxIrq;
    /* The mask takes effect before the timer is read (ARMv7-M: DSB then ISB after an NVIC write).
     */
    __asm volatile("dsb\n\tisb" ::: "memory");
}

void board_link_release(void) {
    NVIC_ISER0 = 1u << kUart0RxIrq;
}

const char* board_timing(void) {
    return "link-held";
}

uint32_t board_link_irqs(void) {
    return s_rx_irqs;
}

uint32_t board_ticks(void) {
    uint32_t seen;
    uint32_t wraps;
    uint32_t count;
    /* A reload that happened but whose interrupt is still pending (interrupts masked, or not yet
     * taken) shows as PENDSTSET: count it, and re-read the counter, which is then surely past the
     * reload. If the interrupt is taken meanwhile, the wrap count moved: read again. */
    do {
        seen = s_systick_wraps;
        wraps = seen;
        count = SYST_CVR;
        if (SCB_ICSR & kIcsrPendStSet) {
            count = SYST_CVR;
            wraps++;
        }
    } while (seen != s_systick_wraps);
    return (wraps << 24) + (kSysTickReload - count);
}

const char* board_name(void) {
    return "qemu-mps2-an386";
}

const char* board_timer_kind(void) {
    return "instructions";
}

uint32_t board_tick_hz(void) {
    return kSysClkHz;
}

uint32_t board_ticks_to_units(void) {
    return kInstructionsPerTick;
}

uint32_t board_clock_hz(void) {
    return kSysClkHz;
}

size_t board_stack_size(void) {
    return (size_t)((uintptr_t)&__stack_top - (uintptr_t)&__stack_limit);
}

size_t board_stack_used(void) {
    const uint32_t* p = &__stack_limit;
    while (p < &__stack_top && *p == kStackPaint) {
        p++;
    }
    return (size_t)((uintptr_t)&__stack_top - (uintptr_t)p);
}

void qemu_exit(int code) {
    static char msg[] = "\nexit=000\n";
    uint32_t v = (uint32_t)code & 0xFFu;
    msg[6] = (char)('0' + v / 100u);
    msg[7] = (char)('0' + (v / 10u) % 10u);
    msg[8] = (char)('0' + v % 10u);
    qemu_uart_puts(msg);
    /* SYS_EXIT_EXTENDED (0x20): r1 points at {reason, status}; 0x20026 =
     * ADP_Stopped_ApplicationExit. */
    volatile uint32_t block[2] = {0x20026u, (uint32_t)code};
    register uint32_t r0 __asm("r0") = 0x20u;
    register volatile uint32_t* r1 __asm("r1") = block;
    for (;;) {
        __asm volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    }
}

void qemu_fatal(const char* msg) {
    qemu_uart_puts(msg);
    qemu_exit(3);
}
