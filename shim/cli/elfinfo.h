/* What kind of program an executable is, from its ELF headers: whether LD_PRELOAD can reach it. */
#ifndef LR_ELFINFO_H
#define LR_ELFINFO_H
#include <stdbool.h>

typedef struct {
    bool elf;    /* a 64-bit ELF file */
    bool is_static; /* no program interpreter: the loader never runs, LD_PRELOAD is ignored */
    bool go;     /* a Go program (.note.go.buildid or .go.buildinfo section): own DNS and syscalls */
    bool setid;  /* setuid/setgid: the loader drops LD_PRELOAD */
} lr_elfinfo_t;

/* Inspect the file at path; false when it cannot be read (info is then all false). */
bool lr_elfinfo(const char *path, lr_elfinfo_t *info);
#endif
