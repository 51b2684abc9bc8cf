*** Comments ***
Boots the nano33ble_renode ELF (pio run -e nano33ble_renode) on Renode's Arduino Nano 33 BLE and
checks the firmware's boot line and its self-test (model_selftest.h images against the TFLM
reference outputs) on the UART, then boots the same image again and checks that the self-test
took exactly as many DWT ticks (instructions, see renode/nano33ble.resc) as the first time. Run with renode-test (Renode's Robot runner), e.g. in CI through
antmicro/renode-test-action:
    renode-test tests/renode/nano33ble_selftest.robot
Override the ELF with: renode-test --variable ELF:/abs/path/firmware.elf ...

*** Settings ***
Suite Setup                     Setup
Suite Teardown                  Teardown
Test Setup                      Reset Emulation
Test Teardown                   Test Teardown
Resource                        ${RENODEKEYWORDS}

*** Variables ***
${ELF}                          ${CURDIR}/../../.pio/build/nano33ble_renode/firmware.elf
# Serial1 of the Arduino mbed core = UARTE0 = Renode's uart0 (see renode/nano33ble.resc).
${UART}                         sysbus.uart0
# Must equal NANO_TFLM_RENODE_MIPS in platformio.ini [env:nano33ble_renode]; the DWT model counts
# at MIPS MHz, so one CYCCNT tick is one instruction (as in renode/nano33ble.resc).
${MIPS}                         64
${DWT}                          dwt: Miscellaneous.DWT @ sysbus 0xE0001000 { frequency: 64000000 }
# Virtual seconds: mbed boot plus the self-test (a few inferences) take well under this.
${TIMEOUT}                      60

*** Keywords ***
Create Nano 33 BLE
    Execute Command             mach create "nano33ble"
    Execute Command             machine LoadPlatformDescription @platforms/boards/arduino_nano_33_ble.repl
    Execute Command             sysbus.cpu PerformanceInMips ${MIPS}
    Execute Command             machine LoadPlatformDescriptionFromString "${DWT}"
    Execute Command             sysbus LoadELF @${ELF}

Boot And Pass The Self-Test
    [Documentation]             Returns the self-test's duration in DWT ticks.
    Create Nano 33 BLE
    Create Terminal Tester      ${UART}    timeout=${TIMEOUT}
    # Any self-test mismatch prints "selftest: FAIL i/N ..."; fail at once instead of timing out.
    Register Failing Uart String    FAIL
    # mbed's fault and error handlers print "++ MbedOS Fault Handler ++" / "++ MbedOS Error Info ++"
    # to mbed's stdio console; when that is this UART, a crash fails the test at once.
    Register Failing Uart String    ++ MbedOS

    Start Emulation

    # The boot line: firmware/protocol versions, this board, the TFLM backend, the model hash.
    Wait For Line On Uart       nano-tflm fw=\\S+ proto=1 board=nano33ble-renode backend=tflm model=[0-9a-f]{16}    treatAsRegex=true
    # "pass N/N" with the same N twice (backreference) and N > 0.
    Wait For Line On Uart       selftest: pass ([1-9][0-9]*)/\\1\\b    treatAsRegex=true
    ${ticks}=  Wait For Line On Uart    selftest: ticks=([1-9][0-9]*)    treatAsRegex=true
    RETURN                      ${ticks.groups[0]}

*** Test Cases ***
Should Boot And Pass The Self-Test
    Boot And Pass The Self-Test

Should Time The Self-Test Exactly
    # Timing under Renode is an instruction count (DWT->CYCCNT, synced on every read): the same
    # image must take the same number of ticks on every run.
    ${first}=                   Boot And Pass The Self-Test
    Reset Emulation
    ${second}=                  Boot And Pass The Self-Test
    Should Be Equal             ${first}    ${second}
