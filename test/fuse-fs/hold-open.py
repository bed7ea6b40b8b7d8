# Opens every file under MOUNTED/REL at once (one fd each, all held), then reads each through its own
# fd in a shuffled order and compares it with the same file under SOURCE/REL; closes them all at the
# end. Prints "same N" or the first path that differs. Usage: python3 hold-open.py MOUNTED SOURCE REL
import os, random, sys
mounted, source, rel = sys.argv[1:4]
paths = sorted(os.path.join(d, f)[len(mounted) + 1:] for d, _, fs in os.walk(os.path.join(mounted, rel)) for f in fs)
fds = [(p, os.open(os.path.join(mounted, p), os.O_RDONLY)) for p in paths]
random.shuffle(fds)
for p, fd in fds:
    got = os.pread(fd, 1 << 20, 0)
    with open(os.path.join(source, p), "rb") as f:
        if got != f.read():
            print("differs", p)
            sys.exit(1)
for _, fd in fds:
    os.close(fd)
print("same", len(fds))
