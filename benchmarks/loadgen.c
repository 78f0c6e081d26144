/* The webhook benchmark's load generator (benchmarks/service_bench.py compiles it with cc at run time).
 *
 * Why C: the Python generator costs ~300 us of CPU per request on the same two cores as the server, so
 * at 5,000 requests/s it alone would need 1.5 cores. This one costs a few us (two syscalls a request).
 *
 *   loadgen open   HOST PORT HEAD BODY FIRST REQ_PER_S SECONDS CONNECTIONS
 *   loadgen closed HOST PORT HEAD BODY FIRST 0         SECONDS CONNECTIONS
 *
 * HEAD is a file with the request head up to and including "Content-Length: "; BODY a file with the body
 * template, where every "@N@" becomes the request's own number (FIRST, FIRST+1, ...), so each request is
 * a distinct notification. HTTP/1.1, CONNECTIONS keep-alive connections, one request in flight on each
 * (as Alertmanager sends), non-blocking sockets on one epoll loop.
 *
 * open:   request n is due at start + n / REQ_PER_S, whatever the server does. It is sent at its due time
 *         on an idle connection, or, when every connection is busy, as soon as one is free; its latency
 *         counts from the due time (no coordinated omission: waiting for a connection is latency too).
 *         The loop sleeps in epoll_wait with a millisecond timeout rounded up, so a request may leave up
 *         to 1 ms after its due time; that delay is counted in its latency, never hidden.
 * closed: each connection sends its next request as soon as the answer to the last came back, for
 *         SECONDS; latency from the send.
 *
 * Output (stdout): "requests ERRORS WALL_S CPU_S" then one latency in seconds per line, for every request
 * answered 202; any other answer, or a connection that fails, counts as an error. CPU_S is this
 * process's own user+system CPU (getrusage), so the benchmark can say what the generator took.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int fd;
    int busy;           /* a request is in flight */
    double due;         /* its due (open) or send (closed) time */
    char *out;          /* the request being written */
    size_t out_len, out_off;
    char in[65536];     /* the answer being read */
    size_t in_len;
} conn_t;

static const char *host, *port;
static char *head, *body;
static size_t head_len, body_len;
static double *lat;
static size_t lat_n, lat_cap;
static long errors;
static int ep;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    if (fread(buf, 1, n, f) != (size_t)n) { perror(path); exit(2); }
    buf[n] = 0;
    fclose(f);
    *len = n;
    return buf;
}

/* The full request for number `num` (head, Content-Length, body with @N@ replaced). */
static char *build(long num, size_t *len) {
    char digits[32];
    int dl = snprintf(digits, sizeof digits, "%ld", num);
    size_t count = 0;
    for (char *p = body; (p = strstr(p, "@N@")); p += 3) count++;
    size_t blen = body_len + count * dl - count * 3;
    char *req = malloc(head_len + 32 + blen);
    size_t off = 0;
    memcpy(req, head, head_len);
    off += head_len;
    off += sprintf(req + off, "%zu\r\n\r\n", blen);
    const char *src = body;
    for (char *p; (p = strstr(src, "@N@")); src = p + 3) {
        memcpy(req + off, src, p - src);
        off += p - src;
        memcpy(req + off, digits, dl);
        off += dl;
    }
    size_t rest = body + body_len - src;
    memcpy(req + off, src, rest);
    off += rest;
    *len = off;
    return req;
}

static void record(double latency) {
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        lat = realloc(lat, lat_cap * sizeof *lat);
    }
    lat[lat_n++] = latency;
}

static void open_conn(conn_t *c) {
    struct addrinfo hints = {0}, *res;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &res) != 0) { fprintf(stderr, "cannot resolve %s\n", host); exit(2); }
    c->fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (connect(c->fd, res->ai_addr, res->ai_addrlen) != 0) { perror("connect"); exit(2); }
    freeaddrinfo(res);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->busy = 0;
    c->in_len = 0;
}

static void fail(conn_t *c) {  /* the connection broke: its request is an error; a new connection */
    if (c->busy) errors++;
    free(c->out);
    c->out = NULL;
    close(c->fd);
    open_conn(c);
}

static void flush_out(conn_t *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                return;
            }
            fail(c);
            return;
        }
        c->out_off += n;
    }
    free(c->out);
    c->out = NULL;
}

static void send_req(conn_t *c, long num, double due) {
    c->out = build(num, &c->out_len);
    c->out_off = 0;
    c->busy = 1;
    c->due = due;
    c->in_len = 0;
    flush_out(c);
}

/* Read what arrived; 1 when a whole answer was read (and recorded). */
static int read_answer(conn_t *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len - 1);
        if (n == 0 || (n < 0 && errno != EAGAIN)) { fail(c); return 0; }
        if (n < 0) break;
        c->in_len += n;
        if (c->in_len >= sizeof c->in - 1) break;
    }
    c->in[c->in_len] = 0;
    char *end = strstr(c->in, "\r\n\r\n");
    if (!end) return 0;
    size_t header_len = end + 4 - c->in, clen = 0;
    char *p = strcasestr(c->in, "\r\ncontent-length:");
    if (p && p < end) clen = strtoul(p + 17, NULL, 10);
    if (c->in_len < header_len + clen) return 0;
    int status = c->in_len > 12 ? atoi(c->in + 9) : 0;
    if (!c->busy) { errors++; c->in_len = 0; return 0; }  /* an answer nobody asked for */
    if (status == 202) record(now() - c->due); else errors++;
    c->busy = 0;
    size_t extra = c->in_len - header_len - clen;
    memmove(c->in, c->in + header_len + clen, extra);
    c->in_len = extra;
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: loadgen open|closed HOST PORT HEAD BODY FIRST REQ_PER_S SECONDS CONNECTIONS\n");
        return 2;
    }
    int open_loop = strcmp(argv[1], "open") == 0;
    host = argv[2];
    port = argv[3];
    head = slurp(argv[4], &head_len);
    body = slurp(argv[5], &body_len);
    long first = atol(argv[6]);
    double per_s = atof(argv[7]), seconds = atof(argv[8]);
    int nconn = atoi(argv[9]);
    ep = epoll_create1(0);
    conn_t *conns = calloc(nconn, sizeof *conns);
    for (int i = 0; i < nconn; i++) open_conn(&conns[i]);
    long total = open_loop ? (long)(per_s * seconds) : -1, sent = 0, done = 0;
    if (open_loop && total < 1) total = 1;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double start = now() + 0.05, stop_at = start + seconds;
    while (now() < start) usleep(1000);
    if (!open_loop)
        for (int i = 0; i < nconn; i++) send_req(&conns[i], first + sent++, now());
    struct epoll_event events[256];
    for (;;) {
        double t = now();
        if (open_loop) {
            /* everything due, on idle connections (round robin from the last one used) */
            static int next_idle = 0;
            while (sent < total && start + sent / per_s <= t) {
                int found = -1;
                for (int k = 0; k < nconn; k++) {
                    int i = (next_idle + k) % nconn;
                    if (!conns[i].busy) { found = i; break; }
                }
                if (found < 0) break;  /* all busy: it goes when one is free, latency from its due time */
                send_req(&conns[found], first + sent, start + sent / per_s);
                sent++;
                next_idle = (found + 1) % nconn;
            }
            if (sent >= total) {
                int busy = 0;
                for (int i = 0; i < nconn; i++) busy += conns[i].busy;
                if (!busy) break;
            }
        } else if (t >= stop_at) {
            int busy = 0;
            for (int i = 0; i < nconn; i++) busy += conns[i].busy;
            if (!busy) break;
        }
        int timeout = 1000;
        if (open_loop && sent < total) {
            double wait = start + sent / per_s - now();
            timeout = wait <= 0 ? 0 : (int)(wait * 1000) + 1;
            /* every connection busy: nothing can be sent before an answer comes */
            int idle = 0;
            for (int i = 0; i < nconn && !idle; i++) idle = !conns[i].busy;
            if (!idle) timeout = 1000;
        }
        int n = epoll_wait(ep, events, 256, timeout);
        for (int k = 0; k < n; k++) {
            conn_t *c = events[k].data.ptr;
            if (events[k].events & EPOLLOUT) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (c->out) flush_out(c);
            }
            if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                if (read_answer(c)) {
                    done++;
                    if (!open_loop && now() < stop_at) send_req(c, first + sent++, now());
                } else if (!c->busy && !open_loop && now() < stop_at && !c->out) {
                    send_req(c, first + sent++, now());  /* after a broken connection */
                }
            }
        }
    }
    double wall = now() - start;
    getrusage(RUSAGE_SELF, &ru1);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
                 ((ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec)) / 1e6;
    printf("%zu %ld %.6f %.6f\n", lat_n, errors, wall, cpu);
    for (size_t i = 0; i < lat_n; i++) printf("%.7f\n", lat[i]);
    for (int i = 0; i < nconn; i++) close(conns[i].fd);
    return 0;
}
