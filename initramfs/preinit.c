/*
 * /init of the Zero-OS initramfs: mounts /proc, then becomes Bun (execve keeps PID 1).
 * Bun aborts at start-up without /proc (it reads /proc/self/maps, /proc/self/exe, /proc/stat),
 * and the kernel starts /init with nothing mounted, so this is the one thing Bun cannot do itself.
 * Runs:  /usr/bin/bun /usr/lib/zos/init.js [arguments the kernel gave /init]
 * with PATH and ZOS_NATIVE_PATH (where native/index.ts finds the addon) added to the kernel's
 * environment. Built freestanding (no libc, raw syscalls) so it is a few KB and the same bytes
 * on every build: gcc -Os -static -nostdlib -fno-stack-protector -Wl,--build-id=none.
 */
typedef unsigned long u64;

static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static long sys5(long n, long a, long b, long c, long d, long e) {
    long r;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8) : "rcx", "r11", "memory");
    return r;
}

enum { SYS_write = 1, SYS_execve = 59, SYS_exit = 60, SYS_mount = 165 };
enum { EBUSY = 16, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8 };

static u64 len(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

static void fail(const char *what, long err) {
    static const char digits[] = "0123456789";
    char num[8];
    int i = 7;
    u64 e = (u64)(-err);
    num[i] = '\n';
    do { num[--i] = digits[e % 10]; e /= 10; } while (e && i > 0);
    sys3(SYS_write, 2, (long)"zos preinit: ", 13);
    sys3(SYS_write, 2, (long)what, (long)len(what));
    sys3(SYS_write, 2, (long)" failed, errno ", 15);
    sys3(SYS_write, 2, (long)&num[i], 8 - i);
    /* PID 1 exiting makes the kernel panic with this message on the console */
    sys3(SYS_exit, 1, 0, 0);
}

#define MAX_ARGS 64
#define MAX_ENV 128

void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;

    long r = sys5(SYS_mount, (long)"proc", (long)"/proc", (long)"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
    if (r < 0 && r != -EBUSY) fail("mount /proc", r);

    char *args[MAX_ARGS + 3];
    int n = 0;
    args[n++] = "/usr/bin/bun";
    args[n++] = "/usr/lib/zos/init.js";
    for (long i = 1; i < argc && n < MAX_ARGS; i++) args[n++] = argv[i];
    args[n] = 0;

    char *env[MAX_ENV + 3];
    int m = 0;
    env[m++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    env[m++] = "ZOS_NATIVE_PATH=/usr/lib/zos/zos_native.node";
    for (char **e = envp; *e && m < MAX_ENV; e++) env[m++] = *e;
    env[m] = 0;

    r = sys3(SYS_execve, (long)args[0], (long)args, (long)env);
    fail("execve /usr/bin/bun", r);
}

/* The kernel enters here with the stack holding argc, argv[], NULL, envp[], NULL. */
__asm__(".global _start\n_start:\n  mov %rsp, %rdi\n  and $-16, %rsp\n  call start_c\n  hlt\n");
