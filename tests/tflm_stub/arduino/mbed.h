// TEST-ONLY stand-in (tests/tflm_stub/README.md) for mbed.h: what firmware/src/ uses, with
// mbed-os 6 signatures: CMSIS-RTOS2 thread stack queries (cmsis_os2.h),
// mbed::UnbufferedSerial (drivers/UnbufferedSerial.h; attach/readable come from SerialBase) and
// the nRF52840 NVIC/GPIO names below.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

// The nRF52840 parts board_nano33ble.cpp's Serial1 link uses: the UARTE0 interrupt number and
// mbed's NVIC_SetVector (cmsis_nvic.h), CMSIS NVIC calls, the P1 GPIO port (nrf.h / the MDK);
// and its USB link hold: the USBD interrupt number, NVIC enable queries and barriers
// (core_cm4.h, cmsis_gcc.h).
typedef enum { UARTE0_UART0_IRQn = 2, USBD_IRQn = 39 } IRQn_Type;
#ifdef __cplusplus
extern "C" {
#endif
void NVIC_SetVector(IRQn_Type IRQn, uint32_t vector);
void NVIC_SetPriority(IRQn_Type IRQn, uint32_t priority);
void NVIC_ClearPendingIRQ(IRQn_Type IRQn);
void NVIC_EnableIRQ(IRQn_Type IRQn);
void NVIC_DisableIRQ(IRQn_Type IRQn);
uint32_t NVIC_GetEnableIRQ(IRQn_Type IRQn);
void __DSB(void);
void __ISB(void);
#ifdef __cplusplus
}
#endif
typedef struct {
    volatile uint32_t OUTSET;
    volatile uint32_t PIN_CNF[32];
} NRF_GPIO_Type;  // the registers used, not the MDK's layout
extern NRF_GPIO_Type* NRF_P1;
#define GPIO_PIN_CNF_DIR_Pos (0UL)
#define GPIO_PIN_CNF_DIR_Input (0UL)
#define GPIO_PIN_CNF_DIR_Output (1UL)
#define GPIO_PIN_CNF_INPUT_Pos (1UL)
#define GPIO_PIN_CNF_INPUT_Connect (0UL)
#define GPIO_PIN_CNF_INPUT_Disconnect (1UL)

typedef void* osThreadId_t;
osThreadId_t osThreadGetId(void);
uint32_t osThreadGetStackSize(osThreadId_t thread_id);
uint32_t osThreadGetStackSpace(osThreadId_t thread_id);

namespace mbed {

template <typename F>
class Callback;
template <typename R>
class Callback<R()> {
  public:
    Callback(R (*func)()) : func_(func) {}  // NOLINT: implicit, as in mbed
  private:
    R (*func_)();
};

class SerialBase {
  public:
    enum IrqType { RxIrq = 0, TxIrq };
    void attach(Callback<void()> func, IrqType type = RxIrq);
    bool readable();
    bool writeable();
};

class UnbufferedSerial : private SerialBase {
  public:
    UnbufferedSerial(PinName tx, PinName rx, int baud = 9600);
    ssize_t write(const void* buffer, size_t size);
    ssize_t read(void* buffer, size_t size);
    using SerialBase::attach;
    using SerialBase::readable;
    using SerialBase::RxIrq;
};

}  // namespace mbed
