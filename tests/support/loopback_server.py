"""A loopback TCP server for the tests' hand-written partners: it accepts on a free port
and gives each connection to `_handle` on a thread of its own, until stopped."""

import socket
import threading


class LoopbackServer:
    scheme = "http"

    def __init__(self) -> None:
        self.connections = 0
        self.stopped = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._listener.getsockname()[1]}/hook"

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        raise NotImplementedError
