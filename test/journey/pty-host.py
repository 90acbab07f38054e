#!/usr/bin/env python3
# Runs a command on a new pseudo-terminal of a fixed size and relays bytes: our stdin goes to the
# terminal's input, the terminal's output comes out on our stdout, unchanged. When the command ends,
# its exit status is reported on stderr ("pty-host: exit N" or "pty-host: signal N") and is ours.
# Usage: pty-host.py COLS ROWS COMMAND [ARG...]
import fcntl, os, pty, select, signal, struct, sys, termios

def main():
    cols, rows, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    pid, master = pty.fork()
    if pid == 0:
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
        os.execvp(argv[0], argv)
    # Our own SIGTERM is passed on, so a test can stop the command the way a terminal would.
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    signal.signal(signal.SIGHUP, lambda *_: os.kill(pid, signal.SIGHUP))
    stdin_open = True
    out = sys.stdout.buffer
    while True:
        fds = [master] + ([0] if stdin_open else [])
        try:
            ready, _, _ = select.select(fds, [], [])
        except InterruptedError:
            continue
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b''
            if not data:
                break
            out.write(data)
            out.flush()
        if 0 in ready:
            data = os.read(0, 65536)
            if not data:
                stdin_open = False
            else:
                os.write(master, data)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        sys.stderr.write('pty-host: signal %d\n' % os.WTERMSIG(status))
        sys.exit(128 + os.WTERMSIG(status))
    code = os.WEXITSTATUS(status)
    sys.stderr.write('pty-host: exit %d\n' % code)
    sys.exit(code)

main()
