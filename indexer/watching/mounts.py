"""Which filesystem a folder lives on (`/proc/mounts`), and whether change events can be
trusted there: inotify never fires for writes another machine makes to a network share
(watchfiles #125), so such roots are polled."""

from __future__ import annotations

from pathlib import Path

# network and user-space filesystems whose changes may be made where inotify cannot see them
POLLED_TYPES = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "sshfs", "9p", "afs", "ceph",
                "glusterfs", "fuse.glusterfs", "lustre", "gpfs", "davfs", "fuse.rclone", "fuse.s3fs",
                "virtiofs", "vboxsf", "fuse.gcsfuse"}


def filesystem_of(folder: Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem mounted at the longest mount point holding `folder`, or
    None when the table cannot be read (not Linux)."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    best, kind = "", None
    path = str(folder.resolve())
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def needs_polling(folder: Path, mounts: str = "/proc/mounts") -> str | None:
    """Why `folder` must be polled rather than watched, or None."""
    kind = filesystem_of(folder, mounts)
    if kind in POLLED_TYPES:
        return f"on a {kind} filesystem, whose changes made elsewhere send no events"
    return None


def _unescape(field: str) -> str:
    """/proc/mounts writes a space, tab, newline and backslash in octal (`\\040`)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field
