#!/usr/bin/env python3
"""Run a command with some system calls failing, as on an older kernel.

    deny_syscalls.py RULE[,RULE...] -- COMMAND [ARG...]

RULE is NAME=ERRNO: a seccomp filter (libseccomp, through ctypes) makes that call fail with
that errno (ENOSYS: the kernel does not have it) for the command and everything it starts;
every other call is allowed. Or setns@pidfd=ERRNO: setns on a pidfd fails (Linux 5.3 to 5.7
had pidfds but setns did not take them), setns on a namespace file works; the filter hands
each setns to this process, which looks at what the fd is and answers. no_new_privs is left
off, so what runs under it sees the same privileges as without it (root loads the filter with
CAP_SYS_ADMIN)."""
import ctypes
import errno
import os
import select
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_NOTIFY = 0x7FC00000
SCMP_FLTATR_CTL_NNP = 3
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1


class SeccompData(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int), ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class Notif(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", SeccompData)]


class NotifResp(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


def is_pidfd(pid, fd):
    try:
        return "pidfd" in os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return False


def supervise(lib, nfd, child, err):
    """Answer the filter's questions until the command exits; return its exit status."""
    lib.seccomp_notify_receive.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.seccomp_notify_respond.argtypes = [ctypes.c_int, ctypes.c_void_p]
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            return os.waitstatus_to_exitcode(status)
        if not select.select([nfd], [], [], 0.05)[0]:
            continue
        req = Notif()
        if lib.seccomp_notify_receive(nfd, ctypes.byref(req)) != 0:
            continue  # the caller was killed meanwhile
        resp = NotifResp(id=req.id)
        if is_pidfd(req.pid, ctypes.c_int32(req.data.args[0] & 0xFFFFFFFF).value):
            resp.error = -err
        else:
            resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE
        lib.seccomp_notify_respond(nfd, ctypes.byref(resp))


def scmp_act_errno(e):
    return 0x00050000 | (e & 0xFFFF)


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: deny_syscalls.py NAME=ERRNO[,NAME=ERRNO...] -- COMMAND [ARG...]")
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        sys.exit("deny_syscalls: seccomp_init failed")
    if lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0) != 0:
        sys.exit("deny_syscalls: cannot leave no_new_privs off")
    pidfd_err = None
    for rule in sys.argv[1].split(","):
        name, _, err = rule.partition("=")
        if not hasattr(errno, err):
            sys.exit(f"deny_syscalls: unknown errno {err!r}")
        action = scmp_act_errno(getattr(errno, err))
        if name == "setns@pidfd":
            name, action, pidfd_err = "setns", SCMP_ACT_NOTIFY, getattr(errno, err)
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            sys.exit(f"deny_syscalls: unknown system call {name!r}")
        if lib.seccomp_rule_add(ctx, action, nr, 0) != 0:
            sys.exit(f"deny_syscalls: cannot add a rule for {name}")
    rc = lib.seccomp_load(ctx)
    if rc != 0:
        sys.exit(f"deny_syscalls: seccomp_load: {os.strerror(-rc)}")
    if pidfd_err is None:
        os.execvp(sys.argv[3], sys.argv[3:])
    nfd = lib.seccomp_notify_fd(ctypes.c_void_p(ctx))
    child = os.fork()
    if child == 0:
        os.close(nfd)
        try:
            os.execvp(sys.argv[3], sys.argv[3:])
        finally:
            os._exit(127)
    sys.exit(supervise(lib, nfd, child, pidfd_err))


if __name__ == "__main__":
    main()
