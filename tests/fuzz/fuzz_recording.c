/* A recording file end to end: load (id mapping, validation, match key) and render (events,
 * headers), as a host does for the file that answers a request. */
#include "engine/render.h"
#include "fuzz.h"
#include <fcntl.h>

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    static char path[128];
    if (!path[0]) {
        fz_quiet();
        snprintf(path, sizeof path, "%s/rec.json", fz_scratch());
    }
    if (!lr_cjson()) abort();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, d, n) != (ssize_t)n) abort();
    close(fd);
    lr_ignore_t ig;
    lr_ignore_parse(&ig, NULL);
    char why[512];
    lr_rec_t *r = lr_rec_load(path, &ig, why, sizeof why);
    if (r) {
        lr_response_t *resp = lr_render_recording(r);
        if (!resp) abort();
        size_t sum = 0;
        for (int i = 0; i < resp->nevents; i++) sum += resp->events[i].len;
        if (sum != resp->body_len) abort();
        buf_t h;
        buf_init(&h);
        lr_render_head(resp, &h, resp->stream);
        lr_render_head(resp, &h, false);
        for (int i = 1; i < resp->nevents; i++) lr_event_gap_ms(resp, i, 5);
        buf_free(&h);
        resp->owned = true; /* answers are cached by the store; this one is ours */
        lr_response_free(resp);
        lr_rec_free(r);
    } else if (strnlen(why, sizeof why) == 0) {
        abort(); /* a refused file always says why */
    }
    lr_ignore_free(&ig);
    return 0;
}
