/* Bare-metal start-up for QEMU's mps2-an386 (Cortex-M4F): vector table and reset handler.
 *
 * The reset handler enables the FPU before any C code that the compiler may have given FP
 * instructions (we build with -mfloat-abi=hard), copies .data, zeroes .bss, paints the stack for
 * the high-water mark, then calls main(). Returning from main() exits QEMU via semihosting.
 */
#include <stdint.h>

#include "qemu_port.h"

extern uint32_t __data_start, __data_end, __data_load, __bss_start, __bss_end;
extern uint32_t __stack_limit, __stack_top;
extern int main(void);

void Reset_Handler(void);
void Default_Handler(void);
void HardFault_Handler(void);
void SysTick_Handler(void);
void Uart0Rx_Handler(void);

/* The AN386 NVIC has 32 external interrupts (QEMU sets num-irq = 32). */
enum { kNumIrqs = 32, kNumVectors = 16 + kNumIrqs };

typedef void (*vector_t)(void);

/* Slot 0 is the initial SP: the CPU loads it from address 0 at reset. */
__attribute__((section(".vectors"), used)) static const vector_t kVectors[kNumVectors] = {
    [0] = (vector_t)(uintptr_t)&__stack_top,
    [1] = Reset_Handler,
    [2] = Default_Handler, /* NMI */
    [3] = HardFault_Handler,
    [4] = HardFault_Handler, /* MemManage */
    [5] = HardFault_Handler, /* BusFault */
    [6] = HardFault_Handler, /* UsageFault */
    [11] = Default_Handler,  /* SVCall */
    [12] = Default_Handler,  /* DebugMonitor */
    [14] = Default_Handler,  /* PendSV */
    [15] = SysTick_Handler,
    [16 + 0] = Uart0Rx_Handler, /* UART0 RX is IRQ 0 on AN385/AN386 */
};

#define kCpacr (*(volatile uint32_t*)0xE000ED88u)

__attribute__((noreturn)) void Reset_Handler(void) {
    /* CP10 and CP11 full access: without it the first VFP instruction faults (NOCP). */
    kCpacr |= (0xFu << 20);
    __asm volatile("dsb\n\tisb" ::: "memory");

    const uint32_t* src = &__data_load;
    for (uint32_t* dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (uint32_t* dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }

    /* Paint the unused stack below the current frame; board_stack_used() scans for the first
     * word that is no longer the pattern. 64 bytes of margin cover this function's own frame. */
    uint32_t sp;
    __asm volatile("mov %0, sp" : "=r"(sp));
    for (volatile uint32_t* p = &__stack_limit; (uint32_t)(uintptr_t)p < sp - 64u;) {
        *p++ = kStackPaint;
    }

    int rc = main();
    qemu_exit(rc);
}

void Default_Handler(void) {
    static const char kMsg[] = "\nfatal: unexpected exception\n";
    qemu_fatal(kMsg);
}

void HardFault_Handler(void) {
    static const char kMsg[] = "\nfatal: HardFault\n";
    qemu_fatal(kMsg);
}
