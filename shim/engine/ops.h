/* The LLM operations the shim knows: one table, a row per operation, holding everything the
 * engine needs about it. Match keys and the index name an operation by its stable name, never
 * by its row number, so rows can be added anywhere. */
#ifndef LR_OPS_H
#define LR_OPS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "json/jspan.h"

/* Row numbers of the operations code refers to by name. A new operation needs no constant
 * here: it is a row appended to the table in ops.c, found by its URL or endpoint. */
typedef enum {
    OP_NONE = 0,
    OP_CHAT, OP_COMPLETIONS, OP_EMBEDDINGS, OP_MODELS, OP_RESPONSES, OP_MESSAGES,
    OP_OLLAMA_GENERATE, OP_OLLAMA_CHAT, OP_OLLAMA_EMBED, OP_OLLAMA_EMBEDDINGS, OP_OLLAMA_TAGS,
    OP_OLLAMA_PS, OP_OLLAMA_PULL, OP_OLLAMA_SHOW, OP_OLLAMA_VERSION,
    OP_NAMED
} lr_op_t;

/* How a streamed answer is framed on the wire. */
typedef enum { FRAME_SSE_DONE, FRAME_SSE_EVENTS, FRAME_NDJSON } lr_frame_t;
/* The shape of an error body: OpenAI's {"error":{"message",...}}, Ollama's {"error":"..."},
 * Google's {"error":{"code","message","status"}}. */
typedef enum { ERR_OPENAI, ERR_OLLAMA, ERR_GOOGLE } lr_dialect_t;
/* What must come before the URL tail: anything, or an API-ish segment (v1, v1beta, openai,
 * serving-endpoints, deployments/NAME) so that an unrelated "/models" passes untouched. */
typedef enum { PARENT_ANY, PARENT_API } lr_parent_t;

typedef struct {
    const char *name;       /* stable: match keys and the index store it */
    const char *endpoint;   /* canonical endpoint, as llama-stack records it */
    const char *tail;       /* path segments that end its URLs: "chat/completions", "api/tags";
                             * ":verb" is a last segment MODEL:verb (Google's methods) */
    lr_parent_t parent;
    const char *aliases;    /* older endpoint spellings found in recordings, comma separated */
    const char *match_as;   /* name of the operation it matches as one with (NULL: itself) */
    bool listing;           /* matched whatever the method and body */
    lr_frame_t frame;
    lr_dialect_t errors;
    const char *type, *chunk_type;     /* llama-stack __type__ of a plain body, of a stream chunk */
    const char *alt_object, *alt_type; /* a payload whose "object" is alt_object is an alt_type */
    const char *list_wrap;  /* a body recorded as a list is served as list_wrap items "]}" */
    const char *record_items; /* recorded as the list of this field's items (llama-stack) */
    const char *hash_shared;  /* paths llama-stack hashes without the test id, comma separated */
    const char *host;       /* recognised only on this host (NULL: any host) */
    bool google;            /* Google's generateContent family: the model is in the URL, SDK-args
                             * recordings are converted to the wire (engine/gemini.c) */
    bool local;             /* answered by the shim in replay, never recorded (OAuth token) */
    const char *ls_text;    /* llmreplay ls: payload fields holding its text ("results.*.text": * is
                             * every item), besides the common ones (choices, response, content…) */
} lr_opinfo_t;

/* Row op; row OP_NONE for anything out of range. */
const lr_opinfo_t *lr_op_info(lr_op_t op);
int lr_op_count(void);
/* The row named name (OP_NONE when none). */
lr_op_t lr_op_named(const char *name);
/* Matching treats an operation and its match_as as one: the body tells them apart. */
lr_op_t lr_op_class(lr_op_t op);
/* Digest of the table's names, classes and listing flags: an index made with another table
 * is rebuilt. */
uint64_t lr_ops_digest(void);
/* The built-in rows, and a replacement table (tests); NULL restores the built-in one. */
const lr_opinfo_t *lr_ops_builtin(int *n);
void lr_ops_use(const lr_opinfo_t *rows, int n);
/* llama-stack's __type__ of a recorded payload of op (a stream chunk or a plain body). */
const char *lr_op_type_name(lr_op_t op, bool chunk, span_t payload);
/* Does llama-stack hash a request to path [p, p+n) without the test id? */
bool lr_op_hash_shared(const char *p, size_t n);

/* Operation of a URL or path (query and fragment ignored); OP_NONE when not an LLM call. */
lr_op_t lr_op_of_url(const char *url);
/* Operation of a recorded endpoint string, with the older spellings found in recordings. */
lr_op_t lr_op_of_endpoint(const char *endpoint);
/* Split an URL into scheme/host/port (lower-cased host, default ports filled in). */
bool lr_url_hostport(const char *url, char *host, size_t hostcap, int *port, bool *https);
/* Start and length of the path in an URL ("/" when none). */
const char *lr_url_path(const char *url, size_t *len);
#endif
