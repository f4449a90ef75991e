/* Operation and URL parsing (engine/ops.c) and the ALPN list of a ClientHello (lr_alpn_select), operations by name (lr_op_named, lr_op_class). */
#include "engine/ops.h"
#include "base/util.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    char *s = fz_str(d, n), host[128], list[64];
    lr_op_t op = lr_op_of_url(s);
    if (op < OP_NONE || (int)op >= lr_op_count()) abort();
    if (op != OP_NONE && !lr_op_info(op)->endpoint) abort();
    op = lr_op_of_endpoint(s);
    if (op < OP_NONE || (int)op >= lr_op_count()) abort();
    int port = 0;
    bool https = false;
    if (lr_url_hostport(s, host, sizeof host, &port, &https) && strnlen(host, sizeof host) >= sizeof host) abort();
    size_t pl;
    const char *path = lr_url_path(s, &pl);
    if (path && !(path >= s && path + pl <= s + n) && strcmp(path, "/")) abort();
    const char *sel = lr_alpn_select(d, (unsigned)n, list, sizeof list);
    if (sel && strcmp(sel, "http/1.1") && strcmp(sel, "h2")) abort();
    if (strnlen(list, sizeof list) >= sizeof list) abort();
    lr_op_t nm = lr_op_named(s);
    if (nm < OP_NONE || (int)nm >= lr_op_count() || lr_op_class(nm) < OP_NONE || (int)lr_op_class(nm) >= lr_op_count()) abort();
    free(s);
    return 0;
}
