/* nano_tflm_host: the benchmark firmware as a POSIX process.
 *   nano_tflm_host            frames on stdin/stdout
 *   nano_tflm_host --tcp PORT listen on 127.0.0.1:PORT (0: any free port, printed on stderr) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board_host.h"
#include "core.h"

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--tcp") == 0 && i + 1 < argc) {
            char* end = NULL;
            long port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                fprintf(stderr, "error: --tcp needs a port number 0..65535, got %s\n", argv[i]);
                return 2;
            }
            board_host_use_tcp((uint16_t)port);
        } else {
            fprintf(stderr, "usage: %s [--tcp PORT]\n", argv[0]);
            return 2;
        }
    }
    core_run();
    return 0;
}
