/*
 * bulkhead-probe: the in-container helper of the conformance suite.
 *
 * The container rootfs holds only busybox and this program. Busybox covers the shell tools;
 * this covers what busybox cannot report precisely: System V IPC objects, the errno of an
 * access attempt, and statvfs totals. Every command prints one line of `key=value` pairs and
 * exits 0 when it could make its observation (whatever the observation is), 2 on bad usage
 * and 3 when the observation itself failed unexpectedly.
 *
 * Safety: `open-write` opens for writing but never writes a byte, so a runtime that fails to
 * make /proc/sys read-only cannot let a test change the host's kernel settings.
 *
 * Built statically at session start (gcc -static) so it runs in a rootfs with no libc.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *errname(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "EUNKNOWN";
}

static int usage(void)
{
    fputs("usage: bulkhead-probe shm-create|shm-exists|msg-create|msg-exists KEY\n"
          "       bulkhead-probe read|open-write|create|statvfs|stat PATH\n",
          stderr);
    return 2;
}

static key_t parse_key(const char *text)
{
    return (key_t)strtol(text, NULL, 0);
}

/* Creates the object exclusively so a test never mistakes an old object for its own. */
static int ipc_create(int is_shm, key_t key)
{
    int id = is_shm ? shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600)
                    : msgget(key, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) {
        printf("created=no errno=%s\n", errname(errno));
        return 3;
    }
    printf("created=yes id=%d\n", id);
    return 0;
}

/* Looks the key up without IPC_CREAT: ENOENT means the namespace holds no such object. */
static int ipc_exists(int is_shm, key_t key)
{
    int id = is_shm ? shmget(key, 0, 0) : msgget(key, 0);
    if (id >= 0) {
        printf("present=yes id=%d\n", id);
        return 0;
    }
    if (errno == ENOENT) {
        puts("present=no");
        return 0;
    }
    printf("present=unknown errno=%s\n", errname(errno));
    return 3;
}

static int do_read(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 0;
    }
    if (S_ISDIR(st.st_mode)) {
        DIR *dir = opendir(path);
        if (!dir) {
            printf("result=error errno=%s\n", errname(errno));
            return 0;
        }
        long entries = 0;
        struct dirent *ent;
        while ((ent = readdir(dir)) != NULL)
            if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, ".."))
                entries++;
        closedir(dir);
        printf("result=dir entries=%ld\n", entries);
        return 0;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 0;
    }
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    int err = errno;
    close(fd);
    if (n < 0)
        printf("result=error errno=%s\n", errname(err));
    else
        printf("result=file bytes=%zd\n", n);
    return 0;
}

static int do_open_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_NONBLOCK);
    if (fd < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 0;
    }
    close(fd); /* deliberately nothing written: see the safety note above */
    puts("result=ok");
    return 0;
}

/* Creates a new, empty file: on a read-only mount the kernel refuses with EROFS. */
static int do_create(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 0;
    }
    close(fd);
    puts("result=ok");
    return 0;
}

static int do_statvfs(const char *path)
{
    struct statvfs sv;
    if (statvfs(path, &sv) < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 3;
    }
    printf("files=%llu ffree=%llu blocks=%llu bfree=%llu frsize=%lu readonly=%s\n",
           (unsigned long long)sv.f_files, (unsigned long long)sv.f_ffree,
           (unsigned long long)sv.f_blocks, (unsigned long long)sv.f_bfree, sv.f_frsize,
           (sv.f_flag & ST_RDONLY) ? "yes" : "no");
    return 0;
}

static const char *file_type(mode_t mode)
{
    if (S_ISREG(mode)) return "file";
    if (S_ISDIR(mode)) return "dir";
    if (S_ISCHR(mode)) return "chr";
    if (S_ISBLK(mode)) return "blk";
    if (S_ISLNK(mode)) return "link";
    if (S_ISFIFO(mode)) return "fifo";
    if (S_ISSOCK(mode)) return "sock";
    return "other";
}

static int do_stat(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        printf("result=error errno=%s\n", errname(errno));
        return 0;
    }
    printf("result=ok type=%s ino=%llu dev=%u:%u rdev=%u:%u size=%lld\n", file_type(st.st_mode),
           (unsigned long long)st.st_ino, major(st.st_dev), minor(st.st_dev), major(st.st_rdev),
           minor(st.st_rdev), (long long)st.st_size);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return usage();
    const char *cmd = argv[1], *arg = argv[2];
    if (!strcmp(cmd, "shm-create")) return ipc_create(1, parse_key(arg));
    if (!strcmp(cmd, "shm-exists")) return ipc_exists(1, parse_key(arg));
    if (!strcmp(cmd, "msg-create")) return ipc_create(0, parse_key(arg));
    if (!strcmp(cmd, "msg-exists")) return ipc_exists(0, parse_key(arg));
    if (!strcmp(cmd, "read")) return do_read(arg);
    if (!strcmp(cmd, "open-write")) return do_open_write(arg);
    if (!strcmp(cmd, "create")) return do_create(arg);
    if (!strcmp(cmd, "statvfs")) return do_statvfs(arg);
    if (!strcmp(cmd, "stat")) return do_stat(arg);
    return usage();
}
