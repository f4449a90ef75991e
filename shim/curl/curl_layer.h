/* The libcurl layer's shared state: the real libcurl, the shadow of each easy and multi
 * handle (the options the application set), and the steps of a replay. Internal to curl/. */
#ifndef LR_CURL_LAYER_H
#define LR_CURL_LAYER_H
#include "engine/engine.h"
#include "engine/faults.h"
#include "engine/record.h"
/* The shim needs curl.h's plain prototypes, not its type-checking macros. */
#define CURL_DISABLE_TYPECHECK 1
#define CURL_DISABLE_DEPRECATION 1
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <uthash.h>

/* The real libcurl (curl/real.c). */
typedef CURLcode (*setopt_fn)(CURL *, CURLoption, ...);
typedef CURLcode (*getinfo_fn)(CURL *, CURLINFO, ...);
typedef struct {
    setopt_fn easy_setopt;
    CURLcode (*easy_perform)(CURL *);
    getinfo_fn easy_getinfo;
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    CURL *(*easy_duphandle)(CURL *);
    CURLcode (*easy_pause)(CURL *, int);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMcode (*multi_wait)(CURLM *, struct curl_waitfd *, unsigned, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_timeout)(CURLM *, long *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLUcode (*url_get)(const CURLU *, CURLUPart, char **, unsigned int);
    void (*free)(void *);
} lr_curl_real_t;
extern lr_curl_real_t lr_curl_real;
#define real lr_curl_real
void curl_real(void);
/* Set while the real curl_easy_perform runs: libcurl's own multi calls then pass straight
 * through. Not lr_inside: the program's traffic inside libcurl still meets the socket layer. */
extern __thread int in_real_perform;
/* Run stmt as the real libcurl, which then meets no curl hook (but the socket layer). */
#define IN_REAL_CURL(stmt) do { in_real_perform++; stmt; in_real_perform--; } while (0)

typedef size_t (*rw_cb)(char *, size_t, size_t, void *);
typedef int (*xferinfo_cb)(void *, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
typedef int (*progress_cb)(void *, double, double, double, double);
typedef int (*debug_cb)(CURL *, curl_infotype, char *, size_t, void *);

enum { M_GET, M_POST, M_PUT, M_HEAD };

typedef struct xfer xfer_t;

typedef struct shadow {
    CURL *h;
    char *url;
    CURLU *curlu;
    char *custom;
    int method;
    const char *postfields;
    char *copied; /* COPYPOSTFIELDS */
    curl_off_t copied_len;
    curl_off_t postsize;
    curl_off_t infilesize;
    rw_cb read_cb, write_cb, header_cb;
    void *read_data, *write_data, *header_data;
    bool header_data_set, include_header, nobody, failonerror, noprogress, verbose, mime;
    xferinfo_cb xferinfo;
    progress_cb progress;
    void *progress_data;
    debug_cb debug;
    void *debug_data;
    char *errorbuffer;
    long timeout_ms;
    long low_speed_limit, low_speed_time; /* CURLOPT_LOW_SPEED_*: a fault's stall ends the transfer */
    struct curl_slist *headers; /* CURLOPT_HTTPHEADER (the application keeps it alive) */
    void *tee;                  /* an upstream transfer running in a multi handle */
    int in_cb;                  /* inside one of the application's callbacks for a replay */
    /* outcome of the last replayed transfer, for curl_easy_getinfo */
    bool replayed, https;
    long status;
    char *eff_url, *eff_method;
    const char *content_type;
    curl_off_t dl, ul, content_length;
    long header_size, request_size;
    double t_start, t_first, t_total;
    /* set while a replay runs inside a multi handle */
    xfer_t *xfer;
    CURLM *multi;
    UT_hash_handle hh;
} shadow_t;

struct xfer {
    shadow_t *sh;
    lr_response_t *resp;
    int next;       /* -1: headers not sent yet; then the index of the next event */
    size_t off;     /* bytes of that event already delivered (a paused write resumes there) */
    bool paused, done;
    double due;     /* pacing: when the next event may go */
    double pace_ms; /* LLMREPLAY_PACE_MS, read once per transfer */
    CURLcode result;
    char *body;     /* request body, kept for debug output */
    size_t body_len;
    lr_fplan_t fault;  /* a fault rule's plan for this answer (curl/fault.c) */
    lr_fstep_t fstep;  /* the fault step being delivered (a paused write resumes it) */
    bool fstep_open;
    double stall_until; /* inside a fault's stall until then (0: not stalled) */
    double stall_start;
};

typedef struct mshadow {
    CURLM *m;
    shadow_t **active; /* replays not finished yet */
    int nactive, capactive;
    CURLMsg *msgs;     /* finished replays waiting for curl_multi_info_read */
    int nmsgs, capmsgs;
    CURLMsg out;       /* what info_read returned last: valid until the next call */
    void *timer_cb;    /* CURLMOPT_TIMERFUNCTION, to wake event-driven applications */
    void *timer_data;
    UT_hash_handle hh;
} mshadow_t;

shadow_t *shadow_of(CURL *h, bool create);
void shadow_clear(shadow_t *s);
mshadow_t *mshadow_of(CURLM *m, bool create);
void shadow_set(shadow_t *s, CURLoption opt, long lv, void *pv, curl_off_t ov);
shadow_t *shadow_dup(const shadow_t *o, CURL *h);
extern pthread_mutex_t table_lock;
extern shadow_t *shadows;
extern mshadow_t *mshadows;
char *transfer_url(shadow_t *s);
const char *method_name(const shadow_t *s);
xfer_t *xfer_start(shadow_t *s, CURLcode *err);
void xfer_free(xfer_t *x);
bool intercepted(shadow_t *s);
/* replay.c's steps, shared with curl/fault.c */
void set_error(shadow_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool progress(shadow_t *s, xfer_t *x);
bool send_headers(shadow_t *s, xfer_t *x);
bool send_event(shadow_t *s, xfer_t *x, const lr_event_t *ev);
/* One step of a replay under a fault rule: libcurl's errors for resets, EOF, stalls. */
void xfer_fault_step(xfer_t *x);
CURLcode replay_easy(shadow_t *s);
void ms_push_msg(mshadow_t *ms, CURL *h, CURLcode rc);
void ms_drop(mshadow_t *ms, shadow_t *s);
int ms_run(mshadow_t *ms);
long ms_due_ms(mshadow_t *ms);
void ms_wake(mshadow_t *ms);
static inline double elapsed(const shadow_t *s) { return lr_now() - s->t_start; }
typedef struct tee tee_t;
tee_t *upstream_begin(shadow_t *s);
void upstream_end(shadow_t *s, tee_t *t, CURLcode rc);
extern int tees_in_multi; /* upstream transfers running inside multi handles (atomic) */
bool goes_upstream(shadow_t *s);
CURLcode upstream_easy(shadow_t *s, CURL *h);
#endif
