"""The floor of a push that keeps issue 22's guarantees, on this machine: the least a client and a server take
when the client hashes every byte while it sends it, the server hashes every byte while it writes it, and
the server makes the file durable before it answers (fsync, rename into place, fsync of the directory).
Nothing else: no HTTP library, no upload sessions, no metadata, no retries; one blocking thread a file on
each side, 1 MiB reads (hashlib, recv_into, pwrite and sendfile all run without Python's lock, so the
threads use both cores).

    python3 bench/push_floor.py serve PORT ROOT          # answers PUT /NAME with 201 once NAME is durable
    python3 bench/push_floor.py push PORT DIR send|sendfile

`send`: the client reads each MiB (pread), hashes it and sends it, as modelreg's push does. `sendfile`: it
reads and hashes each MiB, then hands the same range of the file to the socket (one copy fewer).
"""

import ctypes
import hashlib
import os
import socket
import sys
import threading

CHUNK = 1 << 20
# Writeback started every 32 MiB, as modelreg's WritebackPacer does, so the fsync at the end waits for little.
WRITEBACK_STEP = 32 << 20
SYNC_FILE_RANGE_WRITE = 2
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def receive(connection, root):
    head = b""
    while b"\r\n\r\n" not in head:
        more = connection.recv(4096)
        if not more:
            return
        head += more
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    name = lines[0].split()[1].rsplit("/", 1)[1]
    size = int(next(line.split(":", 1)[1] for line in lines if line.lower().startswith("content-length:")))
    # Written aside, then renamed into place and the directory synced, as a blob's commit is.
    upload = os.path.join(root, f".{name}.upload")
    fd = os.open(upload, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    hasher = hashlib.sha256(rest)
    os.pwrite(fd, rest, 0)
    offset, started = len(rest), 0
    buffer = memoryview(bytearray(CHUNK))
    while offset < size:
        count = connection.recv_into(buffer[: min(CHUNK, size - offset)])
        if count == 0:
            raise SystemExit(f"{name}: the body was cut at {offset} of {size} bytes")
        hasher.update(buffer[:count])
        os.pwrite(fd, buffer[:count], offset)
        offset += count
        if offset - started >= WRITEBACK_STEP:
            libc.sync_file_range(fd, ctypes.c_longlong(started), ctypes.c_longlong(offset - started), SYNC_FILE_RANGE_WRITE)
            started = offset
    os.fsync(fd)
    os.close(fd)
    os.rename(upload, os.path.join(root, name))
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(directory)
    os.close(directory)
    connection.sendall(f"HTTP/1.1 201 Created\r\nDigest: sha-256={hasher.hexdigest()}\r\nContent-Length: 0\r\n\r\n".encode())
    connection.close()


def serve(port, root):
    listener = socket.create_server(("127.0.0.1", port))
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=receive, args=(connection, root), daemon=True).start()


def send(port, path, mode):
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDONLY)
    connection = socket.create_connection(("127.0.0.1", port))
    connection.sendall(f"PUT /{os.path.basename(path)} HTTP/1.1\r\nHost: floor\r\nContent-Length: {size}\r\n\r\n".encode())
    hasher = hashlib.sha256()
    buffer = memoryview(bytearray(CHUNK))
    offset = 0
    while offset < size:
        count = os.preadv(fd, [buffer[: min(CHUNK, size - offset)]], offset)
        hasher.update(buffer[:count])
        if mode == "sendfile":
            sent = 0
            while sent < count:
                sent += os.sendfile(connection.fileno(), fd, offset + sent, count - sent)
        else:
            connection.sendall(buffer[:count])
        offset += count
    answer = connection.recv(4096)
    connection.close()
    os.close(fd)
    if f"sha-256={hasher.hexdigest()}".encode() not in answer:
        raise SystemExit(f"{path}: the server did not store what was sent: {answer[:200]!r}")


def push(port, directory, mode):
    failures = []

    def attempt(path):
        try:
            send(port, path, mode)
        except BaseException as failure:
            failures.append(failure)

    threads = [threading.Thread(target=attempt, args=(os.path.join(directory, name),)) for name in sorted(os.listdir(directory))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"error: {failures[0]}")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), sys.argv[3])
    else:
        push(int(sys.argv[2]), sys.argv[3], sys.argv[4])
