// nfq-floor: the least any NFQUEUE filter can cost, for `npm run bench -- agent`. It binds one queue
// over a raw nfnetlink socket (no libnetfilter_queue to install), asks for packet metadata only, and
// accepts every packet the moment it arrives, one verdict per packet as a filter that judges each
// connection does. Whatever a real filter adds on top of this row is its own work. Written in C so
// that the floor is the kernel's round trip, not a runtime's.
//
//   nfq-floor --queue Q [--lifetime S]
//
// Exits on SIGTERM/SIGINT or after S seconds (default 900) and prints how many packets it accepted.
// Compiled by bench/agent/index.ts with the machine's gcc into a temporary directory.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static void request_stop(int sig) {
    (void)sig;
    stopping = 1;
}

// ------------------------------------------------------------------ building nfnetlink messages
// A message under construction: header, nfgenmsg, then attributes appended at 4-byte alignment.
struct message {
    union {
        struct nlmsghdr header;
        char bytes[256];
    };
};

static void message_start(struct message *m, uint16_t queue, uint8_t kind, uint16_t flags) {
    memset(m, 0, sizeof *m);
    m->header.nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    m->header.nlmsg_type = (uint16_t)((NFNL_SUBSYS_QUEUE << 8) | kind);
    m->header.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | flags);
    struct nfgenmsg *g = NLMSG_DATA(&m->header);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(queue); // the queue number, big-endian
}

static void message_add(struct message *m, uint16_t type, const void *value, size_t size) {
    size_t at = NLMSG_ALIGN(m->header.nlmsg_len);
    size_t total = NLA_HDRLEN + size;
    if (at + NLA_ALIGN(total) > sizeof m->bytes) {
        fprintf(stderr, "nfq-floor: message too long\n");
        exit(1);
    }
    struct nlattr *attr = (struct nlattr *)(m->bytes + at);
    attr->nla_type = type;
    attr->nla_len = (uint16_t)total;
    memcpy(m->bytes + at + NLA_HDRLEN, value, size);
    m->header.nlmsg_len = (uint32_t)(at + NLA_ALIGN(total));
}

static int send_message(int fd, const struct message *m) {
    return send(fd, m->bytes, m->header.nlmsg_len, 0) == (ssize_t)m->header.nlmsg_len ? 0 : -1;
}

// ------------------------------------------------------------------ the queue
// Binds the queue with metadata-only copies and waits for the kernel's acknowledgement.
static void bind_queue(int fd, uint16_t queue) {
    struct message m;
    message_start(&m, queue, NFQNL_MSG_CONFIG, NLM_F_ACK);
    struct nfqnl_msg_config_cmd bind_cmd = {.command = NFQNL_CFG_CMD_BIND};
    message_add(&m, NFQA_CFG_CMD, &bind_cmd, sizeof bind_cmd);
    struct nfqnl_msg_config_params params = {.copy_range = 0, .copy_mode = NFQNL_COPY_META};
    message_add(&m, NFQA_CFG_PARAMS, &params, sizeof params);
    uint32_t max_len = htonl(8192);
    message_add(&m, NFQA_CFG_QUEUE_MAXLEN, &max_len, sizeof max_len);
    if (send_message(fd, &m) != 0) {
        perror("nfq-floor: sending the bind request");
        exit(1);
    }
    char reply[4096];
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    if (n < (ssize_t)NLMSG_HDRLEN) {
        perror("nfq-floor: reading the bind reply");
        exit(1);
    }
    struct nlmsghdr *h = (struct nlmsghdr *)reply;
    if (h->nlmsg_type == NLMSG_ERROR) {
        int error = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
        if (error) {
            fprintf(stderr, "nfq-floor: binding queue %u: %s (another program bound to it? not root?)\n", queue, strerror(error));
            exit(1);
        }
    }
}

static void accept_packet(int fd, uint16_t queue, uint32_t packet_id) {
    struct message m;
    message_start(&m, queue, NFQNL_MSG_VERDICT, 0);
    struct nfqnl_msg_verdict_hdr verdict = {.verdict = htonl(NF_ACCEPT), .id = htonl(packet_id)};
    message_add(&m, NFQA_VERDICT_HDR, &verdict, sizeof verdict);
    if (send_message(fd, &m) != 0) perror("nfq-floor: sending a verdict");
}

// The packet id of one queued-packet message, or -1 if it carries none.
static int64_t packet_id_of(const struct nlmsghdr *h) {
    const char *attrs = (const char *)NLMSG_DATA(h) + NLMSG_ALIGN(sizeof(struct nfgenmsg));
    long left = (long)h->nlmsg_len - (long)NLMSG_LENGTH(sizeof(struct nfgenmsg));
    while (left >= NLA_HDRLEN) {
        const struct nlattr *attr = (const struct nlattr *)attrs;
        if (attr->nla_len < NLA_HDRLEN || attr->nla_len > left) return -1;
        if ((attr->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR && attr->nla_len >= NLA_HDRLEN + sizeof(struct nfqnl_msg_packet_hdr)) {
            const struct nfqnl_msg_packet_hdr *ph = (const void *)(attrs + NLA_HDRLEN);
            return ntohl(ph->packet_id);
        }
        attrs += NLA_ALIGN(attr->nla_len);
        left -= NLA_ALIGN(attr->nla_len);
    }
    return -1;
}

int main(int argc, char **argv) {
    long queue = -1, lifetime_s = 900;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--queue") && i + 1 < argc) queue = strtol(argv[++i], &end, 10);
        else if (!strcmp(argv[i], "--lifetime") && i + 1 < argc) lifetime_s = strtol(argv[++i], &end, 10);
        if (!end || *end || queue > 65535 || lifetime_s < 1 || lifetime_s > 86400) {
            fprintf(stderr, "usage: nfq-floor --queue Q(0-65535) [--lifetime SECONDS(1-86400)]\n");
            return 64;
        }
    }
    if (queue < 0) {
        fprintf(stderr, "usage: nfq-floor --queue Q(0-65535) [--lifetime SECONDS(1-86400)]\n");
        return 64;
    }
    struct sigaction on_stop = {.sa_handler = request_stop}; // no SA_RESTART: recv() returns EINTR
    sigaction(SIGTERM, &on_stop, NULL);
    sigaction(SIGINT, &on_stop, NULL);
    sigaction(SIGALRM, &on_stop, NULL);
    alarm((unsigned)lifetime_s);

    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) {
        perror("nfq-floor: netfilter netlink socket");
        return 1;
    }
    // A full receive buffer would drop queued packets' notices (they then wait for nothing): make it
    // large, and keep going rather than fail if the kernel still reports an overrun.
    int on = 1, buffer = 8 << 20;
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &buffer, sizeof buffer);
    struct sockaddr_nl self = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&self, sizeof self) != 0) {
        perror("nfq-floor: bind");
        return 1;
    }
    bind_queue(fd, (uint16_t)queue);
    fprintf(stderr, "nfq-floor: accepting every packet of queue %ld\n", queue);

    static char batch[1 << 16];
    unsigned long accepted = 0;
    const uint16_t packet_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
    while (!stopping) {
        ssize_t n = recv(fd, batch, sizeof batch, 0);
        if (n < 0) {
            if (errno == EINTR || errno == ENOBUFS) continue;
            perror("nfq-floor: recv");
            return 1;
        }
        int left = (int)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)batch; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type != packet_type) continue;
            int64_t id = packet_id_of(h);
            if (id < 0) continue;
            accept_packet(fd, (uint16_t)queue, (uint32_t)id);
            accepted++;
        }
    }
    fprintf(stderr, "nfq-floor: accepted %lu packets\n", accepted);
    return 0;
}
