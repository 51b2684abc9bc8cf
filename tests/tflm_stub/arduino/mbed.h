// TEST-ONLY stand-in (tests/tflm_stub/README.md) for mbed.h: what firmware/src/ uses, with
// mbed-os 6 signatures: CMSIS-RTOS2 thread stack queries (cmsis_os2.h) and
// mbed::UnbufferedSerial (drivers/UnbufferedSerial.h; attach/readable come from SerialBase).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
