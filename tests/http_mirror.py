"""A local HTTP mirror on 127.0.0.1 for download tests: serves a folder, honours ``Range: bytes=N-`` (unless
``ranges`` is turned off, as some servers do) and records every request."""

import http.server
import threading
from contextlib import contextmanager
from pathlib import Path


class RangeHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests.append((self.path, self.headers.get("Range")))
        path = self.server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404, "Not Found")
            return
        body, start = path.read_bytes(), 0
        if self.headers.get("Range", "").startswith("bytes=") and self.server.ranges:
            start = int(self.headers["Range"][len("bytes="):].split("-")[0])
            if start >= len(body):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@contextmanager
def serving(root: Path):
    """The running server: ``.root``, ``.url``, ``.requests`` (path, Range header) and a ``.ranges`` switch."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.root, httpd.requests, httpd.ranges = Path(root), [], True
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
