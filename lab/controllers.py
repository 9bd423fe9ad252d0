"""Stand-in for the one kube-controller-manager loop the lab needs: DaemonSet status.

The toolchain builds no kube-controller-manager. Without it a DaemonSet's status is never written,
so anything that awaits a DaemonSet rollout (Helm --wait, the Kubernetes provider's await on a
DaemonSet or DaemonSetPatch) waits forever. The lab has no kubelet-registered nodes, so the real
DaemonSet controller would schedule nothing and write exactly this: observedGeneration =
generation and every count 0. That is all this does (listing DaemonSets on any ready master,
failing over while masters restart). It runs on the machine, outside the hosts, as
`kalab-controllers` (a client certificate in system:masters), which is how it appears in audit logs.

It lists once a second rather than holding a watch. An open watch is a long-lived request: the
apiserver it is on drains it for the whole termination grace period (30 s, kubeadm's default) at
every restart, so each lab restart cost ~35 s instead of 2-9 s. That drain is real and is proven
where it is the subject (tests/e2e/harness.py `LongWatches`, held open during the lifecycle's
rollout); a stand-in for a controller has no business adding it to every other test.

    python3 lab/controllers.py --server https://10.77.0.11:6443 --server ... --ca CA --cert C --key K
"""

from __future__ import annotations

import argparse
import json
import signal
import ssl
import sys
import time
import urllib.error
import urllib.request

EMPTY = {"currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0,
         "updatedNumberScheduled": 0, "numberAvailable": 0, "numberUnavailable": 0}


class Api:
    def __init__(self, servers: list[str], ca: str, cert: str, key: str) -> None:
        self.servers = servers
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.current = 0

    def open(self, method: str, path: str, body: object | None = None, timeout: float = 10):
        last: Exception | None = None
        for i in range(len(self.servers)):
            server = self.servers[(self.current + i) % len(self.servers)]
            req = urllib.request.Request(server + path, method=method,
                                         data=None if body is None else json.dumps(body).encode())
            req.add_header("Content-Type", "application/json")
            try:
                resp = urllib.request.urlopen(req, context=self.ctx, timeout=timeout)
                self.current = (self.current + i) % len(self.servers)
                return resp
            except urllib.error.HTTPError:
                raise
            except OSError as exc:  # this master is restarting: try the next one
                last = exc
        raise OSError(f"no apiserver answered: {last}")

    def json(self, method: str, path: str, body: object | None = None) -> dict:
        with self.open(method, path, body) as r:
            return json.loads(r.read())


def reconcile(api: Api, ds: dict) -> None:
    meta = ds["metadata"]
    gen = meta.get("generation", 0)
    status = ds.get("status") or {}
    if status.get("observedGeneration") == gen:
        return
    new = {**ds, "status": {**status, **EMPTY, "observedGeneration": gen}}
    try:
        api.json("PUT", f"/apis/apps/v1/namespaces/{meta['namespace']}/daemonsets/{meta['name']}/status", new)
        print(f"daemonset {meta['namespace']}/{meta['name']}: observedGeneration={gen}", flush=True)
    except urllib.error.HTTPError as exc:
        if exc.code not in (404, 409):  # gone or changed meanwhile: the watch brings the new one
            raise


def run(api: Api, interval: float) -> None:
    while True:
        try:
            for ds in api.json("GET", "/apis/apps/v1/daemonsets").get("items") or []:
                ds.setdefault("apiVersion", "apps/v1")
                ds.setdefault("kind", "DaemonSet")
                reconcile(api, ds)
        except (OSError, ValueError, urllib.error.HTTPError) as exc:
            print(f"listing failed: {exc}", flush=True)
        time.sleep(interval)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", action="append", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--interval", type=float, default=1.0, help="seconds between two listings")
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run(Api(a.server, a.ca, a.cert, a.key), a.interval)


if __name__ == "__main__":
    main()
