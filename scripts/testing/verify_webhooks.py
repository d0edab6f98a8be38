#!/usr/bin/env python3
"""Verifies the signatures of webhook requests logged by webhook_receiver.py.

Every logged request (or only those whose path starts with --path-prefix) is
checked with the official Standard Webhooks library (PyPI `standardwebhooks`),
with the headers and body exactly as received. A request passes if ANY of the
given --secret values verifies it.

The library accepts a webhook-timestamp within 5 minutes of "now"; this script
makes "now" the moment the receiver logged the request, so a log can be verified
later with the same meaning it had on arrival.

Prints `verified N requests`, or one line per failure and exits 1.
With --show, also prints one line per request: webhook-id, type, status, verified.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

try:
    import standardwebhooks.webhooks as sw
    from standardwebhooks.webhooks import Webhook
except ImportError:  # pragma: no cover - environment problem, said plainly
    sys.exit("verify_webhooks.py: the `standardwebhooks` package is missing; run scripts/install-deps")


class _FrozenClock:
    """Stands in for `datetime` inside standardwebhooks, frozen at one instant."""

    def __init__(self) -> None:
        self.instant = datetime.now(tz=timezone.utc)

    def __getattr__(self, name):
        return getattr(datetime, name)

    def now(self, tz=None):
        return self.instant if tz is None else self.instant.astimezone(tz)


_clock = _FrozenClock()
sw.datetime = _clock  # the library reads datetime.now() for its timestamp tolerance


def verify_one(record: dict, webhooks: list[Webhook]) -> str | None:
    """Returns None when some secret verifies the request, else why not."""
    _clock.instant = datetime.fromtimestamp(record["received_at_ms"] / 1000.0, tz=timezone.utc)
    errors = []
    for webhook in webhooks:
        try:
            webhook.verify(record["body"], record["headers"], json_parse=False)
            return None
        except Exception as error:  # noqa: BLE001 - any failure means "not verified"
            errors.append(f"{type(error).__name__}: {error}")
    return "; ".join(sorted(set(errors))) or "no secret given"


def signature_count(headers: dict) -> int:
    return sum(1 for part in headers.get("webhook-signature", "").split() if part.startswith("v1,"))


def event_type(body: str) -> str:
    try:
        return str(json.loads(body).get("type", "?"))
    except (ValueError, AttributeError):
        return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the receiver's --log file")
    parser.add_argument("--secret", action="append", required=True, help="whsec_… (repeatable)")
    parser.add_argument("--path-prefix", help="only requests whose path starts with this")
    parser.add_argument("--expect-signatures", type=int, help="each request must carry exactly N v1 signatures")
    parser.add_argument("--show", action="store_true", help="print one line per request")
    args = parser.parse_args(argv)

    try:
        webhooks = [Webhook(secret) for secret in args.secret]
    except Exception as error:  # noqa: BLE001
        print(f"invalid --secret: {type(error).__name__}: {error}", file=sys.stderr)
        return 2

    records = []
    with open(args.log, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                print(f"line {number}: not JSON (log cut mid-line?)", file=sys.stderr)
                return 2
    if args.path_prefix is not None:
        records = [r for r in records if r["path"].startswith(args.path_prefix)]

    failures = []
    if args.show:
        print(f"{'webhook-id':<40} {'type':<20} {'path':<24} {'status':>6}  verified")
    for record in records:
        problem = verify_one(record, webhooks)
        count = signature_count(record["headers"])
        if problem is None and args.expect_signatures is not None and count != args.expect_signatures:
            problem = f"{count} v1 signatures, expected {args.expect_signatures}"
        if args.show:
            print(f"{record['headers'].get('webhook-id', '-'):<40} {event_type(record['body']):<20} "
                  f"{record['path']:<24} {record['status']:>6}  {'yes' if problem is None else 'NO'}")
        if problem is not None:
            failures.append(f"{record['method']} {record['path']} webhook-id={record['headers'].get('webhook-id')!r}: "
                            f"{problem}")

    for failure in failures:
        print(f"FAILED {failure}")
    if failures:
        print(f"{len(failures)} of {len(records)} requests failed verification")
        return 1
    print(f"verified {len(records)} requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
