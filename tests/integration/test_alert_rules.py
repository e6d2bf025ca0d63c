"""deploy/prometheus/parley-alerts.yml: promtool accepts the rules, each alert fires on the
condition it is meant for and stays quiet on a benign neighbour (promtool's rule unit tests,
generated here from the cases below), and every metric the rules read is one Parley exports and
documents. No server is needed."""
import glob
import os
import re
import subprocess
import tempfile
import unittest

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus", "parley-alerts.yml")
PROMTOOL = "/usr/bin/promtool"
NODE = {"instance": "node1:8080", "job": "parley"}


def series(name, values, **labels):
    all_labels = dict(NODE, **labels)
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


# (alert, input series, minutes at which it is evaluated, labels it fires with besides the node's
# and severity (None: it must not fire), the value its annotations show as {{ $value }}).
CASES = [
    ("ParleyDown", [series("up", "1 0 0 0 0")], 3, {}, None),
    ("ParleyDown", [series("up", "1 0 1 0 1")], 4, None, None),
    ("ParleyDatabaseWriterDown", [series("parley_db_writer_up", "1 0 0 0")], 2, {}, None),
    ("ParleyDatabaseWriterDown", [series("parley_db_writer_up", "1 0 1 1")], 3, None, None),
    ("ParleyWebhooksRefused",
     [series("parley_webhooks_total", "0+30x15", outcome="storage_unavailable")], 12, {}, None),
    ("ParleyWebhooksRefused",
     [series("parley_webhooks_total", "0+30x15", outcome="accepted"),
      series("parley_webhooks_total", "7x15", outcome="storage_unavailable")], 12, None, None),
    ("ParleyWebhookAckSlow",
     [series("parley_webhook_ack_seconds_bucket", "0x20", le="0.5"),
      series("parley_webhook_ack_seconds_bucket", "0+60x20", le="2.5"),
      series("parley_webhook_ack_seconds_bucket", "0+60x20", le="+Inf")], 17, {}, None),
    ("ParleyWebhookAckSlow",
     [series("parley_webhook_ack_seconds_bucket", "0+60x20", le="0.01"),
      series("parley_webhook_ack_seconds_bucket", "0+60x20", le="+Inf")], 17, None, None),
    ("ParleyWebhookSignatureFailures",
     [series("parley_webhooks_total", "0+60x30", outcome="bad_signature")], 28, {}, None),
    ("ParleyWebhookSignatureFailures",
     [series("parley_webhooks_total", "0+1x30", outcome="bad_signature")], 28, None, None),
    ("ParleyRawEventsLeftForSweep", [series("parley_raw_events_left_total", "0 0 1 1")], 3, {},
     None),
    ("ParleyRawEventsLeftForSweep", [series("parley_raw_events_left_total", "0x40")], 35, None,
     None),
    ("ParleyUnparsableWebhooks",
     [series("parley_webhooks_total", "0 0 1 1", outcome="unparsable")], 3,
     {"outcome": "unparsable"}, None),
    ("ParleyWebhooksForUnknownNumbers",
     [series("parley_webhooks_total", "0+1x50", outcome="unknown_number")], 48, {}, None),
    ("ParleyOutboxStalled",
     [series("parley_outbound_outbox_depth", "5x30"),
      series("parley_outbound_attempts_total", "100x30", outcome="sent")], 25, {}, None),
    ("ParleyOutboxStalled",
     [series("parley_outbound_outbox_depth", "5x30"),
      series("parley_outbound_attempts_total", "0+60x30", outcome="sent")], 25, None, None),
    ("ParleyOutboxStalled",
     [series("parley_outbound_outbox_depth", "0x30"),
      series("parley_outbound_attempts_total", "100x30", outcome="sent")], 25, None, None),
    ("ParleyOutboundFailureRate",
     [series("parley_outbound_messages_total", "0+60x40", outcome="sent", code="none"),
      series("parley_outbound_messages_total", "0+60x40", outcome="failed", code="131026")],
     35, {}, None),
    ("ParleyOutboundFailureRate",
     [series("parley_outbound_messages_total", "0+60x40", outcome="sent", code="none"),
      series("parley_outbound_messages_total", "0+6x40", outcome="failed", code="131026")],
     35, None, None),
    ("ParleyChannelTokenInvalid",
     [series("parley_channels", "2x10", state="token_invalid"),
      series("parley_channels", "40x10", state="connected")], 7, {}, "2"),
    ("ParleyChannelTokenInvalid", [series("parley_channels", "0x10", state="token_invalid")], 7,
     None, None),
    ("ParleyChannelsDisconnected", [series("parley_channels", "1x20", state="disconnected")], 17,
     {}, "1"),
    ("ParleyGraphApiSlow",
     [series("parley_graph_request_seconds_bucket", "0x40", le="2.5"),
      series("parley_graph_request_seconds_bucket", "0+10x40", le="10"),
      series("parley_graph_request_seconds_bucket", "0+10x40", le="+Inf")], 30, {}, None),
    ("ParleyOutboundInDoubt", [series("parley_outbound_in_doubt_total", "0 1 1")], 2, {}, None),
    ("ParleyActorsRestarting", [series("parley_actor_restarts", "0+1x20", kind="tenant")], 16,
     {"kind": "tenant"}, None),
    ("ParleyActorsRestarting", [series("parley_actor_restarts", "4x20", kind="tenant")], 16, None,
     None),
    ("ParleyMailboxBacklog",
     [series("parley_actor_mailbox_depth_max", "6000x10", kind="db_writer")], 6,
     {"kind": "db_writer"}, "6000"),
    ("ParleyMailboxBacklog",
     [series("parley_actor_mailbox_depth_max", "6000 10 6000 10 6000 10 6000", kind="ingest")],
     6, None, None),
    ("ParleyDatabaseCommitSlow",
     [series("parley_db_commit_seconds_bucket", "0x20", le="0.25"),
      series("parley_db_commit_seconds_bucket", "0+60x20", le="1"),
      series("parley_db_commit_seconds_bucket", "0+60x20", le="+Inf")], 17, {}, None),
    ("ParleyDatabaseCommitErrors", [series("parley_db_commit_errors_total", "0+60x25")], 22, {},
     None),
    ("ParleyRateLimitRedisFailing",
     [series("parley_rate_limit_redis_errors_total", "0+5x25")], 22, {}, None),
]


def load_rules():
    with open(RULES, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def render(template, labels, value):
    """The two template forms the rules use: {{ $labels.x }} and {{ $value }}."""
    out = re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""),
                 template)
    out = re.sub(r"\{\{\s*\$value\s*\}\}", lambda m: value or "", out)
    if "{{" in out:
        raise AssertionError(f"template form not covered by this test: {template}")
    return out


def promtool(*args):
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)


class AlertRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(PROMTOOL, os.X_OK):
            raise AssertionError(f"{PROMTOOL} is missing: install the Debian package 'prometheus' "
                                 "(make deps / deploy/local/install-deps.sh)")
        cls.rules = load_rules()

    def test_promtool_accepts_the_rules(self):
        proc = promtool("check", "rules", RULES)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_every_alert_has_a_case_that_fires(self):
        firing = {alert for alert, _, _, labels, _ in CASES if labels is not None}
        self.assertEqual(sorted(set(self.rules) - firing), [])

    def test_alerts_fire_on_their_condition_only(self):
        tests = []
        for alert, input_series, minutes, labels, value in CASES:
            rule = self.rules[alert]
            expected = []
            if labels is not None:
                # The node's labels survive only where the expression keeps them: `up` and the
                # per-series expressions keep job, the `sum by (instance)` ones drop it.
                keeps_job = "by (" not in rule["expr"]
                all_labels = {"instance": NODE["instance"], **labels, **rule["labels"]}
                if keeps_job:
                    all_labels["job"] = NODE["job"]
                expected.append({
                    "exp_labels": all_labels,
                    "exp_annotations": {k: render(v, all_labels, value)
                                        for k, v in rule["annotations"].items()},
                })
            tests.append({
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": [{"eval_time": f"{minutes}m", "alertname": alert,
                                     "exp_alerts": expected}],
            })
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "parley-alerts.test.yml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump({"rule_files": [RULES], "evaluation_interval": "1m",
                                "tests": tests}, f)
            proc = promtool("test", "rules", path)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)

    def test_rules_read_only_metrics_parley_exports_and_documents(self):
        sources = ""
        for pattern in ("actors/**/*.cpp", "http/**/*.cpp", "persistence/**/*.cpp",
                        "runtime/**/*.cpp", "domain/**/*.cpp"):
            for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
                with open(path, encoding="utf-8") as f:
                    sources += f.read()
        with open(os.path.join(ROOT, "docs", "operations.md"), encoding="utf-8") as f:
            documented = set(re.findall(r"^\| `(parley_[a-z_]+)` \|", f.read(), re.M))
        for alert, rule in self.rules.items():
            for name in set(re.findall(r"\bparley_[a-z_]+", rule["expr"])):
                family = re.sub(r"_(bucket|sum|count)$", "", name)
                with self.subTest(alert=alert, metric=family):
                    self.assertIn(f'"{family}"', sources, "no such metric in the code")
                    self.assertIn(family, documented, "not in docs/operations.md's metrics table")


if __name__ == "__main__":
    unittest.main()
