/* Board API for a POSIX host: the firmware core runs as a normal process, talking over
 * stdin/stdout (default; a test drives it through pipes) or one TCP client at a time on
 * 127.0.0.1 (--tcp PORT; pyserial's socket:// URL connects to it). Built with ASan/UBSan for
 * the fuzz tests. Timing is CLOCK_MONOTONIC microseconds. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "board.h"
#include "board_host.h"
#include "core.h"

/* How long board_wait sleeps at most before the core looks again (ms). */
#define kWaitMs 200

static int g_tcp = 0;
static uint16_t g_port = 0;
static int g_listen_fd = -1;
static int g_in_fd = STDIN_FILENO;
static int g_out_fd = STDOUT_FILENO;

void board_host_use_tcp(uint16_t port) {
    g_tcp = 1;
    g_port = port;
}

static void die(const char* what) {
    fprintf(stderr, "nano_tflm_host: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void accept_client(void) {
    int fd;
    do {
        fd = accept(g_listen_fd, NULL, NULL);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        die("accept");
    }
    /* Small request/reply frames: send each at once, as a UART would. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    g_in_fd = fd;
    g_out_fd = fd;
    /* A new client starts with a clean receiver: a frame the last one left half-sent must not
     * swallow this one's first request (it would answer ERR_FRAMING with the old seq). */
    core_link_reset();
}

static void drop_client(void) {
    if (g_tcp && g_in_fd >= 0) {
        close(g_in_fd);
        g_in_fd = -1;
        g_out_fd = -1;
    }
}

void board_init(void) {
    /* A client that goes away must not kill the process: writes then fail with EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (!g_tcp) {
        return;
    }
    g_listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (g_listen_fd < 0) {
        die("socket");
    }
    int one = 1;
    setsockopt(g_listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(g_port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(g_listen_fd, (struct sockaddr*)&addr, sizeof(addr)) != 0) {
        die("bind");
    }
    if (listen(g_listen_fd, 1) != 0) {
        die("listen");
    }
    socklen_t len = sizeof(addr);
    getsockname(g_listen_fd, (struct sockaddr*)&addr, &len);
    fprintf(stderr, "listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    fflush(stderr);
    /* The first client gets the boot line, like a host that opened the port before reset. */
    accept_client();
}

size_t board_read(uint8_t* buf, size_t max) {
    if (g_in_fd < 0) {
        return 0;
    }
    struct pollfd p = {g_in_fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0 || (p.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
        return 0;
    }
    ssize_t n = read(g_in_fd, buf, max);
    if (n > 0) {
        return (size_t)n;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return 0;
    }
    /* End of input. On stdio the test (or user) is done: exit cleanly so sanitizer reports and
     * exit codes reach the caller. On TCP, wait for the next client. */
    if (!g_tcp) {
        exit(0);
    }
    drop_client();
    return 0;
}

void board_write(const uint8_t* buf, size_t len) {
    while (len > 0u && g_out_fd >= 0) {
        ssize_t n = write(g_out_fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (!g_tcp) {
                exit(0); /* reader gone */
            }
            drop_client();
            return;
        }
        buf += n;
        len -= (size_t)n;
    }
}

void board_wait(void) {
    if (g_in_fd < 0) {
        if (g_listen_fd >= 0) {
            accept_client();
        }
        return;
    }
    struct pollfd p = {g_in_fd, POLLIN, 0};
    poll(&p, 1, kWaitMs);
}

uint32_t board_ticks(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
}

/* The link is read only when the core calls board_read: nothing of it runs during invoke. */
void board_link_hold(void) {}
void board_link_release(void) {}
const char* board_timing(void) {
    return "polled";
}
uint32_t board_link_irqs(void) {
    return 0u;
}

const char* board_name(void) {
    return "host";
}
const char* board_timer_kind(void) {
    return "us";
}
uint32_t board_tick_hz(void) {
    return 1000000u;
}
uint32_t board_ticks_to_units(void) {
    return 1u;
}
/* Not known for a host CPU (and not constant): reported as 0. */
uint32_t board_clock_hz(void) {
    return 0u;
}
/* A process stack is not painted: no high-water mark on the host. */
size_t board_stack_size(void) {
    return 0u;
}
size_t board_stack_used(void) {
    return 0u;
}
