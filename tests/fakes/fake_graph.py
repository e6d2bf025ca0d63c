#!/usr/bin/env python3
"""A fake Meta Graph API (WhatsApp Cloud API send side) for Parley's outbound tests.

Python 3 standard library only. It answers like Meta's published contract:

  POST /{version}/{phone_number_id}/messages     send a message, or mark one as read
  GET  /{version}/{phone_number_id}              phone number health (verified_name, quality...)

with Meta's response and error shapes (`{"error":{"message","type","code","error_subcode",
"error_data":{"messaging_product","details"},"fbtrace_id"}}`), and lets a test inject faults
(error answers N times or always, latency, connections dropped before or after the body, a
Retry-After header), and records every request so a test can count what "Meta" received.

In process:
    with FakeGraph() as fake:                 # FakeGraph(tls=True) for https + fake.ca_file
        fake.set_token("1234567890", "EAAG...")
        fake.fail("1234567890", status=429, code=130429, times=2)
        ... point a channel's graph_base_url at fake.url ...
        fake.sent_messages("1234567890")

Standalone (other languages, manual runs):
    python3 tests/fakes/fake_graph.py --port 0 [--tls]
prints {"url": ..., "ca_file": ...} on one line, then serves a control API under /_fake/
(see README.md in this folder) until SIGINT/SIGTERM.
"""
import argparse
import base64
import http.server
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from typing import Any, Callable, Dict, List, Optional

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
DEFAULT_WABA_ID = "102290129340398"
VERSION_RE = re.compile(r"^v\d{1,2}\.\d$")
PNID_RE = re.compile(r"^\d{1,20}$")
TEXT_BODY_MAX = 4096

# Meta's error code list (Cloud API "Error codes" page and the Graph API error handling guide):
# code -> (title, details). The title is what Meta puts after "(#code) " in error.message (sync
# answers) and in errors[].title (webhooks); details goes to error_data.details.
ERRORS: Dict[int, tuple] = {
    0: ("AuthException", "We were unable to authenticate the app user."),
    1: ("An unknown error occurred", "Invalid request or possible server error."),
    2: ("Service temporarily unavailable", "Temporary due to downtime or due to being overloaded."),
    3: ("Capability or permissions issue", "Capability or permissions issue."),
    4: ("Application request limit reached", "The app has reached its API call rate limit."),
    10: ("Permission denied", "Permission is either not granted or has been removed."),
    100: ("Invalid parameter", "The request included one or more unsupported or misspelled "
                               "parameters."),
    190: ("Access token has expired", "Your access token has expired."),
    200: ("Permission denied", "Permission is either not granted or has been removed."),
    368: ("Temporarily blocked for policies violations",
          "The WhatsApp Business Account associated with the app has been restricted or disabled "
          "for violating a platform policy."),
    80007: ("Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    131000: ("Something went wrong", "Message failed to send due to an unknown error."),
    131005: ("Access denied", "Permission is either not granted or has been removed."),
    131008: ("Required parameter is missing", "The request is missing a required parameter."),
    131009: ("Parameter value is not valid", "One or more parameter values are invalid."),
    131016: ("Service unavailable", "A service is temporarily unavailable."),
    131021: ("Recipient cannot be sender", "Sender and recipient phone number is the same."),
    131026: ("Message undeliverable", "Unable to deliver message."),
    131047: ("Re-engagement message", "Message failed to send because more than 24 hours have "
                                      "passed since the customer last replied to this number."),
    131048: ("Spam rate limit hit", "Message failed to send because there are restrictions on how "
                                    "many messages can be sent from this phone number."),
    131051: ("Unsupported message type", "Unsupported message type."),
    131056: ("(Business Account, Consumer Account) pair rate limit hit",
             "Message failed to send because there were too many messages sent from this phone "
             "number to the same phone number in a short period of time."),
    131057: ("Account in maintenance mode", "Business account is in maintenance mode."),
    132000: ("Number of parameters does not match the expected number of params",
             "The number of variable parameter values does not match the template."),
    132001: ("Template does not exist", "The template does not exist in the specified language or "
                                        "the template has not been approved."),
    133010: ("Phone number not registered", "The phone number is not registered on the Cloud API."),
}

# Required members of each message type's object (what Meta refuses with (#100) when missing).
_REQUIRED = {
    "text": ["body"],
    "template": ["name", "language"],
    "location": ["latitude", "longitude"],
    "interactive": ["type", "action"],
    "reaction": ["message_id"],
    "contacts": [],
}
_MEDIA = ("image", "audio", "video", "document", "sticker")
MESSAGE_TYPES = ("text", "template", "image", "audio", "video", "document", "sticker",
                 "location", "interactive", "reaction", "contacts")


def title_of(code: int) -> str:
    """Meta's title of an error code ("Re-engagement message" for 131047)."""
    return ERRORS.get(code, ("Unknown error", ""))[0]


def _fbtrace_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(8)).decode().rstrip("=")


def _expired_token_message() -> str:
    now = time.gmtime()
    past = time.gmtime(time.time() - 3600)
    fmt = "%A, %d-%b-%y %H:%M:%S PST"
    return (f"Error validating access token: Session has expired on {time.strftime(fmt, past)}. "
            f"The current time is {time.strftime(fmt, now)}.")


def graph_error(code: int, message: Optional[str] = None, type: str = "OAuthException",
                error_subcode: Optional[int] = None, details: Optional[str] = None,
                title: Optional[str] = None) -> dict:
    """A Graph API error body as Meta answers it synchronously. Without `message`: Meta's text,
    "(#<code>) <title>" (190: "Error validating access token: Session has expired ...")."""
    known_title, known_details = ERRORS.get(code, ("Unknown error", None))
    title = title or known_title
    if message is None:
        message = _expired_token_message() if code == 190 else f"(#{code}) {title}"
    err: Dict[str, Any] = {"message": message, "type": type, "code": code}
    if code == 190 and error_subcode is None:
        error_subcode = 463  # "session has expired"
    if error_subcode is not None:
        err["error_subcode"] = error_subcode
    if details is None and code not in (190, 0):
        details = known_details
    if details is not None:
        err["error_data"] = {"messaging_product": "whatsapp", "details": details}
    err["fbtrace_id"] = _fbtrace_id()
    return {"error": err}


def webhook_error(code: int, title: Optional[str] = None, details: Optional[str] = None) -> dict:
    """One errors[] item of a webhook (statuses[].errors, value.errors), as Meta sends it."""
    known_title, known_details = ERRORS.get(code, ("Unknown error", ""))
    title = title or known_title
    return {"code": code, "title": title, "message": title,
            "error_data": {"details": details if details is not None else known_details},
            "href": ERROR_CODES_HREF}


def new_wamid(to: str = "") -> str:
    """A unique id shaped like Meta's: "wamid." + base64 of an opaque binary blob."""
    blob = (b"\x15\x02\x00\x11\x18\x12" + to.encode()[:15] + b"\x15\x02\x00\x12\x18\x14"
            + secrets.token_hex(10).upper().encode() + b"\x00")
    return "wamid." + base64.b64encode(blob).decode()


class _Rule:
    """One injected fault: an error answer or a dropped connection."""

    def __init__(self, kind: str, pnid: Optional[str], times: Optional[int], endpoint: str,
                 **params):
        self.kind = kind          # "fail" | "drop"
        self.pnid = pnid
        self.remaining = times    # None: always
        self.endpoint = endpoint  # "messages" | "health" | "any"
        self.params = params

    def matches(self, pnid: Optional[str], endpoint: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.pnid is not None and self.pnid != pnid:
            return False
        return self.endpoint == "any" or self.endpoint == endpoint

    def describe(self) -> dict:
        return {"kind": self.kind, "pnid": self.pnid, "remaining": self.remaining,
                "endpoint": self.endpoint, **self.params}


class _Delay:
    def __init__(self, ms: float, max_ms: Optional[float], pnid: Optional[str],
                 times: Optional[int], endpoint: str):
        self.ms, self.max_ms, self.pnid, self.remaining, self.endpoint = (ms, max_ms, pnid, times,
                                                                          endpoint)

    def matches(self, pnid: Optional[str], endpoint: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.pnid is not None and self.pnid != pnid:
            return False
        return self.endpoint == "any" or self.endpoint == endpoint

    def seconds(self) -> float:
        ms = self.ms if self.max_ms is None else random.uniform(self.ms, self.max_ms)
        return max(0.0, ms) / 1000.0


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, handler, fake: "FakeGraph", ssl_context: Optional[ssl.SSLContext]):
        self.fake = fake
        self.ssl_context = ssl_context
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        # TLS handshakes happen here, in the connection's own thread, so a slow or broken
        # client never blocks the accept loop.
        if self.ssl_context is None:
            self.fake._track(request, True)
            try:
                super().finish_request(request, client_address)
            finally:
                self.fake._track(request, False)
            return
        try:
            request.settimeout(30)
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            return
        self.fake._track(tls, True)
        try:
            super().finish_request(tls, client_address)
        finally:
            self.fake._track(tls, False)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass  # a client that vanished mid-request is what some tests do on purpose


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeGraph/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections end eventually

    def setup(self):
        super().setup()
        self.conn_id = self.server.fake._next_conn_id()

    def log_message(self, fmt, *args):
        if self.server.fake.verbose:
            sys.stderr.write("fake_graph: " + (fmt % args) + "\n")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PUT(self):
        self._dispatch("PUT")

    # -- I/O

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _answer(self, status: int, body: Any, headers: Optional[dict] = None,
                content_type: str = "application/json; charset=UTF-8") -> bool:
        """Writes the answer; False when the client was gone."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def _drop(self) -> None:
        """Ends the connection without a byte of answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routing

    def _dispatch(self, method: str) -> None:
        fake: FakeGraph = self.server.fake
        path, _, query = self.path.partition("?")
        if path.startswith("/_fake/") or path == "/_fake":
            body = self._read_body()
            status, answer = fake._control(method, path, query, body)
            self._answer(status, answer)
            return
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        version = parts[0] if parts else None
        pnid = parts[1] if len(parts) >= 2 else None
        if len(parts) == 3 and parts[2] == "messages":
            endpoint = "messages"
        elif len(parts) == 2:
            endpoint = "health"
        else:
            endpoint = "other"
        rec = fake._new_record(method, self.path, version, pnid, endpoint, self.headers,
                               self.conn_id)
        rule, delay = fake._take_fault(pnid, endpoint)

        if rule is not None and rule.kind == "drop" and not rule.params.get("after_body"):
            rec.update(outcome="dropped", dropped="before_body")
            fake._store(rec)
            self._drop()
            return

        raw = self._read_body()
        rec["body_raw"] = raw.decode("utf-8", errors="replace")
        try:
            rec["body"] = json.loads(raw) if raw else None
        except ValueError:
            rec["body"] = None
        if delay is not None:
            seconds = delay.seconds()
            rec["delay_ms"] = round(seconds * 1000)
            time.sleep(seconds)

        if rule is not None and rule.kind == "drop":
            rec.update(outcome="dropped", dropped="after_body")
            if rule.params.get("processed") and endpoint == "messages" and method == "POST":
                # Meta did the work; only the answer is lost (the in-doubt case of a sender).
                status, answer = fake._graph(method, endpoint, version, pnid, rec)
                rec.update(processed=True, would_have_answered=status)
                rec["outcome"] = ("dropped_after_send" if status == 200 and rec.get("wamid")
                                  else "dropped")
            fake._store(rec)
            self._drop()
            return

        if rule is not None and rule.kind == "fail":
            status, answer, headers, ctype = fake._fault_answer(rule)
            rec.update(outcome="fault", status=status, fault_code=rule.params.get("code"))
            rec["response"] = answer if not isinstance(answer, bytes) else answer.decode(
                "utf-8", errors="replace")
            fake._store(rec)
            rec["answered"] = self._answer(status, answer, headers, ctype)
            return

        status, answer = fake._graph(method, endpoint, version, pnid, rec)
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = ('OAuth "Facebook Platform" "invalid_token" '
                                           f'"{answer["error"]["message"]}"')
        rec.update(status=status, response=answer)
        fake._store(rec)
        rec["answered"] = self._answer(status, answer, headers)


class FakeGraph:
    """The fake Graph API. See the module docstring; every method is thread-safe."""

    def __init__(self, tls: bool = False, host: str = "127.0.0.1", port: int = 0,
                 strict_auth: bool = True, verbose: bool = False):
        """strict_auth: a request without `Authorization: Bearer ...` is refused (401, 190) even
        for a number with no registered token (Meta never serves without a token). Numbers with
        a registered token (set_token) also refuse any other token."""
        self.tls = tls
        self.host = host
        self.port = port
        self.strict_auth = strict_auth
        self.verbose = verbose
        self.ca_file: Optional[str] = None
        self._tmpdir: Optional[str] = None
        self._lock = threading.Lock()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._conn_seq = 0
        self._open_sockets: set = set()
        self._init_state()

    def _init_state(self) -> None:
        self._records: List[dict] = []
        self._seq = 0
        self._rules: List[_Rule] = []
        self._delays: List[_Delay] = []
        self._tokens: Dict[str, str] = {}
        self._profiles: Dict[str, dict] = {}
        self._conversations: Dict[tuple, str] = {}

    # -- life cycle

    def start(self) -> "FakeGraph":
        ctx = None
        if self.tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert, key = self._make_certificate()
            ctx.load_cert_chain(cert, key)
        self._httpd = _Server((self.host, self.port), _Handler, self, ctx)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        name="fake-graph", daemon=True)
        self._thread.start()
        return self

    def _make_certificate(self) -> tuple:
        self._tmpdir = tempfile.mkdtemp(prefix="fake-graph-")
        cert = os.path.join(self._tmpdir, "cert.pem")
        key = os.path.join(self._tmpdir, "key.pem")
        proc = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", key, "-out", cert], capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"openssl could not make a certificate: {proc.stderr.strip()}")
        self.ca_file = cert  # self-signed: the certificate is its own CA
        return cert, key

    @property
    def url(self) -> str:
        """Base URL to use as a channel's graph_base_url (no trailing slash)."""
        if self._httpd is None:
            raise RuntimeError("FakeGraph is not started")
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            with self._lock:
                socks = list(self._open_sockets)
            for s in socks:  # keep-alive connections end too: the client sees the fake go away
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._httpd = None
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> "FakeGraph":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _track(self, sock, add: bool) -> None:
        with self._lock:
            (self._open_sockets.add if add else self._open_sockets.discard)(sock)

    def _next_conn_id(self) -> int:
        with self._lock:
            self._conn_seq += 1
            return self._conn_seq

    # -- configuration

    def set_token(self, pnid: str, token: Optional[str]) -> None:
        """The only token `pnid` accepts from now on (None: any token again)."""
        with self._lock:
            if token is None:
                self._tokens.pop(str(pnid), None)
            else:
                self._tokens[str(pnid)] = token

    def set_profile(self, pnid: str, **fields) -> None:
        """Overrides fields of the health answer of `pnid` (verified_name, display_phone_number,
        quality_rating, ...)."""
        with self._lock:
            self._profiles.setdefault(str(pnid), {}).update(fields)

    def fail(self, pnid: Optional[str] = None, status: int = 429, code: Optional[int] = 130429,
             times: int = 1, message: Optional[str] = None, type: str = "OAuthException",
             error_subcode: Optional[int] = None, details: Optional[str] = None,
             retry_after: Optional[float] = None, always: bool = False,
             endpoint: str = "messages", raw: Optional[str] = None,
             title: Optional[str] = None) -> None:
        """The next `times` requests (every one with always=True) of `pnid` (None: any number)
        to `endpoint` ("messages", "health" or "any") are answered `status` with a Graph error
        body for `code` (Meta's message and details unless given). `raw` sends that text instead
        (text/html, like a proxy's 502 page; code is then ignored). `retry_after` (seconds) adds
        a Retry-After header. Faults queue in the order they were added."""
        self._add_rule(_Rule("fail", _s(pnid), None if always else times, endpoint,
                             status=status, code=code, message=message, type=type,
                             error_subcode=error_subcode, details=details,
                             retry_after=retry_after, raw=raw, title=title))

    def drop(self, times: int = 1, pnid: Optional[str] = None, after_body: bool = True,
             processed: bool = False, always: bool = False, endpoint: str = "messages") -> None:
        """The next `times` requests are not answered: the connection is closed right after the
        headers (after_body=False) or after reading the whole body. processed=True (with
        after_body) means Meta did send the message and only the answer was lost: the request
        gets a wamid and counts in sent_messages()."""
        self._add_rule(_Rule("drop", _s(pnid), None if always else times, endpoint,
                             after_body=after_body, processed=processed))

    def delay(self, ms: float, pnid: Optional[str] = None, max_ms: Optional[float] = None,
              times: Optional[int] = None, endpoint: str = "any") -> None:
        """Adds latency before every answer (or the next `times` ones): `ms`, or uniformly
        random in [ms, max_ms]. delay(0) with the same pnid removes it."""
        with self._lock:
            self._delays = [d for d in self._delays if d.pnid != _s(pnid)]
            if ms > 0 or (max_ms or 0) > 0:
                self._delays.append(_Delay(ms, max_ms, _s(pnid), times, endpoint))

    def clear_faults(self, pnid: Optional[str] = None) -> None:
        """Removes faults and delays (of `pnid` only when given)."""
        with self._lock:
            if pnid is None:
                self._rules, self._delays = [], []
            else:
                self._rules = [r for r in self._rules if r.pnid != str(pnid)]
                self._delays = [d for d in self._delays if d.pnid != str(pnid)]

    def faults(self) -> List[dict]:
        with self._lock:
            return [r.describe() for r in self._rules if r.remaining is None or r.remaining > 0]

    def reset(self) -> None:
        """Forgets requests, faults, delays, tokens and profiles (the server keeps running)."""
        with self._lock:
            self._init_state()

    def _add_rule(self, rule: _Rule) -> None:
        if rule.endpoint not in ("messages", "health", "any"):
            raise ValueError(f"endpoint must be messages, health or any, not {rule.endpoint!r}")
        with self._lock:
            self._rules.append(rule)

    # -- observations

    def requests(self, pnid: Optional[str] = None, endpoint: Optional[str] = None) -> List[dict]:
        """Every request received (oldest first), as dicts: seq, time (epoch s), conn_id, method,
        path, version, pnid, endpoint ("messages"|"health"|"other"), headers, authorization,
        body (parsed JSON or None), body_raw, status (None when dropped), response, outcome
        ("sent"|"read"|"health"|"error"|"fault"|"dropped"|"dropped_after_send"), wamid, answered
        (False when the client was gone before the answer was written)."""
        with self._lock:
            # Shallow copies: cheap enough to poll; the fake never changes a stored body.
            return [dict(r) for r in self._records
                    if (pnid is None or r["pnid"] == str(pnid))
                    and (endpoint is None or r["endpoint"] == endpoint)]

    def sent_messages(self, pnid: Optional[str] = None) -> List[dict]:
        """Requests Meta turned into a message (a wamid was issued): answered 200, plus dropped
        ones marked processed. Read receipts are not messages (see read_receipts)."""
        return [r for r in self.requests(pnid, "messages")
                if r.get("wamid") and r["outcome"] in ("sent", "dropped_after_send")]

    def sent_count(self, pnid: Optional[str] = None) -> int:
        """len(sent_messages(pnid)) without copying anything (for tight polling loops)."""
        with self._lock:
            return sum(1 for r in self._records
                       if r["endpoint"] == "messages" and r.get("wamid")
                       and r["outcome"] in ("sent", "dropped_after_send")
                       and (pnid is None or r["pnid"] == str(pnid)))

    def read_receipts(self, pnid: Optional[str] = None) -> List[dict]:
        return [r for r in self.requests(pnid, "messages") if r["outcome"] == "read"]

    def health_checks(self, pnid: Optional[str] = None) -> List[dict]:
        return self.requests(pnid, "health")

    def tagged(self, tag: str, pnid: Optional[str] = None, sent_only: bool = True) -> List[dict]:
        """Message requests whose JSON body contains `tag` anywhere (text.body, captions,
        template parameters...): the way to count what Meta received of one message."""
        recs = self.sent_messages(pnid) if sent_only else self.requests(pnid, "messages")
        return [r for r in recs if tag in (r.get("body_raw") or "")
                or tag in json.dumps(r.get("body"), ensure_ascii=False)]

    def count_by(self, key: Callable[[dict], Any], pnid: Optional[str] = None) -> Dict[Any, int]:
        """How many sent messages share each key(record) (e.g. lambda r: r["body"]["to"])."""
        out: Dict[Any, int] = {}
        for r in self.sent_messages(pnid):
            k = key(r)
            out[k] = out.get(k, 0) + 1
        return out

    def duplicates(self, key: Optional[Callable[[dict], Any]] = None,
                   pnid: Optional[str] = None) -> Dict[Any, int]:
        """Keys sent more than once -> count. Default key: `to` + the canonical JSON body."""
        key = key or (lambda r: json.dumps(r.get("body"), sort_keys=True, ensure_ascii=False))
        return {k: n for k, n in self.count_by(key, pnid).items() if n > 1}

    def connections(self, pnid: Optional[str] = None) -> int:
        """Distinct TCP connections the requests (of `pnid`) came on: keep-alive reuse shows as
        fewer connections than requests."""
        return len({r["conn_id"] for r in self.requests(pnid)})

    def wait_for(self, predicate: Callable[["FakeGraph"], Any], timeout: float = 10.0,
                 interval: float = 0.02) -> Any:
        """Polls predicate(self) until truthy (returned) or `timeout` passes (None)."""
        deadline = time.monotonic() + timeout
        while True:
            v = predicate(self)
            if v:
                return v
            if time.monotonic() > deadline:
                return None
            time.sleep(interval)

    # -- webhooks Meta would send back

    def status_webhook_body(self, pnid: str, wamid: str, status: str, recipient: str,
                            errors: Optional[list] = None, timestamp: Optional[int] = None,
                            waba_id: str = DEFAULT_WABA_ID, category: str = "service",
                            display_phone_number: Optional[str] = None) -> dict:
        """A `statuses` webhook body for a message this fake sent (sign it and POST it to
        Parley's /webhooks/whatsapp). sent/delivered/read carry conversation and pricing like
        Meta's (expiration_timestamp only with sent); failed carries errors, given as Meta's
        error objects or as plain codes (default [131026])."""
        ts = int(timestamp if timestamp is not None else time.time())
        st: Dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(ts),
                              "recipient_id": recipient}
        if status in ("sent", "delivered", "read"):
            with self._lock:
                conv = self._conversations.setdefault((str(pnid), recipient), secrets.token_hex(16))
            conversation: Dict[str, Any] = {"id": conv, "origin": {"type": category}}
            if status == "sent":
                conversation = {"id": conv, "expiration_timestamp": str(ts + 86400),
                                "origin": {"type": category}}
            st["conversation"] = conversation
            st["pricing"] = {"billable": True, "pricing_model": "CBP", "category": category}
        if status == "failed" or errors is not None:
            st["errors"] = [e if isinstance(e, dict) else webhook_error(int(e))
                            for e in (errors if errors is not None else [131026])]
        with self._lock:
            display = display_phone_number or self._profiles.get(str(pnid), {}).get(
                "display_phone_number", "15550100")
        return {"object": "whatsapp_business_account",
                "entry": [{"id": waba_id, "changes": [{
                    "value": {"messaging_product": "whatsapp",
                              "metadata": {"display_phone_number": re.sub(r"\D", "", display),
                                           "phone_number_id": str(pnid)},
                              "statuses": [st]},
                    "field": "messages"}]}]}

    # -- request handling (called by the handler threads)

    def _new_record(self, method, path, version, pnid, endpoint, headers, conn_id) -> dict:
        with self._lock:
            self._seq += 1
            seq = self._seq
        auth = headers.get("Authorization")
        return {"seq": seq, "time": time.time(), "conn_id": conn_id, "method": method,
                "path": path, "version": version, "pnid": pnid, "endpoint": endpoint,
                "headers": {k: v for k, v in headers.items()}, "authorization": auth,
                "body": None, "body_raw": None, "status": None, "response": None,
                "outcome": None, "wamid": None, "answered": None}

    def _store(self, rec: dict) -> None:
        with self._lock:
            self._records.append(rec)
            self._records.sort(key=lambda r: r["seq"])

    def _take_fault(self, pnid, endpoint) -> tuple:
        """Claims the first matching rule (one use) and the matching delay, atomically."""
        with self._lock:
            rule = next((r for r in self._rules if r.matches(pnid, endpoint)), None)
            if rule is not None and rule.remaining is not None:
                rule.remaining -= 1
            delay = next((d for d in self._delays if d.matches(pnid, endpoint)), None)
            if delay is not None and delay.remaining is not None:
                delay.remaining -= 1
            return rule, delay

    def _fault_answer(self, rule: _Rule) -> tuple:
        p = rule.params
        headers = {}
        if p.get("retry_after") is not None:
            ra = p["retry_after"]
            headers["Retry-After"] = int(ra) if float(ra).is_integer() else ra
        if p.get("raw") is not None:
            return p["status"], p["raw"].encode(), headers, "text/html; charset=utf-8"
        body = graph_error(p["code"] if p.get("code") is not None else 1, p.get("message"),
                           p.get("type") or "OAuthException", p.get("error_subcode"),
                           p.get("details"), p.get("title"))
        return p["status"], body, headers, "application/json; charset=UTF-8"

    def _graph(self, method: str, endpoint: str, version: Optional[str], pnid: Optional[str],
               rec: dict) -> tuple:
        """Meta's answer to a request that no fault intercepted: (status, body). Sets outcome
        and wamid on `rec`."""
        rec["outcome"] = "error"
        if endpoint == "other" or version is None or not VERSION_RE.match(version):
            return 400, graph_error(2500, f"Unknown path components: {rec['path'].split('?')[0]}")
        if not PNID_RE.match(pnid or ""):
            return 400, _unsupported(method, pnid)
        if (endpoint == "health" and method != "GET") or (endpoint == "messages"
                                                          and method != "POST"):
            return 400, _unsupported(method, pnid)
        refusal = self._check_token(pnid, rec.get("authorization"))
        if refusal is not None:
            return 401, refusal
        if endpoint == "health":
            rec["outcome"] = "health"
            with self._lock:
                prof = dict(self._profiles.get(pnid, {}))
            answer = {"verified_name": "Parley Test", "code_verification_status": "VERIFIED",
                      "display_phone_number": "+1 555-010-0000", "quality_rating": "GREEN",
                      "platform_type": "CLOUD_API", "throughput": {"level": "STANDARD"},
                      "id": pnid}
            answer.update(prof)
            answer["id"] = pnid
            return 200, answer
        body = rec.get("body")
        problem = _invalid_message(body, rec.get("body_raw"))
        if problem is not None:
            return 400, graph_error(100, details=problem)
        if body.get("status") == "read":
            rec["outcome"] = "read"
            return 200, {"success": True}
        to = str(body["to"])
        wamid = new_wamid(to)
        rec.update(outcome="sent", wamid=wamid)
        return 200, {"messaging_product": "whatsapp",
                     "contacts": [{"input": to, "wa_id": re.sub(r"\D", "", to)}],
                     "messages": [{"id": wamid}]}

    def _check_token(self, pnid: str, authorization: Optional[str]) -> Optional[dict]:
        token = None
        if authorization and authorization[:7].lower() == "bearer ":
            token = authorization[7:].strip()
        with self._lock:
            expected = self._tokens.get(pnid)
        if expected is None and (token or not self.strict_auth):
            return None
        if token is not None and token == expected:
            return None
        if token is None:
            missing = graph_error(190, "An active access token must be used to query "
                                       "information about the current user.")
            missing["error"].pop("error_subcode", None)
            return missing
        return graph_error(190)

    # -- the control API (standalone use)

    def _control(self, method: str, path: str, query: str, raw: bytes) -> tuple:
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"error": "body is not JSON"}
        if not isinstance(body, dict):
            return 400, {"error": "body must be a JSON object"}
        try:
            if path == "/_fake/faults" and method == "POST":
                kind = body.pop("kind", "fail")
                if "phone_number_id" in body:
                    body["pnid"] = body.pop("phone_number_id")
                {"fail": self.fail, "drop": self.drop, "delay": self.delay}[kind](**body)
                return 200, {"faults": self.faults()}
            if path == "/_fake/faults" and method == "GET":
                return 200, {"faults": self.faults()}
            if path == "/_fake/faults" and method == "DELETE":
                self.clear_faults(q.get("pnid"))
                return 200, {"faults": self.faults()}
            if path == "/_fake/requests" and method == "GET":
                return 200, {"data": self.requests(q.get("pnid"), q.get("endpoint"))}
            if path == "/_fake/sent" and method == "GET":
                return 200, {"data": self.sent_messages(q.get("pnid"))}
            if path == "/_fake/reset" and method == "POST":
                self.reset()
                return 200, {"reset": True}
            if path == "/_fake/tokens" and method == "POST":
                self.set_token(str(body["phone_number_id"]), body.get("token"))
                return 200, {"phone_number_id": str(body["phone_number_id"])}
            if path == "/_fake/status_webhook" and method == "POST":
                pn = body.pop("phone_number_id")
                return 200, self.status_webhook_body(pn, **body)
        except (KeyError, TypeError, ValueError) as e:
            return 400, {"error": f"bad control request: {e!r}"}
        return 404, {"error": f"no control endpoint {method} {path}",
                     "endpoints": ["POST /_fake/faults", "GET /_fake/faults",
                                   "DELETE /_fake/faults", "GET /_fake/requests",
                                   "GET /_fake/sent", "POST /_fake/reset", "POST /_fake/tokens",
                                   "POST /_fake/status_webhook"]}


def _s(pnid: Optional[Any]) -> Optional[str]:
    return None if pnid is None else str(pnid)


def _unsupported(method: str, pnid: Optional[str]) -> dict:
    return graph_error(100, f"Unsupported {method.lower()} request. Object with ID '{pnid}' does "
                            "not exist, cannot be loaded due to missing permissions, or does not "
                            "support this operation.", error_subcode=33, details=None)


def _invalid_message(body: Any, raw: Optional[str]) -> Optional[str]:
    """What Meta would refuse in a send / mark-as-read body (error_data.details), or None."""
    if not isinstance(body, dict):
        return "The request body is not a JSON object." if raw else "The request body is empty."
    if body.get("messaging_product") != "whatsapp":
        return "The parameter messaging_product is required and must be 'whatsapp'."
    if body.get("status") is not None:
        if body.get("status") != "read":
            return "Param status must be 'read'."
        if not isinstance(body.get("message_id"), str) or not body["message_id"]:
            return "The parameter message_id is required."
        return None
    if body.get("recipient_type", "individual") not in ("individual", "group"):
        return "Param recipient_type must be one of {individual, group}."
    to = body.get("to")
    if not isinstance(to, str) or not re.sub(r"\D", "", to):
        return "The parameter to is required."
    mtype = body.get("type")
    if not isinstance(mtype, str) or not mtype:
        return "The parameter type is required."
    if mtype not in MESSAGE_TYPES:
        return f"Param type must be one of {{{', '.join(MESSAGE_TYPES)}}} - got '{mtype}'."
    obj = body.get(mtype)
    if not isinstance(obj, (dict, list)) or (isinstance(obj, dict) and not obj
                                             and mtype != "reaction"):
        return f"The parameter {mtype} is required."
    if mtype in _MEDIA:
        if not (obj.get("id") or obj.get("link")):
            return f"Param {mtype} must have either id or link."
        return None
    for field in _REQUIRED.get(mtype, []):
        if field not in obj:
            return f"The parameter {mtype}['{field}'] is required."
    if mtype == "text":
        if not isinstance(obj["body"], str) or not obj["body"]:
            return "Param text['body'] is required."
        if len(obj["body"]) > TEXT_BODY_MAX:
            return f"Param text['body'] must be at most {TEXT_BODY_MAX} characters long."
    if mtype == "template":
        lang = obj.get("language")
        if not isinstance(lang, dict) or not lang.get("code"):
            return "The parameter template['language']['code'] is required."
    return None


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description="Fake Meta Graph API (WhatsApp Cloud API).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls", action="store_true", help="https with a self-signed certificate")
    ap.add_argument("--lenient-auth", action="store_true",
                    help="accept requests without a token for numbers with no registered token")
    ap.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = ap.parse_args(argv)
    fake = FakeGraph(tls=args.tls, host=args.host, port=args.port,
                     strict_auth=not args.lenient_auth, verbose=args.verbose).start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(json.dumps({"url": fake.url, "ca_file": fake.ca_file, "port": fake.port}), flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
