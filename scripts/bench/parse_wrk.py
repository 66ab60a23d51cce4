"""Reads wrk --latency output on stdin; prints "ops_per_s p50_us p99_us requests non2xx"."""
import re
import sys

UNITS = {"us": 1.0, "ms": 1000.0, "s": 1e6}


def micros(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * UNITS[m.group(2)]


out = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50 = micros(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
p99 = micros(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
requests = int(re.search(r"(\d+) requests in", out).group(1))
m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
errors = int(m.group(1)) if m else 0
m = re.search(r"Socket errors:.*", out)
if m:
    print("wrk: " + m.group(0), file=sys.stderr)
print(f"{rps:.0f} {p50:.0f} {p99:.0f} {requests} {errors}")
