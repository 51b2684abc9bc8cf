/* Host (POSIX) port settings, chosen by main_host.c before board_init(). */
#ifndef NANO_TFLM_BOARD_HOST_H_
#define NANO_TFLM_BOARD_HOST_H_

#include <stdint.h>

/* Listen on 127.0.0.1:port instead of using stdin/stdout (port 0: the OS picks one). The
 * chosen port is printed on stderr as "listening on 127.0.0.1:PORT". */
void board_host_use_tcp(uint16_t port);

#endif /* NANO_TFLM_BOARD_HOST_H_ */
