/* Objects loaded with RTLD_DEEPBIND (PHP loads every extension so) look symbols up in their own
 * dependencies before the global scope, so their calls skip the preloaded hooks: ext/curl binds
 * curl_easy_* to libcurl, and libcurl binds getaddrinfo/connect to libc. After such a dlopen,
 * the imports of each newly loaded object that the global scope resolves to one of the shim's
 * hooks are rebound to it (its GOT slots rewritten: JUMP_SLOT, GLOB_DAT, 64-bit absolute), which
 * is what the object would have got without RTLD_DEEPBIND. Every other symbol keeps the deep
 * binding the program asked for, which is why this is preferred over stripping the flag.
 *
 * The exported dlopen is a small assembly stub: glibc resolves a dlopen relative to its caller
 * (namespace, RPATH/RUNPATH, $ORIGIN), so every call that is not rebound is forwarded with a jump
 * that keeps the caller's return address. Rebound are only calls from the base namespace with a
 * path (a '/', no '$'), where the caller does not change what is loaded.
 * Limits: constructors of the new objects run before the rebinding; dlmopen, and RTLD_DEEPBIND
 * calls naming a bare library (searched along the caller's paths), are left alone; symbols the
 * object fetches with dlsym(handle, …) keep reaching the library. x86-64 and AArch64 only. */
#include "base/log.h"
#include "base/util.h"
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__aarch64__)

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GLOB R_X86_64_GLOB_DAT
#define R_ABS R_X86_64_64
/* dlopen(file, mode): ask lr_dl_route(file, mode, return address) where to go, then jump there
 * with the registers and the stack as the caller left them. */
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, @function\n"
        "dlopen:\n"
        "    pushq %rdi\n"
        "    pushq %rsi\n"
        "    subq $8, %rsp\n"
        "    movq 24(%rsp), %rdx\n"
        "    call lr_dl_route\n"
        "    addq $8, %rsp\n"
        "    popq %rsi\n"
        "    popq %rdi\n"
        "    jmp *%rax\n"
        ".size dlopen, .-dlopen\n");
#else
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GLOB R_AARCH64_GLOB_DAT
#define R_ABS R_AARCH64_ABS64
__asm__(".text\n"
        ".globl dlopen\n"
        ".type dlopen, %function\n"
        "dlopen:\n"
        "    stp x29, x30, [sp, #-32]!\n"
        "    stp x0, x1, [sp, #16]\n"
        "    mov x2, x30\n"
        "    bl lr_dl_route\n"
        "    mov x16, x0\n"
        "    ldp x0, x1, [sp, #16]\n"
        "    ldp x29, x30, [sp], #32\n"
        "    br x16\n"
        ".size dlopen, .-dlopen\n");
#endif

typedef void *(*dlopen_fn)(const char *, int);
static dlopen_fn real_dlopen;

/* The shim's own dynamic symbols, to tell which imports are hooks (GNU hash lookup). */
static struct {
    const struct link_map *map;
    const ElfW(Sym) *sym;
    const char *str;
    const uint32_t *gnu;
} self;

static uintptr_t dyn_ptr(const struct link_map *l, ElfW(Addr) v)
{
    /* glibc relocates the d_ptr entries of .dynamic in place; some ports leave them as is */
    return v < l->l_addr ? l->l_addr + v : v;
}

static void self_init(void)
{
    Dl_info di;
    struct link_map *l = NULL;
    if (!dladdr1((void *)self_init, &di, (void **)&l, RTLD_DL_LINKMAP) || !l) return;
    for (const ElfW(Dyn) *d = l->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_SYMTAB) self.sym = (const ElfW(Sym) *)dyn_ptr(l, d->d_un.d_ptr);
        if (d->d_tag == DT_STRTAB) self.str = (const char *)dyn_ptr(l, d->d_un.d_ptr);
        if (d->d_tag == DT_GNU_HASH) self.gnu = (const uint32_t *)dyn_ptr(l, d->d_un.d_ptr);
    }
    if (self.sym && self.str && self.gnu) self.map = l;
}

/* Does the shim define (export) name? */
static bool self_defines(const char *name)
{
    uint32_t h = 5381;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = h * 33 + *p;
    const uint32_t nbuckets = self.gnu[0], symoff = self.gnu[1], bloom_size = self.gnu[2], shift = self.gnu[3];
    const ElfW(Addr) *bloom = (const ElfW(Addr) *)(self.gnu + 4);
    const unsigned bits = sizeof(ElfW(Addr)) * 8;
    ElfW(Addr) word = bloom[(h / bits) % bloom_size];
    if (!((word >> (h % bits)) & (word >> ((h >> shift) % bits)) & 1)) return false;
    const uint32_t *buckets = (const uint32_t *)(bloom + bloom_size), *chain = buckets + nbuckets;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoff) return false;
    for (;; i++) {
        uint32_t ch = chain[i - symoff];
        const ElfW(Sym) *s = &self.sym[i];
        if ((ch | 1) == (h | 1) && s->st_shndx != SHN_UNDEF && !strcmp(self.str + s->st_name, name)) return true;
        if (ch & 1) return false;
    }
}

/* Where the global scope resolves name, when that is the shim (a hook), else NULL. */
static void *hook_for(const char *name)
{
    if (!self_defines(name)) return NULL;
    void *f = dlsym(RTLD_DEFAULT, name);
    struct dl_find_object o;
    return f && _dl_find_object(f, &o) == 0 && o.dlfo_link_map == self.map ? f : NULL;
}

typedef struct {
    const struct link_map *l;
    const ElfW(Sym) *sym;
    const char *str;
    uintptr_t lo, hi; /* the RELRO pages glibc made read-only */
    uintptr_t w_lo[4], w_hi[4]; /* the writable segments (RELRO lies in one) */
    int nw;
    bool opened;
    int n;
} obj_t;

static void put(obj_t *o, uintptr_t *slot, uintptr_t v)
{
    uintptr_t a = (uintptr_t)slot;
    bool inside = false;
    for (int i = 0; i < o->nw && !inside; i++) inside = a >= o->w_lo[i] && a + sizeof v <= o->w_hi[i];
    if (!inside || *slot == v) return; /* a slot outside the data segments (text relocations) is left alone */
    if (a >= o->lo && a < o->hi && !o->opened) {
        if (mprotect((void *)o->lo, o->hi - o->lo, PROT_READ | PROT_WRITE) != 0) return;
        o->opened = true;
    }
    __atomic_store_n(slot, v, __ATOMIC_RELAXED);
    o->n++;
}

static void rebind_table(obj_t *o, const ElfW(Rela) *r, size_t size)
{
    for (size_t i = 0; r && i < size / sizeof *r; i++) {
        unsigned type = (unsigned)ELF64_R_TYPE(r[i].r_info), si = (unsigned)ELF64_R_SYM(r[i].r_info);
        if (!si || (type != R_SLOT && type != R_GLOB && type != R_ABS)) continue;
        void *f = hook_for(o->str + o->sym[si].st_name);
        if (f) put(o, (uintptr_t *)(o->l->l_addr + r[i].r_offset), (uintptr_t)f + (type == R_ABS ? (uintptr_t)r[i].r_addend : 0));
    }
}

static int segments(struct dl_phdr_info *info, size_t size, void *arg)
{
    obj_t *o = arg;
    if (info->dlpi_addr != o->l->l_addr || strcmp(info->dlpi_name ? info->dlpi_name : "", o->l->l_name ? o->l->l_name : ""))
        return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && o->nw < 4) {
            o->w_lo[o->nw] = info->dlpi_addr + ph->p_vaddr;
            o->w_hi[o->nw++] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        }
        if (ph->p_type == PT_GNU_RELRO) {
            uintptr_t s = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            o->lo = s & ~(page - 1); /* as glibc's _dl_protect_relro rounds */
            o->hi = (s + info->dlpi_phdr[i].p_memsz) & ~(page - 1);
        }
    }
    return 1;
}

static void rebind(const struct link_map *l)
{
    obj_t o = {.l = l};
    const ElfW(Rela) *rela = NULL, *jmprel = NULL;
    size_t relasz = 0, pltsz = 0;
    bool plt_rela = true;
    for (const ElfW(Dyn) *d = l->l_ld; d && d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: o.sym = (const ElfW(Sym) *)dyn_ptr(l, d->d_un.d_ptr); break;
        case DT_STRTAB: o.str = (const char *)dyn_ptr(l, d->d_un.d_ptr); break;
        case DT_RELA: rela = (const ElfW(Rela) *)dyn_ptr(l, d->d_un.d_ptr); break;
        case DT_RELASZ: relasz = d->d_un.d_val; break;
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)dyn_ptr(l, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltsz = d->d_un.d_val; break;
        case DT_PLTREL: plt_rela = d->d_un.d_val == DT_RELA; break;
        }
    }
    if (!o.sym || !o.str || !plt_rela) return;
    dl_iterate_phdr(segments, &o);
    rebind_table(&o, rela, relasz);
    rebind_table(&o, jmprel, pltsz);
    if (o.opened) mprotect((void *)o.lo, o.hi - o.lo, PROT_READ);
    if (o.n) lr_debug("%s (loaded with RTLD_DEEPBIND): %d imports bound to llmreplay's hooks", l->l_name, o.n);
}

static const struct link_map *tail(void)
{
    const struct link_map *l = _r_debug.r_map;
    while (l && l->l_next) l = l->l_next;
    return l;
}

/* A RTLD_DEEPBIND dlopen that the shim rebinds; reached by a jump from the stub. */
LR_HIDDEN void *lr_dl_deep(const char *file, int mode)
{
    const struct link_map *last = tail();
    void *h = real_dlopen(file, mode);
    if (!h || !last) return h;
    for (const struct link_map *l = last->l_next; l; l = l->l_next)
        if (l != self.map) rebind(l);
    return h;
}

static void *no_dlopen(const char *file, int mode)
{
    return NULL;
}

/* Called by the stub: where this dlopen goes. */
LR_HIDDEN __attribute__((used)) void *lr_dl_route(const char *file, int mode, void *caller)
{
    dlopen_fn r = __atomic_load_n(&real_dlopen, __ATOMIC_ACQUIRE);
    if (!r) {
        r = (dlopen_fn)dlsym(RTLD_NEXT, "dlopen");
        if (!r) return (void *)no_dlopen;
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, self_init);
        __atomic_store_n(&real_dlopen, r, __ATOMIC_RELEASE);
    }
    if (!(mode & RTLD_DEEPBIND) || (mode & RTLD_NOLOAD) || !file || !strchr(file, '/') || strchr(file, '$') || !self.map)
        return (void *)r;
    struct dl_find_object o;
    Lmid_t ns = -1;
    if (_dl_find_object(caller, &o) != 0 || dlinfo(o.dlfo_link_map, RTLD_DI_LMID, &ns) != 0 || ns != LM_ID_BASE)
        return (void *)r;
    return (void *)lr_dl_deep;
}
#endif
