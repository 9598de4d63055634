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
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int err)
{
    const char *name = strerrorname_np(err);
    return name ? name : "EUNKNOWN";
}

static int usage(void)
{
    fputs("usage: bulkhead-probe shm-create|shm-exists|msg-create|msg-exists KEY\n"
          "       bulkhead-probe read|open-write|create|statvfs|stat PATH\n"
          "       bulkhead-probe syscall [i386/]NAME[:ARG0]...\n"
          "       bulkhead-probe clock monotonic|boottime\n",
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

/*
 * syscall: makes each named system call (directly, with syscall(2): no libc wrapper or vDSO
 * in between) and reports what the program saw, for seccomp tests. One key per call, as
 * given on the command line: `ok:RET`, the errno's name, or `trapped` when a SIGSYS from
 * seccomp (si_code SYS_SECCOMP, SCMP_ACT_TRAP) arrived instead. A call the filter kills
 * leaves its key unfinished and the exit status tells the signal. Every call here is
 * harmless with any argument: it only reads about the calling process, or sets its umask,
 * alarm or persona. `i386/NAME` makes the call through the 32-bit ABI (int $0x80) on x86_64,
 * which seccomp sees as another architecture (AUDIT_ARCH_I386). `thread/NAME` makes it in a
 * second thread and reports `killed` if that thread alone died (SECCOMP_RET_KILL_THREAD).
 */
struct sysent {
    const char *name;
    long nr;      /* this architecture's number; -1: not here */
    long nr_i386; /* the i386 ABI's number (arch/x86/entry/syscalls/syscall_32.tbl) */
    unsigned long arg0;
};

#ifndef SYS_alarm
#define SYS_alarm -1
#endif
#ifndef SYS_getpgid
#define SYS_getpgid -1
#endif

static const struct sysent syscalls_known[] = {
    {"getpgid", SYS_getpgid, 132, 0},
    {"getsid", SYS_getsid, 147, 0},
    {"umask", SYS_umask, 60, 022},
    {"getpriority", SYS_getpriority, 96, 0}, /* which = PRIO_PROCESS, who = 0: itself */
    {"sched_getscheduler", SYS_sched_getscheduler, 157, 0},
    {"sched_get_priority_max", SYS_sched_get_priority_max, 159, 0},
    {"times", SYS_times, 43, 0},   /* a NULL buffer is allowed: only the tick count */
    {"getcpu", SYS_getcpu, 318, 0}, /* NULL pointers are allowed */
    {"alarm", SYS_alarm, 27, 0},    /* alarm(0) cancels nothing: none is set */
    {"personality", SYS_personality, 136, 0xffffffffUL}, /* 0xffffffff only queries */
};

static sigjmp_buf trap_env;
static volatile sig_atomic_t trapped_code;
static __thread int in_thread;

static void on_sigsys(int sig, siginfo_t *info, void *ctx)
{
    (void)sig;
    (void)ctx;
    trapped_code = info->si_code;
    if (!in_thread)
        siglongjmp(trap_env, 1);
    /* in the second thread: return; the skipped call then fails (ENOSYS) */
}

static long raw_syscall(int i386, long nr, unsigned long arg0)
{
#if defined(__x86_64__)
    if (i386) {
        long ret;
        /* The kernel takes the i386 table for int $0x80 and reports AUDIT_ARCH_I386. */
        __asm__ volatile("int $0x80"
                         : "=a"(ret)
                         : "a"(nr), "b"(arg0), "c"(0L), "d"(0L)
                         : "memory", "r8", "r9", "r10", "r11");
        if (ret < 0 && ret > -4096) {
            errno = (int)-ret;
            return -1;
        }
        return ret;
    }
#else
    if (i386) {
        errno = ENOSYS;
        return -1;
    }
#endif
    return syscall(nr, arg0, 0L, 0L, 0L, 0L, 0L);
}

struct thread_call {
    long nr;
    unsigned long arg0;
    long ret;
    int err;
    int done;
};

static void *call_in_thread(void *arg)
{
    struct thread_call *tc = arg;
    in_thread = 1;
    errno = 0;
    tc->ret = syscall(tc->nr, tc->arg0, 0L, 0L, 0L, 0L, 0L);
    tc->err = errno;
    tc->done = 1;
    return NULL;
}

/* Joins even a thread the kernel killed: its exit clears the tid futex (CLONE_CHILD_CLEARTID). */
static void print_thread_call(long nr, unsigned long arg0)
{
    struct thread_call tc = {nr, arg0, 0, 0, 0};
    pthread_t thread;
    if (pthread_create(&thread, NULL, call_in_thread, &tc) != 0) {
        printf("nothread");
        return;
    }
    pthread_join(thread, NULL);
    if (!tc.done)
        printf("killed");
    else if (trapped_code == 1)
        printf("trapped");
    else if (tc.ret == -1 && tc.err)
        printf("%s", errname(tc.err));
    else
        printf("ok:%ld", tc.ret);
}

static int do_syscalls(int count, char **calls)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSYS, &sa, NULL);
    volatile int status = 0;
    for (int i = 0; i < count; i++) {
        const char *spec = calls[i];
        int i386 = strncmp(spec, "i386/", 5) == 0;
        int threaded = strncmp(spec, "thread/", 7) == 0;
        const char *name = i386 ? spec + 5 : threaded ? spec + 7 : spec;
        size_t len = strcspn(name, ":");
        const struct sysent *ent = NULL;
        for (size_t j = 0; j < sizeof syscalls_known / sizeof *syscalls_known; j++)
            if (strlen(syscalls_known[j].name) == len && !strncmp(syscalls_known[j].name, name, len))
                ent = &syscalls_known[j];
        long nr = ent ? (i386 ? ent->nr_i386 : ent->nr) : -1;
#if !defined(__x86_64__)
        if (i386)
            nr = -1;
#endif
        printf("%s%s=", i ? " " : "", spec);
        if (nr < 0) {
            printf("unknown");
            status = 2;
            continue;
        }
        volatile unsigned long arg0 = name[len] == ':' ? strtoul(name + len + 1, NULL, 0) : ent->arg0;
        fflush(stdout); /* a killed call leaves its key visible */
        if (threaded) {
            trapped_code = 0;
            print_thread_call(nr, arg0);
            continue;
        }
        if (sigsetjmp(trap_env, 1)) {
            printf(trapped_code == 1 ? "trapped" : "sigsys"); /* 1: SYS_SECCOMP */
            continue;
        }
        errno = 0;
        long ret = raw_syscall(i386, nr, arg0);
        if (ret == -1 && errno)
            printf("%s", errname(errno));
        else
            printf("ok:%ld", ret);
    }
    putchar('\n');
    return status;
}

/* clock_gettime(2) of one clock, as the process's time namespace shows it (time_namespaces(7):
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME carry the namespace's offsets; the vDSO applies them too). */
static int do_clock(const char *name)
{
    clockid_t id;
    if (!strcmp(name, "monotonic"))
        id = CLOCK_MONOTONIC;
    else if (!strcmp(name, "boottime"))
        id = CLOCK_BOOTTIME;
    else
        return usage();
    struct timespec ts;
    if (clock_gettime(id, &ts) < 0) {
        printf("clock=%s errno=%s\n", name, errname(errno));
        return 3;
    }
    printf("clock=%s secs=%lld nsecs=%ld\n", name, (long long)ts.tv_sec, ts.tv_nsec);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "syscall"))
        return do_syscalls(argc - 2, argv + 2);
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
    if (!strcmp(cmd, "clock")) return do_clock(arg);
    return usage();
}
