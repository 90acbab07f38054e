// connect-load: the load generator of `npm run bench -- agent`. It measures what a filter adds to a
// TCP connect() on loopback, so it is written in C: a client in Node would put Node's event loop and
// garbage collector into every figure, and the agent under test is itself a Node process competing for
// the same cores. Compiled by bench/agent/index.ts with the machine's gcc into a temporary directory.
//
//   connect-load server --port P [--threads T] [--lifetime S] [--ready FILE]
//       Listens on 127.0.0.1:P and closes every connection it accepts (T accepting threads, default 2).
//   connect-load run --port P [--clients C] [--count N] [--time-cap S] [--warmup W]
//                    [--fork] [--extra-fds K] [--graceful]
//       N blocking connect()s shared by C closed-loop client threads, each connect timed with
//       CLOCK_MONOTONIC from just before connect() to its return (the SYN, its trip through any queue
//       and the SYN-ACK). Sockets are closed with RST (SO_LINGER 0) so no TIME_WAIT accumulates, unless
//       --graceful. --fork: every connect is made by a newly forked process (a filter meets an unseen
//       process each time). --extra-fds: the connecting process first opens K descriptors, as a browser
//       holds many. W unrecorded connects warm caches first. Stops at N or after S seconds.
//       Prints one JSON object: ok, errors, first_error, elapsed_s, cps, p50_us, p90_us, p99_us, max_us.
//   connect-load idle --pairs K [--lifetime S] [--ready FILE]
//       Holds K established loopback connections, both ends open (2K sockets), spread over worker
//       processes that each stay under the descriptor limit: sockets a filter must not have to walk.
//
// Every mode ends by itself after --lifetime seconds (default 900), so nothing outlives a crashed bench.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// ------------------------------------------------------------------------------------- options
struct options {
    int port;
    int threads;
    int clients;
    long count;
    double time_cap_s;
    long warmup;
    long extra_fds;
    long pairs;
    unsigned lifetime_s;
    const char *ready_file;
    int fork_each;
    int graceful;
};

static void usage_exit(const char *why) {
    if (why) fprintf(stderr, "connect-load: %s\n", why);
    fprintf(stderr,
            "usage: connect-load server --port P [--threads T] [--lifetime S] [--ready FILE]\n"
            "       connect-load run --port P [--clients C] [--count N] [--time-cap S] [--warmup W]\n"
            "                        [--fork] [--extra-fds K] [--graceful]\n"
            "       connect-load idle --pairs K [--lifetime S] [--ready FILE]\n");
    exit(64);
}

// A whole decimal number within [min, max], or exit with the option's name.
static long parse_long(const char *name, const char *text, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "connect-load: %s wants a whole number in [%ld, %ld], got \"%s\"\n", name, min, max, text);
        exit(64);
    }
    return v;
}

static struct options parse_options(int argc, char **argv) {
    struct options o = {.threads = 2, .clients = 1, .count = 10000, .time_cap_s = 15, .warmup = 300, .lifetime_s = 900};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        // flags without a value
        if (!strcmp(a, "--fork")) { o.fork_each = 1; continue; }
        if (!strcmp(a, "--graceful")) { o.graceful = 1; continue; }
        if (i + 1 >= argc) usage_exit("an option is missing its value");
        const char *v = argv[++i];
        if (!strcmp(a, "--port")) o.port = (int)parse_long(a, v, 1, 65535);
        else if (!strcmp(a, "--threads")) o.threads = (int)parse_long(a, v, 1, 64);
        else if (!strcmp(a, "--clients")) o.clients = (int)parse_long(a, v, 1, 1024);
        else if (!strcmp(a, "--count")) o.count = parse_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--time-cap")) o.time_cap_s = (double)parse_long(a, v, 1, 86400);
        else if (!strcmp(a, "--warmup")) o.warmup = parse_long(a, v, 0, 1000000);
        else if (!strcmp(a, "--extra-fds")) o.extra_fds = parse_long(a, v, 0, 10000000);
        else if (!strcmp(a, "--pairs")) o.pairs = parse_long(a, v, 1, 10000000);
        else if (!strcmp(a, "--lifetime")) o.lifetime_s = (unsigned)parse_long(a, v, 1, 86400);
        else if (!strcmp(a, "--ready")) o.ready_file = v;
        else {
            fprintf(stderr, "connect-load: unknown option %s\n", a);
            usage_exit(NULL);
        }
    }
    return o;
}

// ------------------------------------------------------------------------------------- helpers
static uint64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

// The bench waits for this file: written only once the mode is really serving.
static void announce_ready(const char *path) {
    if (!path) return;
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0) {
        perror("connect-load: writing the ready file");
        exit(1);
    }
}

static void raise_fd_limit(rlim_t wanted) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t target = wanted == 0 || wanted > rl.rlim_max ? rl.rlim_max : wanted;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int listen_on(struct sockaddr_in *where, int backlog) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
        bind(fd, (struct sockaddr *)where, sizeof *where) != 0 || listen(fd, backlog) != 0) {
        perror("connect-load: listen");
        exit(1);
    }
    socklen_t len = sizeof *where;
    getsockname(fd, (struct sockaddr *)where, &len); // learn the port when 0 was asked for
    return fd;
}

// ------------------------------------------------------------------------------------- server
static int server_fd;

static void *accept_and_close(void *unused) {
    (void)unused;
    for (;;) {
        int fd = accept4(server_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        else if (errno != EINTR && errno != ECONNABORTED && errno != EMFILE && errno != ENFILE) {
            perror("connect-load: accept");
            exit(1);
        }
    }
    return NULL;
}

static int run_server(const struct options *o) {
    if (!o->port) usage_exit("server needs --port");
    struct sockaddr_in sa = loopback(o->port);
    server_fd = listen_on(&sa, 65535); // the kernel caps it at net.core.somaxconn
    alarm(o->lifetime_s);
    pthread_t extra[64];
    for (int i = 1; i < o->threads; i++) {
        if (pthread_create(&extra[i], NULL, accept_and_close, NULL) != 0) {
            fprintf(stderr, "connect-load: cannot start accepting thread %d\n", i);
            return 1;
        }
    }
    announce_ready(o->ready_file);
    accept_and_close(NULL);
    return 1;
}

// ------------------------------------------------------------------------------------- run
static struct options opt;
static struct sockaddr_in target;
// One slot per connect: its latency in ns, or 0 if it failed. Shared with forked children (MAP_SHARED)
// so a child writes its own figure and nothing has to be sent back through a pipe.
static uint64_t *latency_ns;
static atomic_long next_slot;
static atomic_long failures;
static atomic_int first_errno;
static uint64_t stop_at_ns;
static pthread_barrier_t start_line;

// Times one connect() from this process. Returns its latency in ns (at least 1), or 0 and sets *err.
static uint64_t timed_connect(int *err) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return 0;
    }
    if (!opt.graceful) {
        struct linger reset = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    }
    // a dropped SYN is retransmitted after 1 s: a connect still waiting after 3 s counts as failed
    struct timeval limit = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    uint64_t start = monotonic_ns();
    int rc = connect(fd, (struct sockaddr *)&target, sizeof target);
    uint64_t took = monotonic_ns() - start;
    if (rc != 0) *err = errno;
    close(fd);
    return rc == 0 ? (took ? took : 1) : 0;
}

// The same from a new child process; the child writes the latency into *slot itself and reports a
// failure's errno as its exit status.
static uint64_t timed_connect_in_child(uint64_t *slot, int *err) {
    pid_t child = fork();
    if (child < 0) {
        *err = errno;
        return 0;
    }
    if (child == 0) {
        int e = 0;
        *slot = timed_connect(&e);
        _exit(*slot ? 0 : (e > 0 && e < 256 ? e : 255));
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            *err = errno;
            return 0;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        *err = WIFEXITED(status) ? WEXITSTATUS(status) : ECHILD;
        *slot = 0;
        return 0;
    }
    return *slot;
}

static uint64_t one_connect(uint64_t *slot, int *err) {
    if (opt.fork_each) return timed_connect_in_child(slot, err);
    *slot = timed_connect(err);
    return *slot;
}

static void *client_loop(void *unused) {
    (void)unused;
    pthread_barrier_wait(&start_line);
    for (;;) {
        long i = atomic_fetch_add(&next_slot, 1);
        if (i >= opt.count) break;
        int err = 0;
        if (!one_connect(&latency_ns[i], &err)) {
            atomic_fetch_add(&failures, 1);
            int none = 0;
            atomic_compare_exchange_strong(&first_errno, &none, err);
        }
        if (monotonic_ns() > stop_at_ns) break;
    }
    return NULL;
}

static int by_value(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// Nearest-rank percentile of n sorted samples, in µs.
static double percentile_us(const uint64_t *sorted, long n, double q) {
    if (n == 0) return 0;
    long rank = (long)(q * (double)n);
    if ((double)rank < q * (double)n) rank++;
    if (rank < 1) rank = 1;
    return (double)sorted[rank - 1] / 1000.0;
}

// Opens K descriptors this process keeps, as a descriptor-heavy client would.
static void hold_extra_descriptors(long k) {
    if (k <= 0) return;
    raise_fd_limit((rlim_t)k + 1024);
    for (long i = 0; i < k; i++) {
        if (open("/dev/null", O_RDONLY | O_CLOEXEC) < 0) {
            fprintf(stderr, "connect-load: opening extra descriptor %ld of %ld: %s (raise ulimit -Hn)\n", i + 1, k, strerror(errno));
            exit(1);
        }
    }
}

static int run_clients(void) {
    if (!opt.port) usage_exit("run needs --port");
    target = loopback(opt.port);
    hold_extra_descriptors(opt.extra_fds);
    alarm(opt.lifetime_s);

    size_t bytes = (size_t)opt.count * sizeof *latency_ns;
    latency_ns = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (latency_ns == MAP_FAILED) {
        perror("connect-load: mmap");
        return 1;
    }
    // warm-up: the server, conntrack and the filter's caches; not recorded (slot 0 is reused, then cleared)
    for (long i = 0; i < opt.warmup; i++) {
        int err;
        one_connect(&latency_ns[0], &err);
    }
    latency_ns[0] = 0;
    pthread_t *clients = calloc((size_t)opt.clients, sizeof *clients);
    if (!clients || pthread_barrier_init(&start_line, NULL, (unsigned)opt.clients + 1) != 0) {
        fprintf(stderr, "connect-load: out of memory\n");
        return 1;
    }
    for (int i = 0; i < opt.clients; i++) {
        if (pthread_create(&clients[i], NULL, client_loop, NULL) != 0) {
            fprintf(stderr, "connect-load: cannot start client thread %d\n", i);
            return 1;
        }
    }
    uint64_t started = monotonic_ns();
    stop_at_ns = started + (uint64_t)(opt.time_cap_s * 1e9);
    pthread_barrier_wait(&start_line);
    for (int i = 0; i < opt.clients; i++) pthread_join(clients[i], NULL);
    double elapsed_s = (double)(monotonic_ns() - started) / 1e9;

    long attempted = atomic_load(&next_slot);
    if (attempted > opt.count) attempted = opt.count;
    long ok = 0;
    for (long i = 0; i < attempted; i++)
        if (latency_ns[i]) latency_ns[ok++] = latency_ns[i];
    qsort(latency_ns, (size_t)ok, sizeof *latency_ns, by_value);
    int err = atomic_load(&first_errno);
    printf("{\"clients\":%d,\"requested\":%ld,\"attempted\":%ld,\"ok\":%ld,\"errors\":%ld,\"first_error\":\"%s\","
           "\"elapsed_s\":%.3f,\"cps\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,"
           "\"fork_each\":%s,\"extra_fds\":%ld,\"close\":\"%s\",\"hit_time_cap\":%s}\n",
           opt.clients, opt.count, attempted, ok, atomic_load(&failures), err ? strerror(err) : "", elapsed_s,
           elapsed_s > 0 ? (double)ok / elapsed_s : 0.0, percentile_us(latency_ns, ok, 0.50),
           percentile_us(latency_ns, ok, 0.90), percentile_us(latency_ns, ok, 0.99),
           ok ? (double)latency_ns[ok - 1] / 1000.0 : 0.0, opt.fork_each ? "true" : "false", opt.extra_fds,
           opt.graceful ? "graceful" : "rst", attempted < opt.count ? "true" : "false");
    return ok > 0 ? 0 : 2;
}

// ------------------------------------------------------------------------------------- idle
#define MAX_IDLE_WORKERS 512
static pid_t idle_workers[MAX_IDLE_WORKERS];
static int idle_worker_count;

static void stop_idle_workers(int sig) {
    for (int i = 0; i < idle_worker_count; i++) kill(idle_workers[i], SIGTERM);
    signal(sig, SIG_DFL);
    raise(sig);
}

// One worker: its own listener on a free port, `pairs` connections to it, both ends kept open.
static void idle_worker(long pairs, int report_fd) {
    raise_fd_limit(0);
    struct sockaddr_in sa = loopback(0);
    int listener = listen_on(&sa, 4096);
    for (long i = 0; i < pairs; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || accept4(listener, NULL, NULL, SOCK_CLOEXEC) < 0) {
            fprintf(stderr, "connect-load: idle connection %ld: %s\n", i + 1, strerror(errno));
            _exit(1);
        }
    }
    char done = 1;
    if (write(report_fd, &done, 1) != 1) _exit(1);
    for (;;) pause(); // until the parent's SIGTERM or the inherited alarm
}

static int run_idle(void) {
    if (!opt.pairs) usage_exit("idle needs --pairs");
    raise_fd_limit(0);
    struct rlimit rl;
    long per_worker = 4000;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY) {
        long fits = ((long)rl.rlim_max - 64) / 2; // two descriptors a pair, a few spare
        if (fits < per_worker) per_worker = fits;
    }
    if (per_worker < 1) usage_exit("the descriptor limit is too low to hold connections");
    if ((opt.pairs + per_worker - 1) / per_worker > MAX_IDLE_WORKERS) usage_exit("too many pairs for the descriptor limit");
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        perror("connect-load: pipe");
        return 1;
    }
    signal(SIGTERM, stop_idle_workers);
    signal(SIGINT, stop_idle_workers);
    signal(SIGALRM, stop_idle_workers);
    alarm(opt.lifetime_s);
    for (long left = opt.pairs; left > 0; left -= per_worker) {
        pid_t child = fork();
        if (child < 0) {
            perror("connect-load: fork");
            stop_idle_workers(SIGTERM);
        }
        if (child == 0) {
            close(report[0]);
            idle_worker(left < per_worker ? left : per_worker, report[1]);
        }
        idle_workers[idle_worker_count++] = child;
    }
    close(report[1]);
    for (int i = 0; i < idle_worker_count; i++) {
        char done;
        if (read(report[0], &done, 1) != 1) {
            fprintf(stderr, "connect-load: an idle worker failed\n");
            stop_idle_workers(SIGTERM);
        }
    }
    announce_ready(opt.ready_file);
    for (;;) pause();
}

int main(int argc, char **argv) {
    if (argc < 2) usage_exit(NULL);
    opt = parse_options(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    if (!strcmp(argv[1], "server")) return run_server(&opt);
    if (!strcmp(argv[1], "run")) return run_clients();
    if (!strcmp(argv[1], "idle")) return run_idle();
    usage_exit("unknown mode");
    return 64;
}
