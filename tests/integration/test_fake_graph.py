"""Self-test of the fake Graph API (tests/fakes/fake_graph.py): it must answer like Meta's
published contract and its fault injection must do exactly what the outbound tests rely on.
Needs neither PostgreSQL nor the parley binary."""
import http.client
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import unittest

from harness import FAKES_DIR, import_fake
from webhook_fixtures import sign

fake_graph = import_fake("fake_graph")
FakeGraph = fake_graph.FakeGraph

PNID = "106540352242922"
TOKEN = "EAAG-test-token"


def text(to="15550001111", body="hello"):
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"body": body}}


class Client:
    """One keep-alive connection to the fake (http or https)."""

    def __init__(self, fake, context=None, host="127.0.0.1", timeout=10):
        if fake.tls:
            self.conn = http.client.HTTPSConnection(host, fake.port, timeout=timeout,
                                                    context=context)
        else:
            self.conn = http.client.HTTPConnection(host, fake.port, timeout=timeout)

    def call(self, method, path, body=None, token=TOKEN, raw=None, headers=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        if data is not None:
            hdrs.setdefault("Content-Type", "application/json")
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        payload = resp.read()
        try:
            parsed = json.loads(payload)
        except ValueError:
            parsed = payload.decode("utf-8", errors="replace")
        return resp, parsed

    def send(self, body, pnid=PNID, **kw):
        return self.call("POST", f"/v21.0/{pnid}/messages", body, **kw)

    def close(self):
        self.conn.close()


class FakeCase(unittest.TestCase):
    tls = False

    def setUp(self):
        self.fake = FakeGraph(tls=self.tls).start()
        self.addCleanup(self.fake.stop)
        self.fake.set_token(PNID, TOKEN)
        self.client = Client(self.fake, self.context() if self.tls else None)
        self.addCleanup(self.client.close)

    def context(self):
        return ssl.create_default_context(cafile=self.fake.ca_file)

    def assertGraphError(self, resp, body, status, code, what=""):
        ctx = f"{what}: {resp.status} {body!r}"
        self.assertEqual(resp.status, status, ctx)
        self.assertIsInstance(body, dict, ctx)
        err = body.get("error")
        self.assertIsInstance(err, dict, ctx)
        self.assertEqual(err["code"], code, ctx)
        self.assertEqual(err["type"], "OAuthException", ctx)
        self.assertIsInstance(err["message"], str, ctx)
        self.assertTrue(err["fbtrace_id"], ctx)
        self.assertTrue(resp.getheader("Content-Type", "").startswith("application/json"), ctx)
        return err


class ContractTest(FakeCase):
    def test_send_success_shape_and_record(self):
        resp, body = self.client.send(text("+15550001111", "tag-1"))
        self.assertEqual(resp.status, 200, body)
        self.assertEqual(body["messaging_product"], "whatsapp")
        self.assertEqual(body["contacts"], [{"input": "+15550001111", "wa_id": "15550001111"}])
        self.assertEqual(len(body["messages"]), 1)
        wamid = body["messages"][0]["id"]
        self.assertRegex(wamid, r"^wamid\.[A-Za-z0-9+/=]{20,}$")
        resp, again = self.client.send(text())
        self.assertNotEqual(again["messages"][0]["id"], wamid, "wamids are unique")
        recs = self.fake.requests(PNID)
        self.assertEqual(len(recs), 2)
        r = recs[0]
        self.assertEqual((r["method"], r["path"], r["version"], r["pnid"], r["endpoint"]),
                         ("POST", f"/v21.0/{PNID}/messages", "v21.0", PNID, "messages"))
        self.assertEqual(r["authorization"], f"Bearer {TOKEN}")
        self.assertEqual(r["body"], text("+15550001111", "tag-1"))
        self.assertEqual((r["status"], r["outcome"], r["wamid"], r["answered"]),
                         (200, "sent", wamid, True))
        self.assertEqual(r["response"], body)
        self.assertEqual([m["wamid"] for m in self.fake.tagged("tag-1")], [wamid])
        self.assertEqual(len(self.fake.sent_messages(PNID)), 2)
        self.assertEqual(self.fake.sent_count(PNID), 2)
        self.assertEqual(self.fake.sent_messages("999"), [])
        self.assertEqual(self.fake.sent_count("999"), 0)

    def test_every_message_type_is_accepted(self):
        bodies = {
            "template": {"name": "hello_world", "language": {"code": "en_US"}},
            "image": {"link": "https://example.com/a.jpg"},
            "audio": {"id": "1234"},
            "video": {"link": "https://example.com/a.mp4", "caption": "c"},
            "document": {"id": "55", "filename": "a.pdf"},
            "sticker": {"id": "77"},
            "location": {"latitude": 1.5, "longitude": 2.5, "name": "x"},
            "interactive": {"type": "button", "body": {"text": "pick"}, "action": {
                "buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}},
            "reaction": {"message_id": "wamid.abc", "emoji": "\U0001F44D"},
        }
        for mtype, obj in bodies.items():
            with self.subTest(mtype):
                resp, body = self.client.send({"messaging_product": "whatsapp", "to": "1555",
                                               "type": mtype, mtype: obj})
                self.assertEqual(resp.status, 200, body)
                self.assertTrue(body["messages"][0]["id"].startswith("wamid."))

    def test_mark_as_read(self):
        resp, body = self.client.send({"messaging_product": "whatsapp", "status": "read",
                                       "message_id": "wamid.in1"})
        self.assertEqual((resp.status, body), (200, {"success": True}))
        self.assertEqual([r["body"]["message_id"] for r in self.fake.read_receipts(PNID)],
                         ["wamid.in1"])
        self.assertEqual(self.fake.sent_messages(), [], "a read receipt is not a message")

    def test_wrong_or_missing_token_is_401_code_190(self):
        resp, body = self.client.send(text(), token="EAAG-old")
        err = self.assertGraphError(resp, body, 401, 190, "wrong token")
        self.assertEqual(err["error_subcode"], 463)
        self.assertIn("Error validating access token", err["message"])
        self.assertIn("invalid_token", resp.getheader("WWW-Authenticate"))
        resp, body = self.client.send(text(), token=None)
        self.assertGraphError(resp, body, 401, 190, "no token")
        # A number without a registered token takes any token, but never none.
        resp, body = self.client.send(text(), pnid="42", token="anything")
        self.assertEqual(resp.status, 200, body)
        resp, body = self.client.send(text(), pnid="42", token=None)
        self.assertGraphError(resp, body, 401, 190, "no token, unregistered number")
        # A new token replaces the old one.
        self.fake.set_token(PNID, "EAAG-new")
        resp, body = self.client.send(text())
        self.assertGraphError(resp, body, 401, 190, "old token after rotation")
        resp, body = self.client.send(text(), token="EAAG-new")
        self.assertEqual(resp.status, 200, body)
        self.assertEqual(self.fake.sent_messages(PNID)[-1]["authorization"], "Bearer EAAG-new")
        outcomes = [r["outcome"] for r in self.fake.requests(PNID)]
        self.assertEqual(outcomes, ["error", "error", "error", "sent"])

    def test_invalid_bodies_are_400_code_100(self):
        cases = {
            "not json": b"{not json",
            "empty": b"",
            "no messaging_product": {"to": "1", "type": "text", "text": {"body": "x"}},
            "other product": dict(text(), messaging_product="instagram"),
            "no to": {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}},
            "no type": {"messaging_product": "whatsapp", "to": "1", "text": {"body": "x"}},
            "unknown type": {"messaging_product": "whatsapp", "to": "1", "type": "fax",
                             "fax": {}},
            "no type object": {"messaging_product": "whatsapp", "to": "1", "type": "text"},
            "no text body": {"messaging_product": "whatsapp", "to": "1", "type": "text",
                             "text": {}},
            "text too long": text(body="x" * 4097),
            "template without language": {"messaging_product": "whatsapp", "to": "1",
                                          "type": "template", "template": {"name": "a"}},
            "image without id or link": {"messaging_product": "whatsapp", "to": "1",
                                         "type": "image", "image": {"caption": "c"}},
            "read without message_id": {"messaging_product": "whatsapp", "status": "read"},
        }
        for what, body in cases.items():
            with self.subTest(what):
                raw = body if isinstance(body, bytes) else None
                resp, answer = self.client.send(None if raw is not None else body, raw=raw)
                err = self.assertGraphError(resp, answer, 400, 100, what)
                self.assertTrue(err["message"].startswith("(#100) "), err)
                self.assertTrue(err["error_data"]["details"], err)
                self.assertEqual(err["error_data"]["messaging_product"], "whatsapp")
        resp, body = self.client.send(text(body="\u00e9" * 4096))
        self.assertEqual(resp.status, 200, "4096 characters (not bytes) are allowed")
        self.assertEqual(self.fake.sent_messages(PNID)[-1]["outcome"], "sent")
        self.assertEqual(len(self.fake.sent_messages(PNID)), 1)

    def test_unknown_paths_and_methods(self):
        resp, body = self.client.call("POST", "/v21.0/123/nothing", text())
        self.assertGraphError(resp, body, 400, 2500, "unknown edge")
        resp, body = self.client.call("POST", "/latest/123/messages", text())
        self.assertGraphError(resp, body, 400, 2500, "bad version")
        resp, body = self.client.call("GET", f"/v21.0/{PNID}/messages")
        err = self.assertGraphError(resp, body, 400, 100, "GET on messages")
        self.assertEqual(err["error_subcode"], 33)

    def test_health(self):
        self.fake.set_profile(PNID, verified_name="Acme", display_phone_number="+1 555-0100")
        resp, body = self.client.call("GET", f"/v21.0/{PNID}")
        self.assertEqual(resp.status, 200, body)
        self.assertEqual(body["id"], PNID)
        self.assertEqual(body["verified_name"], "Acme")
        self.assertEqual(body["display_phone_number"], "+1 555-0100")
        self.assertEqual(body["quality_rating"], "GREEN")
        resp, body = self.client.call("GET", f"/v21.0/{PNID}?fields=quality_rating",
                                      token="bad")
        self.assertGraphError(resp, body, 401, 190, "health with a bad token")
        self.assertEqual([r["outcome"] for r in self.fake.health_checks(PNID)],
                         ["health", "error"])
        self.assertEqual(self.fake.requests(PNID, "messages"), [])


class FaultTest(FakeCase):
    def test_fail_n_times_then_success(self):
        self.fake.fail(PNID, status=429, code=130429, times=2, retry_after=3)
        for n in range(2):
            resp, body = self.client.send(text())
            err = self.assertGraphError(resp, body, 429, 130429, f"fault {n}")
            self.assertEqual(err["message"], "(#130429) Rate limit hit")
            self.assertEqual(err["error_data"]["details"],
                             "Cloud API message throughput has been reached.")
            self.assertEqual(resp.getheader("Retry-After"), "3")
        resp, body = self.client.send(text())
        self.assertEqual(resp.status, 200, body)
        self.assertIsNone(resp.getheader("Retry-After"))
        self.assertEqual([r["outcome"] for r in self.fake.requests(PNID)],
                         ["fault", "fault", "sent"])
        self.assertEqual(self.fake.requests(PNID)[0]["fault_code"], 130429)
        self.assertEqual(self.fake.faults(), [])

    def test_faults_are_per_number_and_per_endpoint(self):
        self.fake.fail(PNID, status=400, code=131047, times=1)
        resp, body = self.client.send(text(), pnid="777")
        self.assertEqual(resp.status, 200, "another number is not affected")
        resp, body = self.client.call("GET", f"/v21.0/{PNID}")
        self.assertEqual(resp.status, 200, "health checks are not message sends")
        resp, body = self.client.send(text())
        err = self.assertGraphError(resp, body, 400, 131047, "permanent error")
        self.assertEqual(err["message"], "(#131047) Re-engagement message")
        self.assertEqual(fake_graph.title_of(131047), "Re-engagement message")
        self.assertIn("24 hours", err["error_data"]["details"])
        # A global fault hits every number; endpoint="health" only the health check.
        self.fake.fail(status=500, code=131000, times=1)
        resp, body = self.client.send(text(), pnid="778")
        self.assertGraphError(resp, body, 500, 131000, "global fault")
        self.fake.fail(PNID, status=503, code=2, times=1, endpoint="health")
        resp, _ = self.client.send(text())
        self.assertEqual(resp.status, 200)
        resp, body = self.client.call("GET", f"/v21.0/{PNID}")
        self.assertGraphError(resp, body, 503, 2, "health fault")

    def test_always_raw_and_custom_bodies(self):
        self.fake.fail(PNID, status=502, raw="<html>Bad Gateway</html>", always=True)
        for _ in range(3):
            resp, body = self.client.send(text())
            self.assertEqual(resp.status, 502)
            self.assertEqual(body, "<html>Bad Gateway</html>")
            self.assertTrue(resp.getheader("Content-Type").startswith("text/html"))
        self.assertEqual(len(self.fake.faults()), 1, "an always fault stays")
        self.fake.clear_faults(PNID)
        self.fake.fail(PNID, status=400, code=131056, error_subcode=2494071, times=1,
                       message="(#131056) custom", details="pair limit")
        resp, body = self.client.send(text())
        err = self.assertGraphError(resp, body, 400, 131056)
        self.assertEqual((err["message"], err["error_subcode"], err["error_data"]["details"]),
                         ("(#131056) custom", 2494071, "pair limit"))
        resp, _ = self.client.send(text())
        self.assertEqual(resp.status, 200)

    def test_delay(self):
        self.fake.delay(250, PNID)
        t0 = time.monotonic()
        resp, _ = self.client.send(text())
        self.assertEqual(resp.status, 200)
        self.assertGreaterEqual(time.monotonic() - t0, 0.24)
        self.fake.delay(5, PNID, max_ms=40)
        for _ in range(5):
            self.client.send(text())
        delays = [r["delay_ms"] for r in self.fake.requests(PNID)]
        self.assertEqual(delays[0], 250)
        self.assertTrue(all(5 <= d <= 40 for d in delays[1:]), delays)
        self.fake.delay(0, PNID)
        self.client.send(text())
        self.assertNotIn("delay_ms", self.fake.requests(PNID)[-1])

    def test_drop_before_and_after_body(self):
        self.fake.drop(1, PNID, after_body=False)
        self.fake.drop(1, PNID, after_body=True)
        self.fake.drop(1, PNID, after_body=True, processed=True)
        for n in range(3):
            with self.assertRaises((http.client.RemoteDisconnected, ConnectionError),
                                   msg=f"drop {n}"):
                self.client.send(text(body=f"drop-{n}"))
            self.client.close()
        resp, body = self.client.send(text(body="after"))
        self.assertEqual(resp.status, 200, "the next request is answered")
        recs = self.fake.requests(PNID)
        self.assertEqual([(r["outcome"], r.get("dropped"), r["status"]) for r in recs],
                         [("dropped", "before_body", None), ("dropped", "after_body", None),
                          ("dropped_after_send", "after_body", None), ("sent", None, 200)])
        self.assertIsNone(recs[0]["body"], "the body was never read")
        self.assertEqual(recs[1]["body"]["text"]["body"], "drop-1")
        self.assertTrue(recs[2]["wamid"])
        self.assertEqual([r["body"]["text"]["body"] for r in self.fake.sent_messages(PNID)],
                         ["drop-2", "after"], "a processed drop is a message Meta sent")

    def test_keep_alive_reuse(self):
        for n in range(5):
            resp, _ = self.client.send(text(body=f"k{n}"))
            self.assertEqual(resp.version, 11)
            self.assertIsNotNone(resp.getheader("Content-Length"))
            self.assertFalse(resp.will_close)
        self.client.call("GET", f"/v21.0/{PNID}")
        self.assertEqual(self.fake.connections(), 1)
        other = Client(self.fake)
        other.send(text())
        other.close()
        self.assertEqual(self.fake.connections(), 2)

    def test_concurrent_sends_get_unique_wamids(self):
        self.fake.delay(5, max_ms=20)
        results = []
        lock = threading.Lock()

        def one(i):
            c = Client(self.fake)
            try:
                resp, body = c.send(text(body=f"c-{i}"))
                with lock:
                    results.append((resp.status, body["messages"][0]["id"]))
            finally:
                c.close()
        threads = [threading.Thread(target=one, args=(i,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(len(results), 40)
        self.assertEqual({s for s, _ in results}, {200})
        self.assertEqual(len({w for _, w in results}), 40)
        self.assertEqual(self.fake.duplicates(), {})
        self.assertEqual(sorted(r["seq"] for r in self.fake.requests()), list(range(1, 41)))

    def test_duplicates_and_reset(self):
        for _ in range(3):
            self.client.send(text(body="same"))
        self.client.send(text(body="other"))
        dups = self.fake.duplicates()
        self.assertEqual(list(dups.values()), [3])
        self.assertEqual(self.fake.duplicates(lambda r: r["body"]["to"]),
                         {"15550001111": 4})
        self.fake.fail(PNID, always=True)
        self.fake.reset()
        self.assertEqual(self.fake.requests(), [])
        self.assertEqual(self.fake.faults(), [])
        resp, _ = self.client.send(text(), token="whatever")
        self.assertEqual(resp.status, 200, "reset forgets tokens too")


class TlsTest(FakeCase):
    tls = True

    def test_https_with_the_ca_file(self):
        self.assertTrue(self.fake.url.startswith("https://127.0.0.1:"))
        self.assertTrue(os.path.exists(self.fake.ca_file))
        resp, body = self.client.send(text())
        self.assertEqual(resp.status, 200, body)
        by_name = Client(self.fake, self.context(), host="localhost")
        resp, _ = by_name.call("GET", f"/v21.0/{PNID}")
        by_name.close()
        self.assertEqual(resp.status, 200, "the certificate names localhost too")
        self.client.send(text())
        self.assertEqual(self.fake.connections(), 2, "keep-alive over TLS")

    def test_unknown_ca_is_refused(self):
        c = Client(self.fake, ssl.create_default_context())
        with self.assertRaises(ssl.SSLCertVerificationError):
            c.send(text())
        c.close()
        resp, _ = self.client.send(text())
        self.assertEqual(resp.status, 200, "a failed handshake does not hurt the server")

    def test_drop_over_tls(self):
        self.fake.drop(1, PNID, after_body=True)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionError, ssl.SSLError)):
            self.client.send(text())
        self.client.close()
        resp, _ = self.client.send(text())
        self.assertEqual(resp.status, 200)


class WebhookBodyTest(unittest.TestCase):
    def test_status_bodies_are_shaped_like_metas(self):
        fake = FakeGraph()
        sent = fake.status_webhook_body(PNID, "wamid.X", "sent", "15550001111", timestamp=1000)
        self.assertEqual(sent["object"], "whatsapp_business_account")
        change = sent["entry"][0]["changes"][0]
        self.assertEqual(change["field"], "messages")
        value = change["value"]
        self.assertEqual(value["metadata"]["phone_number_id"], PNID)
        st = value["statuses"][0]
        self.assertEqual((st["id"], st["status"], st["timestamp"], st["recipient_id"]),
                         ("wamid.X", "sent", "1000", "15550001111"))
        self.assertEqual(st["conversation"]["expiration_timestamp"], str(1000 + 86400))
        self.assertEqual(st["pricing"], {"billable": True, "pricing_model": "CBP",
                                         "category": "service"})
        delivered = fake.status_webhook_body(PNID, "wamid.X", "delivered", "15550001111")
        dst = delivered["entry"][0]["changes"][0]["value"]["statuses"][0]
        self.assertEqual(dst["conversation"]["id"], st["conversation"]["id"],
                         "one conversation per number and recipient")
        self.assertNotIn("expiration_timestamp", dst["conversation"])
        failed = fake.status_webhook_body(PNID, "wamid.X", "failed", "15550001111")
        fst = failed["entry"][0]["changes"][0]["value"]["statuses"][0]
        self.assertEqual(fst["errors"][0]["code"], 131026)
        self.assertEqual(fst["errors"][0]["title"], fake_graph.title_of(131026))
        self.assertNotIn("pricing", fst)
        custom = fake.status_webhook_body(PNID, "wamid.X", "failed", "1", errors=[131047])
        self.assertEqual(custom["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]
                         ["title"], "Re-engagement message")
        raw = json.dumps(sent).encode()
        self.assertRegex(sign("secret", raw), r"^sha256=[0-9a-f]{64}$")


class StandaloneTest(unittest.TestCase):
    def test_command_line_and_control_api(self):
        proc = subprocess.Popen([sys.executable, "-B", os.path.join(FAKES_DIR, "fake_graph.py"),
                                 "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

        def end():
            proc.terminate()
            proc.communicate(timeout=10)  # also closes the pipes
        self.addCleanup(end)
        info = json.loads(proc.stdout.readline())
        self.assertTrue(info["url"].startswith("http://127.0.0.1:"), info)
        self.assertIsNone(info["ca_file"])
        port = int(info["url"].rsplit(":", 1)[1])

        def call(method, path, body=None, token=TOKEN):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            hdrs = {"Authorization": f"Bearer {token}"} if token else {}
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers=hdrs)
            r = c.getresponse()
            out = r.status, json.loads(r.read())
            c.close()
            return out
        self.assertEqual(call("POST", "/_fake/tokens", {"phone_number_id": PNID,
                                                       "token": TOKEN})[0], 200)
        st, body = call("POST", "/_fake/faults", {"kind": "fail", "phone_number_id": PNID,
                                                  "status": 500, "code": 131000, "times": 1})
        self.assertEqual(st, 200, body)
        self.assertEqual(body["faults"][0]["remaining"], 1)
        self.assertEqual(call("POST", f"/v21.0/{PNID}/messages", text())[0], 500)
        self.assertEqual(call("POST", f"/v21.0/{PNID}/messages", text())[0], 200)
        self.assertEqual(call("POST", f"/v21.0/{PNID}/messages", text(), token="x")[0], 401)
        st, body = call("GET", f"/_fake/requests?pnid={PNID}")
        self.assertEqual([r["status"] for r in body["data"]], [500, 200, 401])
        st, body = call("GET", f"/_fake/sent?pnid={PNID}")
        self.assertEqual(len(body["data"]), 1)
        st, body = call("POST", "/_fake/status_webhook", {"phone_number_id": PNID,
                                                         "wamid": "wamid.Y", "status": "read",
                                                         "recipient": "1555"})
        self.assertEqual(body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"], "read")
        self.assertEqual(call("POST", "/_fake/reset", {})[0], 200)
        self.assertEqual(call("GET", "/_fake/requests")[1]["data"], [])
        self.assertEqual(call("GET", "/_fake/nothing")[0], 404)


if __name__ == "__main__":
    unittest.main()
