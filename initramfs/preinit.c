/*
 * /init of the Zero-OS initramfs: moves the root filesystem onto a tmpfs, mounts /proc, then becomes
 * Bun (execve keeps PID 1).
 * - Bun aborts at start-up without /proc (it reads /proc/self/maps, /proc/self/exe, /proc/stat),
 *   and the kernel starts /init with nothing mounted.
 * - The initramfs root ("rootfs") is the one mount pivot_root(2) refuses (EINVAL), and container
 *   runtimes (crun) pivot_root into each container's root. So, like switch_root, every file is
 *   copied to a tmpfs and deleted from rootfs as it goes (memory stays flat), the tmpfs is moved
 *   onto / and chrooted into; from then on / is an ordinary mount.
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

static long sys4(long n, long a, long b, long c, long d) {
    return sys5(n, a, b, c, d, 0);
}

enum {
    SYS_read = 0, SYS_write = 1, SYS_close = 3, SYS_sendfile = 40, SYS_execve = 59, SYS_exit = 60,
    SYS_chdir = 80, SYS_umask = 95, SYS_chroot = 161, SYS_mount = 165, SYS_getdents64 = 217,
    SYS_openat = 257, SYS_mkdirat = 258, SYS_mknodat = 259, SYS_newfstatat = 262, SYS_unlinkat = 263,
    SYS_symlinkat = 266, SYS_readlinkat = 267,
};
enum { EBUSY = 16, EEXIST = 17, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_MOVE = 8192 };
enum { O_RDONLY = 0, O_WRONLY = 1, O_CREAT = 0100, O_EXCL = 0200, O_DIRECTORY = 0200000, O_NOFOLLOW = 0400000, O_CLOEXEC = 02000000 };
enum { AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_REMOVEDIR = 0x200 };
enum { S_IFMT = 0170000, S_IFDIR = 0040000, S_IFREG = 0100000, S_IFLNK = 0120000 };

/* struct stat of x86_64 (asm/stat.h): only the fields used here, at their offsets. */
struct kstat {
    u64 st_dev, st_ino, st_nlink;
    unsigned int st_mode, st_uid, st_gid, pad0;
    u64 st_rdev;
    long st_size, st_blksize, st_blocks;
    u64 times[6];
    long unused[3];
};

/* struct linux_dirent64, as getdents64(2) returns them. */
struct dirent64 {
    u64 d_ino;
    long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

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

static int is_dot(const char *n) {
    return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0));
}

static int same(const char *a, const char *b) {
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* Copies every entry of directory src into dst, deleting each from src once copied. */
static void move_tree(int src, int dst, const char *skip) {
    char buf[4096];
    for (;;) {
        long n = sys3(SYS_getdents64, src, (long)buf, sizeof buf);
        if (n < 0) fail("getdents64", n);
        if (n == 0) return;
        for (long off = 0; off < n;) {
            struct dirent64 *d = (struct dirent64 *)(buf + off);
            off += d->d_reclen;
            const char *name = d->d_name;
            if (is_dot(name) || (skip && same(name, skip))) continue;
            struct kstat st;
            long r = sys4(SYS_newfstatat, src, (long)name, (long)&st, AT_SYMLINK_NOFOLLOW);
            if (r < 0) fail("stat", r);
            unsigned int type = st.st_mode & S_IFMT, perm = st.st_mode & 07777;
            if (type == S_IFDIR) {
                r = sys3(SYS_mkdirat, dst, (long)name, perm);
                if (r < 0 && r != -EEXIST) fail("mkdir", r);
                long s2 = sys4(SYS_openat, src, (long)name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
                long d2 = sys4(SYS_openat, dst, (long)name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
                if (s2 < 0 || d2 < 0) fail("open directory", s2 < 0 ? s2 : d2);
                move_tree((int)s2, (int)d2, 0);
                sys3(SYS_close, s2, 0, 0);
                sys3(SYS_close, d2, 0, 0);
                sys3(SYS_unlinkat, src, (long)name, AT_REMOVEDIR);
                continue;
            }
            if (type == S_IFREG) {
                long in = sys4(SYS_openat, src, (long)name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
                long out = sys4(SYS_openat, dst, (long)name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, perm);
                if (in < 0 || out < 0) fail("open file", in < 0 ? in : out);
                for (long left = st.st_size; left > 0;) {
                    long w = sys4(SYS_sendfile, out, in, 0, left > 0x40000000 ? 0x40000000 : left);
                    if (w <= 0) fail("sendfile", w < 0 ? w : -5);
                    left -= w;
                }
                sys3(SYS_close, in, 0, 0);
                sys3(SYS_close, out, 0, 0);
            } else if (type == S_IFLNK) {
                char target[4096];
                long len = sys4(SYS_readlinkat, src, (long)name, (long)target, sizeof target - 1);
                if (len < 0) fail("readlink", len);
                target[len] = 0;
                r = sys3(SYS_symlinkat, (long)target, dst, (long)name);
                if (r < 0) fail("symlink", r);
            } else {
                r = sys4(SYS_mknodat, dst, (long)name, st.st_mode, (long)st.st_rdev);
                if (r < 0) fail("mknod", r);
            }
            sys3(SYS_unlinkat, src, (long)name, 0);
        }
    }
}

/* The initramfs contents onto a tmpfs, which then becomes / (what switch_root does). */
static void root_to_tmpfs(void) {
    sys3(SYS_umask, 0, 0, 0); /* modes come from the archive, unmasked */
    long r = sys3(SYS_mkdirat, AT_FDCWD, (long)"/.zos-root", 0755);
    if (r < 0 && r != -EEXIST) fail("mkdir /.zos-root", r);
    r = sys5(SYS_mount, (long)"zosroot", (long)"/.zos-root", (long)"tmpfs", 0, (long)"mode=0755");
    if (r < 0) fail("mount tmpfs", r);
    long src = sys4(SYS_openat, AT_FDCWD, (long)"/", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    long dst = sys4(SYS_openat, AT_FDCWD, (long)"/.zos-root", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (src < 0 || dst < 0) fail("open /", src < 0 ? src : dst);
    move_tree((int)src, (int)dst, ".zos-root");
    sys3(SYS_close, src, 0, 0);
    sys3(SYS_close, dst, 0, 0);
    if ((r = sys3(SYS_chdir, (long)"/.zos-root", 0, 0)) < 0) fail("chdir", r);
    if ((r = sys5(SYS_mount, (long)".", (long)"/", 0, MS_MOVE, 0)) < 0) fail("move tmpfs onto /", r);
    if ((r = sys3(SYS_chroot, (long)".", 0, 0)) < 0) fail("chroot", r);
    if ((r = sys3(SYS_chdir, (long)"/", 0, 0)) < 0) fail("chdir /", r);
}

#define MAX_ARGS 64
#define MAX_ENV 128

void start_c(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **envp = argv + argc + 1;

    root_to_tmpfs();
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
