"""Benchmark the feature server: throughput, latency and memory of POST /v1/features.

    .venv/bin/python bench/bench_server.py [--seconds 10] [--memory-seconds 60]

It copies the example repo with fresh data, materializes it into its own redis-server
(tests/redis_server.py), starts `uvicorn serving.app:app` (one worker, uvloop + httptools,
metrics and the serving log on) on a free 127.0.0.1 port, and drives it with `wrk`
(`apt-get install wrk`, `brew install wrk`); without wrk, a bounded Python load generator
(httpx + asyncio) does, with higher client overhead. Only 127.0.0.1 is contacted.

Prints a markdown table: req/s and p50/p99 at concurrency 1 and 16 (1 entity row, 10
features), p50 of 100-entity requests, and the server's RSS at the start and end of a run of
`--memory-seconds` at concurrency 16.

`--baseline` also measures a bare Starlette endpoint doing one Redis GET; `--feast` also
measures Feast 0.67's feature server (`feast serve`, 1 worker, its worker recycling off) on the
same data, materialized into another database of the same redis-server, and prints ratios.
Feast runs only in its own venv, bench/.venv-feast (see bench/feast_peer.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurehub import FeatureStore  # noqa: E402
from featurehub.config import load_config  # noqa: E402
from tests.example_repo import copy_example_repo  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from recording import Transcript, add_arguments, finish  # noqa: E402

FEATURES = ["driver_stats:*", "customer_profile:*"]  # 5 + 5 features
SECTION = "## Feature server (`bench/bench_server.py`)"


def prepare(
    workdir: Path, redis_url: str, start: datetime, end: datetime
) -> tuple[Path, dict[str, str], list[int], list[int]]:
    repo = copy_example_repo(workdir / "repo", rows=20_000, end=end - timedelta(hours=1))
    env = {
        "FEATUREHUB_REGISTRY_URL": f"sqlite:///{workdir / 'registry.db'}",
        "FEATUREHUB_OFFLINE_ROOT": str(workdir / "offline"),
        "FEATUREHUB_ONLINE_STORE_URL": redis_url,
    }
    with FeatureStore(config=load_config(repo, env=env)) as store:
        store.apply()
        store.materialize(start, end)
    import pyarrow.parquet as pq

    drivers = pq.read_table(repo / "data" / "driver_hourly_stats.parquet", columns=["driver_id"])
    customers = pq.read_table(repo / "data" / "customer_profile.parquet", columns=["customer_id"])
    driver_ids = sorted(set(drivers.column(0).to_pylist()))[:100]
    customer_ids = sorted(set(customers.column(0).to_pylist()))[:100]
    return repo, env, driver_ids, customer_ids


def window() -> tuple[datetime, datetime]:
    """The materialized time range (featurehub and Feast load the same one)."""
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=40), now + timedelta(hours=1)


def body(driver_ids: list[int], customer_ids: list[int], rows: int) -> bytes:
    entities = {"driver_id": driver_ids[:rows], "customer_id": customer_ids[:rows]}
    return orjson.dumps({"features": FEATURES, "entities": entities})


def feast_body(driver_ids: list[int], customer_ids: list[int], rows: int) -> bytes:
    """The same request for Feast's POST /get-online-features (which takes no `view:*`)."""
    from feast_peer import EXAMPLE_VIEWS

    features = [f"{view}:{name}" for view, _, _, _, schema in EXAMPLE_VIEWS for name, _ in schema]
    entities = {"driver_id": driver_ids[:rows], "customer_id": customer_ids[:rows]}
    return orjson.dumps({"features": features, "entities": entities})


def baseline_app() -> object:
    """The reference: a bare Starlette endpoint doing one Redis GET (`--baseline`), to tell
    the server's own cost from what the machine allows."""
    import redis
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    client = redis.Redis.from_url(os.environ["BASELINE_REDIS_URL"])

    async def endpoint(request: Request) -> Response:
        orjson.loads(await request.body())
        return Response(
            orjson.dumps({"value": client.get("baseline")}), media_type="application/json"
        )

    return Starlette(routes=[Route("/v1/features", endpoint, methods=["POST"])])


def start_server(
    repo: Path, env: dict[str, str], port: int, target: str = "serving.app:app"
) -> subprocess.Popen[bytes]:
    extra = ["--factory", "--app-dir", "bench"] if target.endswith("baseline_app") else []
    command = [
        sys.executable, "-m", "uvicorn", target, *extra,
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    environment = {**os.environ, **env, "FEATUREHUB_REPO": str(repo)}
    process = subprocess.Popen(command, cwd=ROOT, env=environment)
    # uvicorn listens once the app's startup (registry read) is done
    return wait_ready(process, f"http://127.0.0.1:{port}/healthz", 30)


def start_feast(
    workdir: Path, data: Path, redis_url: str, port: int, start: datetime, end: datetime
) -> subprocess.Popen[bytes]:
    """`feast_peer.py serve` in the Feast venv: materialize into Redis db 1, then feast serve."""
    from feast_peer import VENV_PYTHON

    redis_db1 = redis_url.rsplit("/", 1)[0] + "/1"
    command = [
        str(VENV_PYTHON), str(ROOT / "bench" / "feast_peer.py"), "serve",
        "--repo", str(workdir / "feast_repo"), "--data", str(data), "--redis", redis_db1,
        "--port", str(port), "--start", start.isoformat(), "--end", end.isoformat(),
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    return wait_ready(process, f"http://127.0.0.1:{port}/health", 300)


def wait_ready(process: subprocess.Popen[bytes], health: str, seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(health, timeout=1)
            return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited on start ({health})")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"the server did not become ready in {seconds:.0f} s ({health})")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (robust to a busy
    machine, unlike req/s). Feast's server is gunicorn's master and its worker."""
    total = 0.0
    for process in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def measured(
    pid: int, url: str, payload: bytes, connections: int, seconds: float
) -> dict[str, float]:
    before = cpu_seconds(pid)
    result = load(url, payload, connections, seconds)
    result["cpu_us"] = (cpu_seconds(pid) - before) / (result["rps"] * seconds) * 1e6
    return result


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- load generators -----------------------------------------------------------------------


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    url: str, payload: bytes, connections: int, seconds: float, delay_ms: int = 0
) -> dict[str, float]:
    """wrk's req/s and p50/p99; with `delay_ms`, each connection waits that long after each
    answer before its next request (a paced load below saturation)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        escaped = payload.decode().replace("\\", "\\\\").replace('"', '\\"')
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        if delay_ms:
            script.write(f"function delay()\n  return {int(delay_ms)}\nend\n")
    threads = min(2, connections)
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency",
         "-s", script.name, url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script.name)
    if "Non-2xx" in output:
        raise RuntimeError(f"non-2xx answers:\n{output}")
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for percentile in ("50", "99"):
        match = re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.M)
        result[f"p{percentile}"] = _ms(match.group(1)) if match else float("nan")
    return result


async def _python_load(
    url: str, payload: bytes, connections: int, seconds: float, delay_ms: int = 0
) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline and len(latencies) < 2_000_000:
                started = time.perf_counter()
                answer = await client.post(url, content=payload, headers=headers)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 200:
                    raise RuntimeError(f"{answer.status_code}: {answer.text}")
                if delay_ms:
                    await asyncio.sleep(delay_ms / 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def load(
    url: str, payload: bytes, connections: int, seconds: float, delay_ms: int = 0
) -> dict[str, float]:
    if shutil.which("wrk"):
        return run_wrk(url, payload, connections, seconds, delay_ms)
    return asyncio.run(_python_load(url, payload, connections, seconds, delay_ms))


def peer(
    process: subprocess.Popen[bytes], url: str, one: bytes, hundred: bytes, seconds: float
) -> dict[str, dict[str, float]]:
    """c=1, c=16 and 100-entity figures of another server, then stop it."""
    try:
        load(url, one, 16, 2)  # warm-up
        return {
            "c1": measured(process.pid, url, one, 1, seconds),
            "c16": measured(process.pid, url, one, 16, seconds),
            "big": measured(process.pid, url, hundred, 1, seconds),
        }
    finally:
        process.terminate()
        process.wait(30)


def check_feast_answer(url: str, payload: bytes) -> None:
    """Feast answers the same values, not nulls (a wrong repo would be fast and useless)."""
    headers = {"content-type": "application/json"}
    answer = httpx.post(url, content=payload, headers=headers, timeout=10).json()
    statuses = [s for result in answer.get("results", ()) for s in result["statuses"]]
    if not statuses or statuses.count("PRESENT") != len(statuses):
        raise RuntimeError(f"Feast did not answer every value: {answer}")


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--memory-seconds", type=float, default=60.0)
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also measure a bare Starlette endpoint doing one Redis GET, same conditions",
    )
    parser.add_argument(
        "--feast",
        action="store_true",
        help="also measure Feast 0.67's feature server on the same data (bench/.venv-feast)",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.feast:
        from feast_peer import check_venv

        check_venv()
    if not shutil.which("wrk"):
        print(
            "wrk not found: using the Python load generator, whose own overhead lowers the "
            "figures; install wrk (`apt-get install wrk`) for the reference numbers",
            file=sys.stderr,
        )
    start, end = window()
    with (
        tempfile.TemporaryDirectory(prefix="featurehub-bench-server-") as tmp,
        RedisServer() as redis,
    ):
        repo, env, drivers, customers = prepare(Path(tmp), redis.url, start, end)
        port = free_port()
        server = start_server(repo, env, port)
        url = f"http://127.0.0.1:{port}/v1/features"
        one, hundred = body(drivers, customers, 1), body(drivers, customers, 100)
        rows: list[tuple[str, Any]] = []
        try:
            load(url, one, 16, 3)  # warm-up
            c1 = measured(server.pid, url, one, 1, args.seconds)
            c16 = measured(server.pid, url, one, 16, args.seconds)
            big = measured(server.pid, url, hundred, 1, args.seconds)
            rss_start = rss_mb(server.pid)
            memory = load(url, one, 16, args.memory_seconds)
            rss_end = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        rows = [
            ("req/s, 1 entity, c=1", f"{c1['rps']:,.0f}"),
            ("p50 / p99 ms, c=1", f"{c1['p50']:.2f} / {c1['p99']:.2f}"),
            ("req/s, 1 entity, c=16", f"{c16['rps']:,.0f}"),
            ("p50 / p99 ms, c=16", f"{c16['p50']:.2f} / {c16['p99']:.2f}"),
            ("server CPU us per request, 1 entity, c=16", f"{c16['cpu_us']:.0f}"),
            ("100 entities: req/s, p50 / p99 ms, c=1",
             f"{big['rps']:,.0f}, {big['p50']:.2f} / {big['p99']:.2f}"),
            ("server CPU us per request, 100 entities", f"{big['cpu_us']:.0f}"),
            (f"RSS MB start -> end of {args.memory_seconds:.0f} s at c=16",
             f"{rss_start:.1f} -> {rss_end:.1f} ({memory['rps']:,.0f} req/s)"),
        ]  # fmt: skip
        if args.baseline:
            env = {**env, "BASELINE_REDIS_URL": redis.url}
            port = free_port()
            bare = peer(
                start_server(repo, env, port, "bench_server:baseline_app"),
                f"http://127.0.0.1:{port}/v1/features",
                one,
                one,
                args.seconds,
            )
            b1, b16 = bare["c1"], bare["c16"]
            rows += [
                ("baseline (Starlette + 1 Redis GET): req/s c=1, c=16",
                 f"{b1['rps']:,.0f}, {b16['rps']:,.0f}"),
                ("baseline: p50 / p99 ms c=1", f"{b1['p50']:.2f} / {b1['p99']:.2f}"),
                ("baseline: CPU us per request, c=16", f"{b16['cpu_us']:.0f}"),
                ("featurehub / baseline: req/s c=16, CPU us per request c=16",
                 f"{ratio(c16['rps'], b16['rps'])}, {ratio(c16['cpu_us'], b16['cpu_us'])}"),
            ]  # fmt: skip
        if args.feast:
            port = free_port()
            feast_url = f"http://127.0.0.1:{port}/get-online-features"
            process = start_feast(Path(tmp), repo / "data", redis.url, port, start, end)
            feast_one = feast_body(drivers, customers, 1)
            try:
                check_feast_answer(feast_url, feast_one)
            except Exception:
                process.terminate()
                raise
            hundred_feast = feast_body(drivers, customers, 100)
            peer_figures = peer(process, feast_url, feast_one, hundred_feast, args.seconds)
            f1, f16, fbig = peer_figures["c1"], peer_figures["c16"], peer_figures["big"]
            rows += [
                ("Feast 0.67 (1 worker, no recycling): req/s c=1, c=16",
                 f"{f1['rps']:,.0f}, {f16['rps']:,.0f}"),
                ("Feast: p50 / p99 ms c=1, c=16",
                 f"{f1['p50']:.2f} / {f1['p99']:.2f}, {f16['p50']:.2f} / {f16['p99']:.2f}"),
                ("Feast: 100 entities p50 / p99 ms c=1", f"{fbig['p50']:.2f} / {fbig['p99']:.2f}"),
                ("Feast: CPU us per request c=16, 100 entities",
                 f"{f16['cpu_us']:.0f}, {fbig['cpu_us']:.0f}"),
                ("featurehub / Feast: req/s c=16", ratio(c16["rps"], f16["rps"])),
                ("featurehub / Feast: p99 c=1, p50 100 entities",
                 f"{ratio(c1['p99'], f1['p99'])}, {ratio(big['p50'], fbig['p50'])}"),
                ("featurehub / Feast: CPU us per request c=16, 100 entities",
                 f"{ratio(c16['cpu_us'], f16['cpu_us'])}, "
                 f"{ratio(big['cpu_us'], fbig['cpu_us'])}"),
            ]  # fmt: skip
        loadavg = os.getloadavg()[0]
        tool = "wrk" if shutil.which("wrk") else "python (httpx)"
        print()
        out = Transcript()
        out(f"feature server, 1 uvicorn worker (uvloop, httptools), Redis on loopback, {tool}")
        out.gap()
        out(f"10 features ({', '.join(FEATURES)}), metrics and serving log on")
        out.gap()
        out(f"{os.cpu_count()} CPUs, load average {loadavg:.1f} at the end\n")
        out("| measure | value |\n| --- | --- |")
        for name, value in rows:
            out(f"| {name} | {value} |")
    finish(args.record, "bench_server", SECTION, out.lines, argv)


if __name__ == "__main__":
    main()
