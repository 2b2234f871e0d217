# The TCP peer of floor.c: answers every 317 bytes it receives with 43, like a broker its confirm.
# Usage: peer.py PORT
import socket, sys
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(1)
c, _ = srv.accept()
buf = b""
while True:
    d = c.recv(4096)
    if not d: break
    buf += d
    while len(buf) >= 317:
        buf = buf[317:]; c.sendall(b"y" * 43)
