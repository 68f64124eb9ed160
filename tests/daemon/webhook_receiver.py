"""webhook_receiver.py -- a Standard Webhooks receiver for test_refresh.sh.

    python3 webhook_receiver.py PORT_FILE LOG SECRET FAIL_FIRST

Listens on a free local port (written to PORT_FILE), verifies every delivery's signature
with Python's own hmac (not mnemo's code) and appends one JSON line per delivery to LOG:
{"id", "type", "valid", "status"}.  The first FAIL_FIRST deliveries are answered 500, so
the sender's retries are seen; the rest 200.

With WEBHOOK_BODIES=FILE in the environment it also appends {"id", "sha256", "status"}
per delivery to FILE (sha256 of the body): test_faults.sh checks that a redelivery
carries the same body under the same webhook-id.
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import sys
import time

port_file, log_path, secret, fail_first = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
key = base64.b64decode(secret[len("whsec_"):])
seen = 0
bodies_path = os.environ.get("WEBHOOK_BODIES", "")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        wid = self.headers.get("webhook-id", "")
        ts = self.headers.get("webhook-timestamp", "")
        signed = b"%s.%s.%s" % (wid.encode(), ts.encode(), body)
        want = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        sigs = self.headers.get("webhook-signature", "").split(" ")
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        valid = fresh and any(hmac.compare_digest(s, want) for s in sigs)
        try:
            kind = json.loads(body).get("type", "")
        except ValueError:
            kind, valid = "", False
        seen += 1
        status = 500 if seen <= fail_first else 200
        with open(log_path, "a") as f:
            f.write(json.dumps({"id": wid, "type": kind, "valid": valid, "status": status}) + "\n")
        if bodies_path:
            with open(bodies_path, "a") as f:
                f.write(json.dumps({"id": wid, "sha256": hashlib.sha256(body).hexdigest(),
                                    "status": status}) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
