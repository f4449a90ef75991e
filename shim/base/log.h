/* One-line diagnostics on stderr, prefixed "llmreplay:". LLMREPLAY_LOG picks the level. */
#ifndef LR_LOG_H
#define LR_LOG_H
enum { LR_QUIET = 0, LR_ERROR = 1, LR_WARN = 2, LR_INFO = 3, LR_DEBUG = 4 };
int lr_log_level(void);
void lr_log_set_level(int level);
void lr_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define lr_warn(...) lr_log(LR_WARN, __VA_ARGS__)
#define lr_error(...) lr_log(LR_ERROR, __VA_ARGS__)
#define lr_debug(...) do { if (lr_log_level() >= LR_DEBUG) lr_log(LR_DEBUG, __VA_ARGS__); } while (0)
#endif
