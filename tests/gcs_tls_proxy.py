"""An HTTPS proxy that brings TensorFlow's GCS client to the GCS emulator of the tests.

TF's client has a fixed endpoint (https://www.googleapis.com, storage.googleapis.com) and
no emulator setting, but it is libcurl: it honours HTTPS_PROXY and CURL_CA_BUNDLE. This
proxy answers CONNECT, ends TLS with a certificate for those hosts (signed by the tests' own
CA) and passes the bytes on, over TLS, to fake-gcs-server, which serves the same API under
those host names. One change on the way: the header `Transfer-Encoding: identity` that TF
sends with empty POSTs is dropped, because Go's HTTP server (fake-gcs-server's) refuses it
with 501 while Google's front ends ignore it.

Run as its own process (TF holds the GIL in some calls, which would stall a proxy thread):
    python gcs_tls_proxy.py LISTEN_PORT EMULATOR_TLS_PORT CERT KEY CA
It prints "ready" once listening.
"""

import re
import select
import socket
import ssl
import sys
import threading

IDENTITY = re.compile(rb"(?im)^transfer-encoding: *identity\r\n")


def serve(listen_port: int, upstream_port: int, cert: str, key: str, ca: str) -> None:
    as_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    as_server.load_cert_chain(cert, key)
    as_server.set_alpn_protocols(["http/1.1"])
    as_client = ssl.create_default_context(cafile=ca)
    as_client.set_alpn_protocols(["http/1.1"])
    # TLS 1.2 to the emulator: under 1.3 its server sends session tickets after the
    # handshake, and a blocking recv that meets one (select saw bytes) goes on to wait for
    # application data that will not come until the other side's request, which this loop
    # is no longer reading, is passed on: a deadlock until curl's 60 s idle timeout (seen as
    # "stuck at N of 0 bytes" under load, and as writes lost after the abort).
    as_client.maximum_version = ssl.TLSVersion.TLSv1_2

    def tunnel(client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                client.close()
                return
            head += chunk
        host = head.split(b"\r\n", 1)[0].split()[1].split(b":")[0].decode()
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            down = as_server.wrap_socket(client, server_side=True)
            up = as_client.wrap_socket(
                socket.create_connection(("127.0.0.1", upstream_port)), server_hostname=host)
        except (OSError, ssl.SSLError):
            client.close()
            return
        try:
            while True:
                ready, _, _ = select.select([down, up], [], [], 600)
                if not ready:
                    return
                for side in ready:
                    data = side.recv(65536)
                    while side.pending():  # TLS may hold decrypted bytes select cannot see
                        data += side.recv(65536)
                    if not data:
                        return
                    if side is down:
                        up.sendall(IDENTITY.sub(b"", data))
                    else:
                        down.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            down.close()
            up.close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(64)
    print("ready", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=tunnel, args=(client,), daemon=True).start()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:6])
