#!/usr/bin/env python3
"""A minimal webhook relay built on PgQueuer, the bench's peer (phase peer).

    peer_pgqueuer.py enqueue --name peerw1 --events 50000 --endpoints 1 --base-url http://127.0.0.1:PORT
    peer_pgqueuer.py run [--concurrency 100]

PgQueuer's own queue table holds one job per (event, endpoint), enqueued ahead like
W1's backlog: the job is the message (webhook-id `{name}-{i}` for i = 1..events,
URL `{base-url}/{name}/{j}` for j = 0..endpoints-1, type, timestamp, data). `run`
dequeues in PgQueuer's batches and POSTs each job as the relay does: Standard
Webhooks headers (webhook-id, webhook-timestamp, webhook-signature `v1,` + base64
HMAC-SHA256 of `id.timestamp.body` under the whsec_ secret in PEER_WEBHOOK_SECRET)
and the body {"type","timestamp","data"}. A non-2xx answer fails the job. It runs
in PgQueuer's drain mode and stops on SIGTERM.

Settings: PgQueuer's defaults (batch size 10, 30 s heartbeat, uvloop as its CLI
runs), with at most --concurrency jobs in flight (default 100): the relay's own
default OUTBOX_MAX_IN_FLIGHT, and aiohttp's default connection limit, so both
relays keep as many requests open. PgQueuer's default is no limit at all, which
would mark the whole backlog picked and heartbeat every job of it.
The database comes from the PG* variables.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import signal
import time

import aiohttp
import asyncpg
import uvloop
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.qm import QueueManager
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "webhook"
ENQUEUE_CHUNK = 5_000


def event_data(g: int) -> dict:
    """The same ~300-byte event as the bench's PAYLOAD_SQL."""
    return {"order_id": g, "customer_id": "cus_" + hashlib.md5(str(g).encode()).hexdigest(), "status": "paid",
            "currency": "EUR", "amount_cents": 1999 + g % 1000,
            "items": [{"sku": f"SKU-{g % 97}", "quantity": 1 + g % 3, "price_cents": 999},
                      {"sku": f"SKU-{g % 89}", "quantity": 1, "price_cents": 1000}],
            "note": "x" * 40}


def signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def enqueue(name: str, events: int, endpoints: int, base_url: str) -> None:
    connection = await asyncpg.connect()
    queries = Queries(AsyncpgDriver(connection))
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    jobs = []
    for i in range(1, events + 1):
        data = event_data(i)
        for j in range(endpoints):
            jobs.append(json.dumps({"id": f"{name}-{i}", "url": f"{base_url}/{name}/{j}", "type": f"bench.{name}",
                                    "timestamp": timestamp, "data": data}).encode())
    for k in range(0, len(jobs), ENQUEUE_CHUNK):
        chunk = jobs[k:k + ENQUEUE_CHUNK]
        await queries.enqueue([ENTRYPOINT] * len(chunk), chunk, [0] * len(chunk))
    await connection.close()


async def run(concurrency: int) -> None:
    key = base64.b64decode(os.environ["PEER_WEBHOOK_SECRET"].removeprefix("whsec_"))
    connection = await asyncpg.connect()
    qm = QueueManager(Queries(AsyncpgDriver(connection)))
    async with aiohttp.ClientSession() as http:

        @qm.entrypoint(ENTRYPOINT)
        async def deliver(job: Job) -> None:
            message = json.loads(job.payload)
            body = json.dumps({"type": message["type"], "timestamp": message["timestamp"], "data": message["data"]},
                              separators=(",", ":")).encode()
            timestamp = str(int(time.time()))
            headers = {"content-type": "application/json", "webhook-id": message["id"],
                       "webhook-timestamp": timestamp,
                       "webhook-signature": signature(key, message["id"], timestamp, body)}
            async with http.post(message["url"], data=body, headers=headers) as response:
                if response.status >= 300:
                    raise RuntimeError(f"{message['url']} answered {response.status}")

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, qm.shutdown.set)
        await qm.run(mode=QueueExecutionMode.drain, max_concurrent_tasks=concurrency)
    await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("enqueue")
    add.add_argument("--name", required=True)
    add.add_argument("--events", type=int, required=True)
    add.add_argument("--endpoints", type=int, default=1)
    add.add_argument("--base-url", required=True)
    go = commands.add_parser("run")
    go.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args()
    if args.command == "enqueue":
        uvloop.run(enqueue(args.name, args.events, args.endpoints, args.base_url))
    else:
        uvloop.run(run(args.concurrency))


if __name__ == "__main__":
    main()
