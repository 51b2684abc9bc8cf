/* main() for bare-metal ports whose startup code calls main (QEMU mps2-an386). Compiled only
 * with -DNANO_TFLM_BAREMETAL_MAIN, so PlatformIO, which builds every file under firmware/lib/,
 * does not get a second main next to the Arduino core's. */
#ifdef NANO_TFLM_BAREMETAL_MAIN
#include "core.h"

int main(void) {
    core_run(); /* never returns: the device serves frames until reset */
    return 0;
}
#else
typedef int nano_tflm_main_baremetal_unused; /* ISO C forbids an empty translation unit */
#endif
