/*
 * Traffic generator of the datapath benchmark: send one Ethernet frame
 * repeatedly on an interface through an AF_PACKET socket, at a paced rate
 * or as fast as possible, for a fixed time.
 *
 * Usage: bench_datapath_gen IFNAME FRAME_HEX RATE_PPS SECONDS
 *   RATE_PPS 0 sends as fast as the socket accepts (flood).
 * Prints one JSON object: frames sent, send errors and elapsed seconds.
 *
 * It is written in C because a Python loop tops out near the rates it has
 * to offer, and shares the machine's two vCPUs with the forwarders.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FRAME 9216
#define BATCH 32

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t parse_hex(const char *hex, unsigned char *out, size_t size)
{
    size_t length = strlen(hex) / 2;
    if (length > size)
        return 0;
    for (size_t i = 0; i < length; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return 0;
        out[i] = (unsigned char)byte;
    }
    return length;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s IFNAME FRAME_HEX RATE_PPS SECONDS\n", argv[0]);
        return 2;
    }
    static unsigned char frame[MAX_FRAME];
    size_t length = parse_hex(argv[2], frame, sizeof frame);
    double rate = atof(argv[3]);
    double seconds = atof(argv[4]);
    if (length < 14 || seconds <= 0 || rate < 0) {
        fprintf(stderr, "invalid frame, rate or duration\n");
        return 2;
    }

    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (fd < 0) {
        perror("socket(AF_PACKET)");
        return 1;
    }
    struct sockaddr_ll address = {0};
    address.sll_family = AF_PACKET;
    address.sll_protocol = htons(ETH_P_ALL);
    address.sll_ifindex = if_nametoindex(argv[1]);
    if (address.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        perror(argv[1]);
        return 1;
    }

    struct iovec iov = {.iov_base = frame, .iov_len = length};
    struct mmsghdr messages[BATCH];
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        messages[i].msg_hdr.msg_iov = &iov;
        messages[i].msg_hdr.msg_iovlen = 1;
    }

    /* Paced sends go out in batches of at most 1/20000 s worth of frames,
     * so the offered load stays smooth at low rates. */
    int batch = BATCH;
    if (rate > 0 && rate / 20000 < BATCH)
        batch = rate / 20000 < 1 ? 1 : (int)(rate / 20000);

    unsigned long long sent = 0, errors = 0;
    double start = now(), elapsed = 0;
    while ((elapsed = now() - start) < seconds) {
        if (rate > 0 && sent >= rate * elapsed) {
            struct timespec pause = {0, 20000};
            nanosleep(&pause, NULL);
            continue;
        }
        int result = sendmmsg(fd, messages, batch, 0);
        if (result < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
                perror("sendmmsg");
                return 1;
            }
            errors++;
            continue;
        }
        sent += result;
    }
    printf("{\"sent\": %llu, \"errors\": %llu, \"elapsed\": %.6f}\n", sent, errors, elapsed);
    return 0;
}
