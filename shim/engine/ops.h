/* The LLM operations the shim knows, recognised by the endpoint at the end of a URL path. */
#ifndef LR_OPS_H
#define LR_OPS_H
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    OP_NONE = 0,
    OP_CHAT, OP_COMPLETIONS, OP_EMBEDDINGS, OP_MODELS, OP_RESPONSES, OP_MESSAGES,
    OP_OLLAMA_GENERATE, OP_OLLAMA_CHAT, OP_OLLAMA_EMBED, OP_OLLAMA_EMBEDDINGS, OP_OLLAMA_TAGS,
    OP_OLLAMA_PS, OP_OLLAMA_PULL, OP_OLLAMA_SHOW, OP_OLLAMA_VERSION,
    OP_COUNT
} lr_op_t;

/* How a streamed answer is framed on the wire. */
typedef enum { FRAME_SSE_DONE, FRAME_SSE_EVENTS, FRAME_NDJSON } lr_frame_t;

typedef struct {
    const char *endpoint; /* canonical endpoint, as llama-stack records it */
    bool listing;         /* matched whatever the method and body */
    lr_frame_t frame;
} lr_opinfo_t;

const lr_opinfo_t *lr_op_info(lr_op_t op);
/* Operation of a URL or path (query and fragment ignored); OP_NONE when not an LLM call. */
lr_op_t lr_op_of_url(const char *url);
/* Operation of a recorded endpoint string, with the older spellings found in recordings. */
lr_op_t lr_op_of_endpoint(const char *endpoint);
/* Split an URL into scheme/host/port (lower-cased host, default ports filled in). */
bool lr_url_hostport(const char *url, char *host, size_t hostcap, int *port, bool *https);
/* Start and length of the path in an URL ("/" when none). */
const char *lr_url_path(const char *url, size_t *len);
#endif
