"""A netns test's app: answers GET / with its own name, on every address given (IPv4 or
IPv6), and logs each request's source to app-NAME.log in the current directory.

usage: name_app.py NAME PORT ADDRESS..."""
import socket, sys, http.server, socketserver
name, port, addrs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name}\n".encode()
        with open(f"app-{name}.log", "a") as f:
            f.write(f"{self.client_address[0]} {self.requestline}\n")
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
class S4(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
class S6(S4):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()
import threading
servers = [(S6 if ":" in a else S4)((a, port), H) for a in addrs]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
