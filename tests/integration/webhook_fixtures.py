"""Helpers for the inbound-webhook integration tests (Python 3 standard library only).

- the pywa fixtures (tests/fixtures/pywa/*.json), rewritten so every message has a unique wamid
  and names the test channel's phone_number_id (the upstream data repeats ids and has
  placeholders);
- hand-built webhook bodies (text messages, statuses, several entries and changes);
- Meta's signature (X-Hub-Signature-256), signed POSTs, keep-alive posters;
- /metrics parsing, bounded polling, and "every raw event is processed" waits through psql.

Everything here builds on harness.py and never changes it.
"""
import copy
import glob
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from harness import ParleyServer, Response, http_request

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE_DIR = os.path.join(HERE, "..", "fixtures", "pywa")
WEBHOOK_PATH = "/webhooks/whatsapp"

# What the fixtures README promises; a test fails loudly if the data set changes under it.
FIXTURE_PAYLOADS = 77
FIXTURE_MESSAGE_PAYLOADS = 37
FIXTURE_STATUS_PAYLOADS = 7


# ---- fixtures ------------------------------------------------------------------------------

class Fixture(NamedTuple):
    file: str   # e.g. "message.json"
    case: str   # e.g. "text"
    body: dict  # the full webhook body, as stored upstream

    @property
    def name(self) -> str:
        return f"{self.file[:-5]}/{self.case}"


def load_fixtures() -> List[Fixture]:
    out = []
    for path in sorted(glob.glob(os.path.join(FIXTURE_DIR, "*.json"))):
        with open(path, encoding="utf-8") as f:
            cases = json.load(f)
        for case, body in cases.items():
            out.append(Fixture(os.path.basename(path), case, body))
    return out


def unique_wamid(tag: str = "") -> str:
    """A wamid no other test (or run) uses; Meta's look like wamid.<base64>."""
    return f"wamid.it{tag}.{secrets.token_hex(10)}"


def _is_placeholder(v: Any) -> bool:
    return isinstance(v, str) and v.startswith("<") and v.endswith(">")


class Rewritten(NamedTuple):
    body: dict
    messages: List[dict]  # the rewritten message objects (id, type, from, ...)
    statuses: List[dict]  # the rewritten status objects


def rewrite(body: dict, phone_number_id: str, wa_id: Optional[str] = None,
            tag: str = "") -> Rewritten:
    """A deep copy of `body` that names `phone_number_id` in every change's metadata, gives each
    message and status a unique id, and replaces placeholder senders / recipients (or all of
    them when `wa_id` is given) so rows land in a predictable conversation."""
    doc = copy.deepcopy(body)
    messages, statuses = [], []
    for entry in doc.get("entry") or []:
        for change in entry.get("changes") or []:
            value = change.get("value")
            if not isinstance(value, dict):
                continue
            meta = value.get("metadata")
            if isinstance(meta, dict) and "phone_number_id" in meta:
                meta["phone_number_id"] = phone_number_id
                if _is_placeholder(meta.get("display_phone_number")):
                    meta["display_phone_number"] = "15550100"
            sender = wa_id
            for contact in value.get("contacts") or []:
                if not isinstance(contact, dict):
                    continue
                if wa_id is not None or _is_placeholder(contact.get("wa_id")):
                    contact["wa_id"] = wa_id or "15550199"
            for m in value.get("messages") or []:
                if not isinstance(m, dict):
                    continue
                m["id"] = unique_wamid(tag)
                if sender is not None or _is_placeholder(m.get("from")):
                    m["from"] = sender or "15550199"
                messages.append(m)
            for s in value.get("statuses") or []:
                if not isinstance(s, dict):
                    continue
                s["id"] = unique_wamid(tag)
                if sender is not None or _is_placeholder(s.get("recipient_id")):
                    s["recipient_id"] = sender or "15550199"
                statuses.append(s)
    return Rewritten(doc, messages, statuses)


# ---- hand-built bodies ---------------------------------------------------------------------

def envelope(*entries: dict) -> dict:
    return {"object": "whatsapp_business_account", "entry": list(entries)}


def entry(*changes: dict, waba_id: str = "102290129340398") -> dict:
    return {"id": waba_id, "changes": list(changes)}


def messages_change(phone_number_id: str, messages: List[dict],
                    contacts: Optional[List[dict]] = None, display: str = "15550100") -> dict:
    """A `messages` change; `contacts` defaults to one profile per distinct sender."""
    if contacts is None:
        seen = []
        for m in messages:
            if m["from"] not in seen:
                seen.append(m["from"])
        contacts = [{"profile": {"name": f"Contact {w}"}, "wa_id": w} for w in seen]
    return {"field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": display,
                                   "phone_number_id": phone_number_id},
                      "contacts": contacts, "messages": messages}}


def statuses_change(phone_number_id: str, statuses: List[dict]) -> dict:
    return {"field": "messages",
            "value": {"messaging_product": "whatsapp",
                      "metadata": {"display_phone_number": "15550100",
                                   "phone_number_id": phone_number_id},
                      "statuses": statuses}}


def text_message(wa_id: str, text: str, wamid: Optional[str] = None,
                 ts: Optional[int] = None) -> dict:
    return {"from": wa_id, "id": wamid or unique_wamid(), "timestamp": str(ts or int(time.time())),
            "type": "text", "text": {"body": text}}


def status(wamid: str, value: str, recipient: str, ts: Optional[int] = None,
           errors: Optional[list] = None) -> dict:
    s = {"id": wamid, "status": value, "timestamp": str(ts or int(time.time())),
         "recipient_id": recipient}
    if errors is not None:
        s["errors"] = errors
    return s


def text_body(phone_number_id: str, wa_id: str, text: str = "hello",
              wamid: Optional[str] = None, ts: Optional[int] = None) -> dict:
    """One inbound text message, as Meta sends it."""
    return envelope(entry(messages_change(phone_number_id,
                                          [text_message(wa_id, text, wamid, ts)])))


def status_body(phone_number_id: str, statuses: List[dict]) -> dict:
    return envelope(entry(statuses_change(phone_number_id, statuses)))


def encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body).encode()


# ---- signing and posting -------------------------------------------------------------------

def sign(secret: str, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


def post_webhook(srv: ParleyServer, body: Any, secret: Optional[str], path: str = WEBHOOK_PATH,
                 signature: Optional[str] = None, headers: Optional[dict] = None,
                 timeout: float = 30.0) -> Response:
    """POSTs `body` (a dict, or bytes as they are) signed with `secret` (None: unsigned, unless
    `signature` gives the header's exact value)."""
    raw = encode(body)
    hdrs = dict(headers or {})
    if signature is not None:
        hdrs["X-Hub-Signature-256"] = signature
    elif secret is not None:
        hdrs["X-Hub-Signature-256"] = sign(secret, raw)
    return http_request(srv.port, "POST", path, raw=raw, headers=hdrs, timeout=timeout)


class KeepAlivePoster:
    """Signed POSTs over one persistent HTTP/1.1 connection (reconnects after an error), as
    Meta's delivery does. `post` returns the status, or None when the exchange failed."""

    def __init__(self, port: int, secret: str, path: str = WEBHOOK_PATH, timeout: float = 10.0):
        self.port, self.secret, self.path, self.timeout = port, secret, path, timeout
        self.conn: Optional[http.client.HTTPConnection] = None

    def post(self, body: Any) -> Optional[int]:
        raw = encode(body)
        hdrs = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(self.secret, raw)}
        try:
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=self.timeout)
            self.conn.request("POST", self.path, body=raw, headers=hdrs)
            resp = self.conn.getresponse()
            resp.read()
            if resp.will_close:
                self.close()
            return resp.status
        except (OSError, http.client.HTTPException):
            self.close()
            return None

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None


# ---- metrics -------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> List[Tuple[str, Dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = {k: v for k, v in _LABEL.findall(m.group(2) or "")}
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            pass
    return out


def scrape(srv: ParleyServer) -> List[Tuple[str, Dict[str, str], float]]:
    r = srv.request("GET", "/metrics")
    if r.status != 200:
        raise AssertionError(f"/metrics: {r.describe()}")
    return parse_metrics(r.body if isinstance(r.body, str) else "")


def metric(srv_or_samples: Any, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    samples = scrape(srv_or_samples) if isinstance(srv_or_samples, ParleyServer) else srv_or_samples
    return sum(v for n, l, v in samples
               if n == name and all(l.get(k) == str(x) for k, x in labels.items()))


# ---- waiting -------------------------------------------------------------------------------

def wait_until(pred: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Polls `pred` until it returns something truthy (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            return None
        time.sleep(interval)


def sql_int(srv_or_db: Any, statement: str) -> int:
    out = srv_or_db.sql(statement)
    return int(out or 0)


def unprocessed(srv_or_db: Any) -> int:
    """Raw events that still owe work (migration 0010: their ids wait in a table of their own)."""
    return sql_int(srv_or_db, "SELECT count(*) FROM raw_webhook_events_pending")


def is_processed_sql(alias: str = "raw_webhook_events") -> str:
    """SQL true when the raw event `alias` has been processed."""
    return (f"NOT EXISTS (SELECT 1 FROM raw_webhook_events_pending p "
            f"WHERE p.id = {alias}.id)")


def raw_event_count(srv_or_db: Any) -> int:
    return sql_int(srv_or_db, "SELECT count(*) FROM raw_webhook_events")


def wait_processed(srv: ParleyServer, timeout: float = 30.0) -> None:
    """Every stored raw event is processed, or AssertionError naming what is left."""
    if wait_until(lambda: unprocessed(srv) == 0, timeout, 0.1):
        return
    left = srv.sql("SELECT e.id, e.outcome, e.error, left(convert_from(e.body, 'UTF8'), 200) "
                   "FROM raw_webhook_events_pending p JOIN raw_webhook_events e USING (id) "
                   "ORDER BY e.id LIMIT 10")
    raise AssertionError(f"{unprocessed(srv)} raw events still unprocessed after {timeout} s:\n"
                         f"{left}\n{srv.logs(40)}")


def sql_quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


# ---- tenant set-up -------------------------------------------------------------------------

class TenantChannel(NamedTuple):
    tenant_id: str
    key: str
    channel_id: str
    phone_number_id: str
    app_secret: Optional[str]


def tenant_with_channel(srv: ParleyServer, app_secret: Optional[str] = None,
                        channels: int = 1) -> List[TenantChannel]:
    """A new tenant, an API key and `channels` channels (each with `app_secret` when given)."""
    t = srv.create_tenant()
    key = srv.create_api_key(t["id"])["key"]
    out = []
    for _ in range(channels):
        pnid = str(secrets.randbelow(10**14) + 10**14)
        fields = {"phone_number_id": pnid}
        if app_secret is not None:
            fields["app_secret"] = app_secret
        ch = srv.create_channel(t["id"], **fields)
        out.append(TenantChannel(t["id"], key, ch["id"], pnid, app_secret))
    return out


def api_get(srv: ParleyServer, key: str, path: str) -> Response:
    return srv.request("GET", path, token=key)


def list_all(srv: ParleyServer, key: str, path: str, limit: int = 500,
             max_pages: int = 100) -> List[dict]:
    """Follows next_cursor through every page of a list endpoint."""
    sep = "&" if "?" in path else "?"
    rows, cursor = [], None
    for _ in range(max_pages):
        p = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = api_get(srv, key, p)
        if r.status != 200:
            raise AssertionError(f"GET {p}: {r.describe()}\n{srv.logs(30)}")
        rows += r.body["data"]
        cursor = r.body.get("next_cursor")
        if not cursor:
            return rows
    raise AssertionError(f"{path}: pagination did not end after {max_pages} pages")


def conversations(srv: ParleyServer, key: str, query: str = "") -> List[dict]:
    return list_all(srv, key, "/v1/conversations" + (("?" + query) if query else ""))


def conversation_of(srv: ParleyServer, key: str, wa_id: str,
                    channel_id: Optional[str] = None) -> Optional[dict]:
    for c in conversations(srv, key):
        if c["contact"]["wa_id"] == wa_id and (channel_id is None or c["channel_id"] == channel_id):
            return c
    return None


def messages_of(srv: ParleyServer, key: str, conversation_id: str,
                order: str = "asc") -> List[dict]:
    return list_all(srv, key, f"/v1/conversations/{conversation_id}/messages?order={order}")


def message_by_wamid(srv: ParleyServer, key: str, wamid: str) -> Optional[dict]:
    """The message as the API shows it, found through its wamid (id looked up with psql)."""
    mid = srv.sql(f"SELECT id FROM messages WHERE wamid = {sql_quote(wamid)}")
    if not mid:
        return None
    r = api_get(srv, key, f"/v1/messages/{mid.splitlines()[0]}")
    if r.status != 200:
        raise AssertionError(f"GET /v1/messages/{mid}: {r.describe()}")
    return r.body


def wamid_rows(srv: ParleyServer, wamid: str) -> int:
    """How many message rows carry `wamid` (any tenant, any channel)."""
    return sql_int(srv, f"SELECT count(*) FROM messages WHERE wamid = {sql_quote(wamid)}")


def raw_event_id(srv: ParleyServer, request_id: str) -> Optional[int]:
    out = srv.sql(f"SELECT id FROM raw_webhook_events WHERE request_id = {sql_quote(request_id)}")
    return int(out.splitlines()[0]) if out else None


def wait_event(srv: ParleyServer, request_id: str, timeout: float = 15.0) -> Tuple[str, str]:
    """Waits until the raw event stored for `request_id` is processed; returns (outcome, error).
    Fails early, with the server's reason, once the ingest gives the event up to the sweep."""
    deadline = time.monotonic() + timeout
    rid = None
    while True:
        if rid is None:
            rid = raw_event_id(srv, request_id)
        if rid is not None:
            out = srv.sql("SELECT outcome, coalesce(error, ''), " + is_processed_sql() +
                          f" FROM raw_webhook_events WHERE id = {rid}")
            parts = out.split("|")
            outcome, error, done = parts[0], "|".join(parts[1:-1]), parts[-1] == "t"
            if done:
                return outcome, error
            given_up = [r for r in srv.log_records()
                        if r.get("msg") == "raw event left for the sweep"
                        and r.get("raw_event_id") == rid]
            if given_up:
                raise AssertionError(f"raw event {rid} (request {request_id}) was given up to the "
                                     f"sweep, unprocessed: {given_up[-1].get('error')}")
        if time.monotonic() > deadline:
            raise AssertionError(f"raw event of request {request_id} (id {rid}) not processed "
                                 f"within {timeout} s\n{srv.logs(20)}")
        time.sleep(0.1)
