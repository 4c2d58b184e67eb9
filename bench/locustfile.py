"""Locust load test for shardkv (Debian 12's python3-locust, Locust 2.12).

Seed 001's load test (POST /put, GET /get?key=), seed 000's POST /store, and
the canonical routes: PUT/GET /v1/kv/{key} and POST /v1/counters/{name}/incr.
Every read checks that it got the value this simulated user wrote, so a run
with zero failures is also a read-your-writes check.

Headless, e.g. against `make run` (the command the tests run, for 5 s):

    locust -f bench/locustfile.py --headless -u 5 -r 5 -t 5s --host http://127.0.0.1:8000

More load: -u 200 -r 20 -t 1m, and BENCH_WAIT_MIN=0 BENCH_WAIT_MAX=0 for no
think time (seed 001 waited 1-3 s between requests).  Without --headless,
Locust serves its web UI on http://localhost:8089.  Locust exits 1 when any
request failed.

Environment:
  BENCH_WAIT_MIN, BENCH_WAIT_MAX   think time between tasks, seconds [0.05, 0.2]
  BENCH_KEYS                       keys per simulated user [200]
  BENCH_VALUE_BYTES                value size [64]
"""
import os
import random
import string
import uuid

from locust import HttpUser, between, task

WAIT_MIN = float(os.environ.get("BENCH_WAIT_MIN", "0.05"))
WAIT_MAX = float(os.environ.get("BENCH_WAIT_MAX", "0.2"))
KEYS = max(1, int(os.environ.get("BENCH_KEYS", "200")))
VALUE_BYTES = max(1, int(os.environ.get("BENCH_VALUE_BYTES", "64")))


def body(r):
    """The JSON object of a response, or {} when it is not one."""
    try:
        doc = r.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def random_value():
    return "".join(random.choices(string.ascii_letters + string.digits, k=VALUE_BYTES))


class ShardkvUser(HttpUser):
    wait_time = between(WAIT_MIN, WAIT_MAX)

    def on_start(self):
        # Keys of this simulated user only: its reads can check their values.
        self.prefix = "locust-" + uuid.uuid4().hex[:12]
        self.seed_values = {}   # /put key -> value
        self.kv_values = {}     # /v1/kv key -> value
        self.counter = f"{self.prefix}-hits"
        self.counter_value = 0
        self.put_seed()
        self.put_kv()

    # ---- seed 001: POST /put, GET /get?key= -------------------------------------------------

    @task(3)
    def put_seed(self):
        key = f"{self.prefix}:seed:{random.randrange(KEYS)}"
        value = random_value()
        with self.client.post("/put", json={"key": key, "value": value}, name="/put",
                              catch_response=True) as r:
            if r.status_code == 200 and body(r).get("status") == "ok":
                self.seed_values[key] = value
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200]}")

    @task(6)
    def get_seed(self):
        if not self.seed_values:
            return
        key = random.choice(list(self.seed_values))
        with self.client.get("/get", params={"key": key}, name="/get?key=[key]", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif body(r).get("value") != self.seed_values[key]:
                r.failure(f"stale or wrong value for {key}: {r.text[:200]}")
            else:
                r.success()

    # ---- seed 000: POST /store --------------------------------------------------------------

    @task(2)
    def store(self):
        user_id = random.randrange(1_000_000)
        with self.client.post("/store", json={"userId": user_id, "data": random_value()}, name="/store",
                              catch_response=True) as r:
            if r.status_code == 200 and str(body(r).get("message")).startswith("Data stored in shard "):
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200]}")

    # ---- canonical: PUT/GET /v1/kv/{key} ----------------------------------------------------

    @task(3)
    def put_kv(self):
        key = f"{self.prefix}:kv:{random.randrange(KEYS)}"
        value = random_value()
        with self.client.put(f"/v1/kv/{key}", data=value.encode(), name="/v1/kv/[key] PUT",
                             catch_response=True) as r:
            if r.status_code in (200, 201) and "version" in body(r):
                self.kv_values[key] = value
                r.success()
            else:
                r.failure(f"{r.status_code}: {r.text[:200]}")

    @task(6)
    def get_kv(self):
        if not self.kv_values:
            return
        key = random.choice(list(self.kv_values))
        with self.client.get(f"/v1/kv/{key}", name="/v1/kv/[key] GET", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif r.text != self.kv_values[key]:
                r.failure(f"stale or wrong value for {key}: {r.text[:200]!r}")
            elif not r.headers.get("ETag"):
                r.failure("no ETag")
            else:
                r.success()

    # ---- canonical: sharded counters ---------------------------------------------------------

    @task(2)
    def incr_counter(self):
        with self.client.post(f"/v1/counters/{self.counter}/incr", name="/v1/counters/[name]/incr",
                              catch_response=True) as r:
            value = body(r).get("value")
            if r.status_code not in (200, 201):
                r.failure(f"{r.status_code}: {r.text[:200]}")
            elif value != self.counter_value + 1:
                # Only this simulated user increments its counter: exact totals.
                r.failure(f"counter total {value}, expected {self.counter_value + 1}")
                if isinstance(value, int):
                    self.counter_value = value   # report a lost or doubled increment once
            else:
                self.counter_value = value
                r.success()
