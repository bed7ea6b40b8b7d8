# Reads 512 KiB with O_DIRECT (a synchronous FUSE READ) and raises out of it on SIGALRM after 0.3 s,
# so the kernel sends FUSE_INTERRUPT. Prints "interrupted" or "read". Usage: python3 interrupted-read.py FILE
import os, signal, mmap, sys
class Interrupted(Exception): pass
def on_alarm(*_): raise Interrupted()
signal.signal(signal.SIGALRM, on_alarm)
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 524288)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    os.preadv(fd, [buf], 0)
    print("read")
except Interrupted:
    print("interrupted")
