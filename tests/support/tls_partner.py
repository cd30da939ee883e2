"""TLS partners on a bare socket.

DrippingTLSPartner never finishes the TLS handshake: it accepts, reads the ClientHello,
and answers with the header of a 16 KiB handshake record whose bytes it then drips, one
every `drip` seconds (or, with `drip=0`, sends nothing at all). Every read of the client
gets a byte in time, so only a deadline around the whole handshake ends the attempt.
SNIRecordingTLSPartner records the server name a client sends.
"""

import contextlib
import socket
import ssl
import threading

from tests.support.loopback_server import LoopbackServer

# A TLS 1.2 record header: handshake (22), version 3.3, 16,384 bytes of body to come.
_RECORD_HEADER = b"\x16\x03\x03\x40\x00"


class DrippingTLSPartner(LoopbackServer):
    scheme = "https"

    def __init__(self, *, drip: float) -> None:
        super().__init__()
        self.drip = drip

    def _handle(self, client: socket.socket) -> None:
        with client:
            try:
                client.recv(65536)  # the ClientHello
                if not self.drip:
                    self.stopped.wait(60)
                    return
                client.sendall(_RECORD_HEADER)
                while not self.stopped.wait(self.drip):
                    client.sendall(b"\x00")
            except OSError:
                return  # the client gave up: expected at its deadline


class SNIRecordingTLSPartner:
    """A TLS server with a self-signed certificate (made with openssl in `cert_dir`) that
    records the server name each client asks for. No client trusts its certificate, so
    every handshake ends in a certificate error after the name was sent."""

    def __init__(self, cert_dir) -> None:
        import subprocess

        cert, key = cert_dir / "cert.pem", cert_dir / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=springhook-test", "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )
        self.server_names: list[str | None] = []
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert, key)
        self._context.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> "SNIRecordingTLSPartner":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            # The client refuses the certificate: the handshake fails, as expected.
            with client, contextlib.suppress(OSError):
                self._context.wrap_socket(client, server_side=True).close()
