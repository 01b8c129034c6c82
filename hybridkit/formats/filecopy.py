"""Copy source files to their hybrid targets in a background thread, in order, segment by segment.

Why: a hybrid file differs from its source only near events, so the fastest way to write it is the
kernel's own file copy followed by positional writes of the event blocks (see docs/architecture.md).
The copy is the longest step of a run, and it needs neither the templates nor the plan, so it runs
in a thread (the kernel copies with the GIL released) while the main thread builds templates and
plans. Injection then overlays each event block as soon as the copy has passed it:
:meth:`BackgroundCopy.wait_for` blocks until byte ``end`` of a target has been copied.

Where the file system can share blocks between files (XFS with reflink, btrfs, ZFS with block
cloning, bcachefs), the whole target is first made a copy-on-write clone of its source with the
``FICLONE`` ioctl: no data moves, the clone takes no disk space until injection writes into it, and
only the blocks it writes get their own copy. Elsewhere the ioctl fails at once and the copy goes on
segment by segment. Each segment is copied with ``os.copy_file_range`` (in-kernel, what ``cp`` uses), falling back to
``os.sendfile`` and then to plain reads and writes where a file system supports neither.
"""
from __future__ import annotations

import errno
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

#: bytes per copy call: large enough to keep the kernel busy, small enough that injection can start
#: writing behind the copy soon after it begins
SEGMENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CopyJob:
    source: Path
    target: Path
    size: int  # bytes


class CopyCancelled(Exception):
    """The copy was stopped by :meth:`BackgroundCopy.cancel`."""


class BackgroundCopy:
    """Copy ``jobs`` one after another in a daemon thread; track how far each target is copied.

    ``target_fds[i]`` is an open, writable descriptor of ``jobs[i].target`` that the caller owns
    (and may use for its own positional writes behind the copy).
    """

    def __init__(self, jobs: list[CopyJob], target_fds: list[int]) -> None:
        self.jobs = jobs
        self.target_fds = target_fds
        self.copied = [0] * len(jobs)  # bytes of each target copied so far
        self.cloned = [False] * len(jobs)  # targets made copy-on-write clones of their source
        self.error: BaseException | None = None
        self._cancel = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="hybridkit-copy", daemon=True)

    def start(self) -> "BackgroundCopy":
        self._thread.start()
        return self

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            for i, job in enumerate(self.jobs):
                src = os.open(job.source, os.O_RDONLY)
                try:
                    if hasattr(os, "posix_fadvise"):
                        os.posix_fadvise(src, 0, 0, os.POSIX_FADV_SEQUENTIAL)
                    if job.size and _clone(src, self.target_fds[i]):
                        _cow_block_by_block(self.target_fds[i])
                        self.cloned[i] = True
                        with self._cond:
                            self.copied[i] = job.size
                            self._cond.notify_all()
                    else:
                        self._copy(i, src, self.target_fds[i], job.size)
                finally:
                    os.close(src)
        except BaseException as exc:  # handed to the waiting thread, which raises it
            self.error = exc
        finally:
            with self._cond:
                self._cond.notify_all()

    def _copy(self, i: int, src: int, dst: int, size: int) -> None:
        methods = [m for m, ok in ((_copy_file_range, hasattr(os, "copy_file_range")),
                                   (_sendfile, hasattr(os, "sendfile")), (_read_write, True)) if ok]
        offset = 0
        while offset < size:
            if self._cancel:
                raise CopyCancelled()
            n = min(SEGMENT_BYTES, size - offset)
            try:
                done = methods[0](src, dst, offset, n)
            except OSError as exc:
                if len(methods) == 1 or exc.errno not in _UNSUPPORTED:
                    raise
                methods.pop(0)  # this file system cannot do that call: the next one down
                continue
            if done == 0:
                raise OSError(errno.EIO, f"{self.jobs[i].source} ended at byte {offset} of {size}")
            offset += done
            with self._cond:
                self.copied[i] = offset
                self._cond.notify_all()

    # -- the callers ------------------------------------------------------------------------------
    def wait_for(self, i: int, end: int) -> None:
        """Block until target ``i`` holds its source's bytes ``[0, end)``; raise the copy's error."""
        with self._cond:
            while self.copied[i] < end and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def join(self) -> None:
        """Wait for the whole copy; raise its error if it failed."""
        self._thread.join()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        """Stop after the current segment and wait for the thread (errors are discarded)."""
        self._cancel = True
        self._thread.join()


#: errno values meaning "this file system / kernel cannot do that copy call", not a real failure
_UNSUPPORTED = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOTSUP, errno.ENOTTY}

#: ioctl request number of Linux's FICLONE (_IOW(0x94, 9, int)): make ``dst`` share all of
#: ``src``'s blocks, copy-on-write
FICLONE = 0x40049409


def _clone(src: int, dst: int) -> bool:
    """Make the (empty) file ``dst`` a copy-on-write clone of ``src``; False where the file system
    or platform cannot (the caller then copies the bytes)."""
    if not sys.platform.startswith("linux"):
        return False
    import fcntl

    try:
        fcntl.ioctl(dst, FICLONE, src)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED or exc.errno in (errno.EBADF, errno.EPERM):
            return False  # another file system, a different mount, or no reflink support
        raise
    return True


#: Linux's FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR (struct fsxattr: five u32 and 8 bytes of padding)
#: and the flag that makes its fsx_cowextsize (bytes) apply to the file
_FS_IOC_FSGETXATTR = 0x801C581F
_FS_IOC_FSSETXATTR = 0x401C5820
_FS_XFLAG_COWEXTSIZE = 0x00010000


def _cow_block_by_block(fd: int) -> bool:
    """Ask the file system to give each block written into the clone ``fd`` its own new block,
    not a whole copy-on-write extent (XFS allocates 32 blocks around each written one unless the
    file's ``cowextsize`` hint says otherwise): injection writes scattered blocks, and with the
    default the hybrid took 0.79x the file's size on disk. False where the call fails (btrfs
    shares block by block anyway; ext4 cannot clone); the clone is as exact either way."""
    import fcntl
    import struct

    try:
        attr = bytearray(28)
        fcntl.ioctl(fd, _FS_IOC_FSGETXATTR, attr)
        xflags, extsize, nextents, projid, _ = struct.unpack_from("<5I", attr)
        struct.pack_into("<5I", attr, 0, xflags | _FS_XFLAG_COWEXTSIZE, extsize, nextents, projid,
                         os.fstatvfs(fd).f_bsize)
        fcntl.ioctl(fd, _FS_IOC_FSSETXATTR, attr)
    except OSError:
        return False
    return True


def _copy_file_range(src: int, dst: int, offset: int, n: int) -> int:
    return os.copy_file_range(src, dst, n, offset, offset)


def _sendfile(src: int, dst: int, offset: int, n: int) -> int:
    os.lseek(dst, offset, os.SEEK_SET)
    return os.sendfile(dst, src, offset, n)


def _read_write(src: int, dst: int, offset: int, n: int) -> int:
    data = os.pread(src, n, offset)
    done = 0
    while done < len(data):
        done += os.pwrite(dst, data[done:], offset + done)
    return len(data)
