#!/usr/bin/env python3
"""Run a command with some system calls failing, as on an older kernel.

    deny_syscalls.py NAME=ERRNO[,NAME=ERRNO...] -- COMMAND [ARG...]

A seccomp filter (libseccomp, through ctypes) makes each named call fail with that errno
(ENOSYS: the kernel does not have it) for the command and everything it starts; every other
call is allowed. no_new_privs is left off, so what runs under it sees the same privileges as
without it (root loads the filter with CAP_SYS_ADMIN)."""
import ctypes
import errno
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_CTL_NNP = 3


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
    for rule in sys.argv[1].split(","):
        name, _, err = rule.partition("=")
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:
            sys.exit(f"deny_syscalls: unknown system call {name!r}")
        if not hasattr(errno, err):
            sys.exit(f"deny_syscalls: unknown errno {err!r}")
        if lib.seccomp_rule_add(ctx, scmp_act_errno(getattr(errno, err)), nr, 0) != 0:
            sys.exit(f"deny_syscalls: cannot add a rule for {name}")
    rc = lib.seccomp_load(ctx)
    if rc != 0:
        sys.exit(f"deny_syscalls: seccomp_load: {os.strerror(-rc)}")
    os.execvp(sys.argv[3], sys.argv[3:])


if __name__ == "__main__":
    main()
