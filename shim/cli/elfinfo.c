/* Go and static detection from the ELF headers alone: the program interpreter (PT_INTERP) and
 * the section names. Go puts its build id in .note.go.buildid (near the start of the file) and
 * its module data in .go.buildinfo; both survive `strip` of symbols. Bounded reads only. */
#include "cli/elfinfo.h"
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool go_sections(int fd, const Elf64_Ehdr *eh, off_t size)
{
    if (!eh->e_shoff || eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 || eh->e_shnum > 4096 ||
        eh->e_shstrndx >= eh->e_shnum || (off_t)eh->e_shoff > size)
        return false;
    Elf64_Shdr str;
    if (pread(fd, &str, sizeof str, (off_t)(eh->e_shoff + (Elf64_Off)eh->e_shstrndx * sizeof str)) != (ssize_t)sizeof str)
        return false;
    if (str.sh_size == 0 || str.sh_size > (1u << 20) || (off_t)(str.sh_offset + str.sh_size) > size) return false;
    char *names = malloc(str.sh_size + 1);
    if (!names) return false;
    bool go = false;
    if (pread(fd, names, str.sh_size, (off_t)str.sh_offset) == (ssize_t)str.sh_size) {
        names[str.sh_size] = 0;
        for (int i = 0; i < eh->e_shnum && !go; i++) {
            Elf64_Shdr sh;
            if (pread(fd, &sh, sizeof sh, (off_t)(eh->e_shoff + (Elf64_Off)i * sizeof sh)) != (ssize_t)sizeof sh) break;
            if (sh.sh_name >= str.sh_size) continue;
            const char *n = names + sh.sh_name;
            go = !strcmp(n, ".note.go.buildid") || !strcmp(n, ".go.buildinfo");
        }
    }
    free(names);
    return go;
}

bool lr_elfinfo(const char *path, lr_elfinfo_t *info)
{
    memset(info, 0, sizeof *info);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return false; }
    info->setid = (st.st_mode & (S_ISUID | S_ISGID)) != 0;
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && !memcmp(eh.e_ident, ELFMAG, SELFMAG) &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 256) {
        info->elf = true;
        bool interp = false;
        for (int i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (Elf64_Off)i * sizeof ph)) != (ssize_t)sizeof ph) break;
            if (ph.p_type == PT_INTERP) interp = true;
        }
        info->is_static = !interp; /* static and static-pie alike */
        info->go = go_sections(fd, &eh, st.st_size);
    }
    close(fd);
    return true;
}
