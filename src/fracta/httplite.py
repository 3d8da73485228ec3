"""A minimal HTTP/1.1 client on a plain socket, for fracta's own servers on 127.0.0.1.

A few dozen lines instead of http.client, whose imports (email, ssl) cost more than the rest of
a CLI command: `fracta spawn` and `fracta serve` start on every agent launch. One request per
connection (`Connection: close`); bodies come back de-chunked, by Content-Length, or until the
server closes.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator


class Response:
    """An HTTP/1.1 response read off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fp = sock.makefile("rb")
        status = self.fp.readline(65537).split(None, 2)
        if len(status) < 2 or not status[0].startswith(b"HTTP/"):
            raise OSError(f"not an HTTP response: {b' '.join(status)[:80]!r}")
        self.status = int(status[1])
        self.headers: dict[str, str] = {}
        while (line := self.fp.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    def chunks(self) -> Iterator[bytes]:
        """The body as it arrives: de-chunked, or up to Content-Length, or until the server closes."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int(self.fp.readline(65537).split(b";")[0], 16):
                data = self.fp.read(size)
                if len(data) < size:
                    raise OSError("the response ended in the middle of a chunk")
                self.fp.readline(65537)
                yield data
            return
        if "content-length" in self.headers:
            length = int(self.headers["content-length"])
            data = self.fp.read(length)
            if len(data) < length:
                raise OSError("the response ended before its Content-Length")
            yield data
            return
        while data := self.fp.read1(65536):
            yield data

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def lines(self) -> Iterator[bytes]:
        pending = b""
        for data in self.chunks():
            *complete, pending = (pending + data).split(b"\n")
            yield from complete
        if pending:
            yield pending

    def close(self) -> None:
        self.fp.close()
        self.sock.close()


def host_port(url: str) -> tuple[str, int]:
    """The host and port of an `http://HOST:PORT[/...]` URL (HOST may be a bracketed IPv6 address)."""
    if not url.startswith("http://"):
        raise ValueError(f"not a plain http:// URL: {url!r}")
    netloc = url[len("http://") :].partition("/")[0]
    host, colon, port = netloc.rpartition(":")
    if not colon or not port.isdigit() or not host:
        return netloc.strip("[]"), 80
    return host.strip("[]"), int(port)


def request(
    host: str,
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes = b"",
    *,
    connect_timeout: float,
    timeout: float | None = None,
) -> Response:
    """Send one request; the caller reads the response and closes it. OSError if the server is unreachable."""
    # An ASCII host name goes to getaddrinfo as bytes: as str it is IDNA-encoded, and the codec's
    # import is a measurable part of a CLI command's start-up.
    target: str | bytes = host.encode("ascii") if host.isascii() else host
    sock = socket.create_connection((target, port), timeout=connect_timeout)  # type: ignore[arg-type]
    try:
        sock.settimeout(timeout)  # None: a tool call may take as long as it takes
        name = f"[{host}]" if ":" in host else host
        head = [f"{method} {path} HTTP/1.1", f"Host: {name}:{port}", "Connection: close"]
        head += [f"{key}: {value}" for key, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        return Response(sock)
    except BaseException:
        sock.close()
        raise
