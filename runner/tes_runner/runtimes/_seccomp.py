"""A tiny seccomp filter that stops a sandboxed executor from making user namespaces.

A root server's bubblewrap executors run as an unprivileged host user outside any
user namespace; without this filter they could still ``unshare -U`` like any local
user, and get capabilities over namespaces of their own: not over the host, but a
much larger part of the kernel to attack. Docker's default seccomp profile refuses
the same. ``unshare``/``clone`` with ``CLONE_NEWUSER`` fail with ``EPERM``;
``clone3`` (whose flags a filter cannot read) fails with ``ENOSYS``, which makes
glibc and musl fall back to ``clone``. Everything else is allowed.

The program is classic BPF, as ``bwrap --seccomp FD`` takes it (an array of
``struct sock_filter``), for the CPU architectures listed in :data:`ARCHES`.
"""

from __future__ import annotations

import errno
import platform
import struct

CLONE_NEWUSER = 0x10000000

_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_AND = 0x54  # BPF_ALU | BPF_AND | BPF_K
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000

_NR, _ARCH, _ARG0 = 0, 4, 16  # offsets in struct seccomp_data (little-endian low word)

ARCHES: dict[str, list[tuple[int, int, int, int, int]]] = {
    # machine: [(AUDIT_ARCH, unshare, clone, clone3, mask of the syscall number)]
    "x86_64": [
        (0xC000003E, 272, 56, 435, 0xBFFFFFFF),  # x86_64, and x32 (bit 30 masked)
        (0x40000003, 310, 120, 435, 0xFFFFFFFF),  # i386 binaries
    ],
    "aarch64": [
        (0xC00000B7, 97, 220, 435, 0xFFFFFFFF),
        (0x40000028, 337, 120, 435, 0xFFFFFFFF),  # 32-bit ARM binaries
    ],
}


def no_userns_filter(machine: str | None = None) -> bytes | None:
    """The filter for this machine's CPU (or ``machine``), or ``None`` if unknown here."""
    arches = ARCHES.get(machine or platform.machine())
    if not arches:
        return None
    program: list[tuple[int, object, object, int]] = [(_LD_ABS, 0, 0, _ARCH)]
    for index, (audit_arch, unshare, clone, clone3, mask) in enumerate(arches):
        nxt = f"arch{index + 1}"
        program += [
            (_JEQ, 0, nxt, audit_arch),
            (_LD_ABS, 0, 0, _NR),
            (_AND, 0, 0, mask),
            (_JEQ, "nosys", 0, clone3),
            (_JEQ, "flags", 0, unshare),
            (_JEQ, "flags", "allow", clone),
            f"arch{index + 1}",  # a label
            (_LD_ABS, 0, 0, _ARCH),
        ]
    program += [
        (_JEQ, "allow", "allow", 0),  # past the flag check
        "flags", (_LD_ABS, 0, 0, _ARG0),
        (_JSET, "eperm", "allow", CLONE_NEWUSER),
        "allow", (_RET, 0, 0, _ALLOW),
        "eperm", (_RET, 0, 0, _ERRNO | errno.EPERM),
        "nosys", (_RET, 0, 0, _ERRNO | errno.ENOSYS),
    ]
    return _assemble(program)


def _assemble(program: list) -> bytes:  # type: ignore[type-arg]
    """Resolve label jumps (forward only, as BPF wants) and pack ``struct sock_filter``s."""
    labels: dict[str, int] = {}
    code: list[tuple[int, object, object, int]] = []
    for item in program:
        if isinstance(item, str):
            labels[item] = len(code)
        else:
            code.append(item)

    def offset(target: object, here: int) -> int:
        if isinstance(target, int):
            return target
        jump = labels[str(target)] - here - 1
        if not 0 <= jump <= 255:
            raise ValueError(f"seccomp jump to {target} out of range")
        return jump

    return b"".join(
        struct.pack("=HBBI", op, offset(jt, i), offset(jf, i), k)
        for i, (op, jt, jf, k) in enumerate(code)
    )
