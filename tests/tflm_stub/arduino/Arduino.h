// TEST-ONLY stand-in (tests/tflm_stub/README.md) for the Arduino mbed core's Arduino.h: the API
// firmware/src/ uses, with the core's signatures (Print/Stream/HardwareSerial, millis/micros,
// delay, yield) and the CMSIS core registers it touches (DWT, CoreDebug).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define ARDUINO_ARCH_MBED 1
#define F_CPU 64000000L

typedef enum { P1_3 = 35, P1_10 = 42, NC = -1 } PinName;  // mbed PinNames.h (nRF52840)

unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);
void yield(void);

class Print {
  public:
    virtual ~Print() {}
    virtual size_t write(uint8_t c) = 0;
    virtual size_t write(const uint8_t* buffer, size_t size);
};

class Stream : public Print {
  public:
    virtual int available() = 0;
    virtual int read() = 0;
    virtual int peek() = 0;
};

class HardwareSerial : public Stream {
  public:
    virtual void begin(unsigned long baudrate) = 0;
    virtual void end() = 0;
    virtual operator bool() = 0;
};

class FakeSerial : public HardwareSerial {
  public:
    void begin(unsigned long baudrate) override;
    void end() override {}
    operator bool() override {
        return true;
    }
    size_t write(uint8_t c) override;
    using Print::write;
    int available() override;
    int read() override;
    int peek() override {
        return -1;
    }
};

extern FakeSerial Serial;   // USB CDC on the real core (arduino::SerialUSB)
extern FakeSerial Serial1;  // UART (arduino::UART)

// CMSIS core_cm4.h, the parts used.
typedef struct {
    volatile uint32_t CTRL;
    volatile uint32_t CYCCNT;
} DWT_Type;
typedef struct {
    volatile uint32_t DHCSR;
    volatile uint32_t DCRSR;
    volatile uint32_t DCRDR;
    volatile uint32_t DEMCR;
} CoreDebug_Type;
extern DWT_Type* DWT;
extern CoreDebug_Type* CoreDebug;
#define DWT_CTRL_CYCCNTENA_Msk (1UL)
#define CoreDebug_DEMCR_TRCENA_Msk (1UL << 24)
