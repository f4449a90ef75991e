"""What the fake upstreams (fake_upstream.py, fake_gemini.py) share: a quiet HTTP/1.1 handler
that answers JSON, and serving on a port it prints."""
import json, ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    json_type = "application/json"

    def log_message(self, *a):
        pass

    def send_json(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", self.json_type)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
        return True


def serve(handler, host="127.0.0.1", port=0, tls=None):
    """Serve until killed, after printing the port (tls: CERT, KEY for HTTPS)."""
    srv = ThreadingHTTPServer((host, port), handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
