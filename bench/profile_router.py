"""Where the router's CPU goes for online payments: starts the local mesh, offers online
payments at a fixed rate (open loop, as bench_mesh.py does) and samples the router with py-spy
(a dev dependency; it reads the process from outside, so the figures are the router's own).

    .venv/bin/python bench/profile_router.py [--rate 500] [--seconds 20] [--top 25] [--native] [--flame out.svg]

Prints the router's CPU per payment, then the functions that held the CPU the most: by their
own time (self) and with what they called (total), as shares of the router's samples.
"""

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_mesh import ENV, Bench, cpu_seconds  # noqa: E402
from paymesh_tools.dev_pki import ensure_dev_pki  # noqa: E402
from paymesh_tools.launch import START_TIMEOUT, start_mesh, stop_mesh  # noqa: E402
from paymesh_tools.textui import format_table  # noqa: E402


def top_functions(collapsed: str, top: int) -> tuple[int, list[tuple[str, int, int]]]:
    """From py-spy's raw (collapsed) stacks: (samples, [(function, self, total)]) by self samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first is the thread
        if not frames:
            continue
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    return samples, [(name, n, total[name]) for name, n in own.most_common(top)]


async def main(args) -> None:
    home = Path(tempfile.mkdtemp(prefix="paymesh-profile-"))
    ensure_dev_pki(home / "pki")
    mesh = start_mesh(home, home / "pki", only=None, fixed_ports=False, timeout=START_TIMEOUT, **ENV)
    try:
        bench = Bench(mesh, home / "pki")
        await asyncio.sleep(1)
        await bench.online(args.rate, 2)  # warm: caches, connections
        router = mesh["payment-router"].process.pid
        raw = home / "router.txt"
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(router),
                                "--format", "raw", "--output", str(raw), "--duration", str(int(args.seconds)),
                                "--rate", "250", *(["--native"] if args.native else ["--nonblocking"])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        before = cpu_seconds(mesh)["payment-router"]
        rate, latencies = await bench.online(args.rate, args.seconds)
        used = cpu_seconds(mesh)["payment-router"] - before
        spy.wait(timeout=args.seconds + 30)
        if args.flame:
            subprocess.run([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(router),
                            "--output", args.flame, "--duration", "5", "--nonblocking"], check=False,
                           capture_output=True)
        payments = len(latencies)
        print(f"online at {rate:,.0f}/s for {args.seconds:.0f} s: the router spent {used * 1000 / payments:.3f} ms "
              f"of CPU per payment ({time.strftime('%H:%M:%S')})")
        samples, rows = top_functions(raw.read_text() if raw.exists() else "", args.top)
        print(f"\n{samples:,} samples of the router; the functions holding the CPU most (self), and with "
              "what they call (total)")
        print(format_table([("FUNCTION", "SELF %", "TOTAL %"),
                            *((name[:110], f"{100 * own / samples:.1f}", f"{100 * tot / samples:.1f}")
                              for name, own, tot in rows)]))
    finally:
        stop_mesh(mesh)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--native", action="store_true",
                        help="also sample C frames (grpc's core, protobuf, OpenSSL): where Python's frames end")
    parser.add_argument("--flame", help="also write a 5 s flame graph (SVG) of the router here")
    asyncio.run(main(parser.parse_args()))
