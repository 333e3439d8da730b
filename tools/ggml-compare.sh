#!/usr/bin/env bash
# ggml's quantized dot products against ours, side by side, in one run and in
# one unit: TSC ticks per 32 values (the time-stamp counter read with rdtscp
# around one call; minimum and mean over 20,000 calls after 5 warm-up calls).
#
#   tools/ggml-compare.sh
#
# ggml: its own benchmark, tests/test-quantize-perf.cpp (`--op vec_dot_q`),
# from the llama.cpp that the llama-cpp-python sdist vendors, pinned below by
# version and SHA-256 and fetched with `pip download`; built with CMake against
# that ggml alone (GGML_NATIVE=ON: -march=native, Release). Ours: `cargo bench
# -p latte-kernels --bench minrep -- tsc`, the same measurement of every SIMD
# path this CPU has (the runtime picks the fastest). Both run at the same sizes
# (4096, 16384 and 65536 values), alternately, GGML_COMPARE_ROUNDS times; the
# table gives the minimum over the rounds and the raw output follows it.
#
# Everything of ggml's lives in a scratch directory outside the repository
# (mktemp -d, removed at the end); nothing is written into the repository
# except cargo's target/. Needs x86-64, python3 with pip (and venv if there is
# no cmake on PATH: then CMake comes from PyPI into the scratch directory), a C
# and C++ compiler, make, and cargo. Downloads about 80 MB.
#
# Environment:
#   GGML_COMPARE_SCRATCH=DIR  use DIR instead (kept, and reused by the next run:
#                             the download and the build are not repeated)
#   GGML_COMPARE_ROUNDS=N     rounds of (ggml, ours), default 2
#   GGML_COMPARE_CPU=N        pin both to CPU N (taskset; default: the last CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

# The pinned source: llama-cpp-python's sdist vendors llama.cpp (with ggml)
# at commit 0c1e57098bba43ac29e6e3b677cdceebdd22334f (2026-10-01).
llama_cpp_python=0.3.36
sdist_sha256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
cmake_from_pypi=3.31.10
sizes=(4096 16384 65536)
iterations=20000
rounds=${GGML_COMPARE_ROUNDS:-2}

die() { echo "ggml-compare: $*" >&2; exit 1; }
say() { printf '\n== %s\n' "$*" >&2; }

[ "$(uname -m)" = x86_64 ] || die "x86-64 only: both tools read the time-stamp counter (rdtscp)"
case $rounds in '' | *[!0-9]* | 0) die "GGML_COMPARE_ROUNDS must be a whole number >= 1" ;; esac
for tool in python3 cargo cc c++ make; do
  command -v "$tool" >/dev/null || die "needs $tool on PATH"
done

if [ -n "${GGML_COMPARE_SCRATCH:-}" ]; then
  mkdir -p "$GGML_COMPARE_SCRATCH"
  scratch=$(cd "$GGML_COMPARE_SCRATCH" && pwd)
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/ggml-compare.XXXXXX")
  trap 'rm -rf "$scratch"' EXIT
fi
case $scratch/ in "$repo"/*) die "the scratch directory $scratch is inside the repository" ;; esac
echo "scratch directory: $scratch" >&2

say "ggml: llama-cpp-python $llama_cpp_python sdist from PyPI"
sdist=$scratch/llama_cpp_python-$llama_cpp_python.tar.gz
if [ ! -f "$sdist" ]; then
  # --no-binary for this package only: the sdist is wanted, but pip prepares
  # its metadata with build tools it may take as wheels.
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary llama-cpp-python "llama-cpp-python==$llama_cpp_python" -d "$scratch"
fi
echo "$sdist_sha256  $sdist" | sha256sum -c --quiet - || die "$sdist: not the pinned file (SHA-256)"
src=$scratch/llama_cpp_python-$llama_cpp_python
if [ ! -d "$src" ]; then
  tar -xzf "$sdist" -C "$scratch"
fi
llama=$src/vendor/llama.cpp
for f in tests/test-quantize-perf.cpp ggml/CMakeLists.txt ggml/src/ggml-cpu/arch/x86/quants.c; do
  [ -f "$llama/$f" ] || die "the sdist lacks vendor/llama.cpp/$f"
done
commit=$(cat "$src/.git/modules/vendor/llama.cpp/HEAD" 2>/dev/null || echo unknown)

say "ggml: build test-quantize-perf (CMake, Release, GGML_NATIVE=ON)"
if command -v cmake >/dev/null; then
  cmake=cmake
else
  cmake=$scratch/venv/bin/cmake
  if [ ! -x "$cmake" ]; then
    echo "no cmake on PATH: cmake==$cmake_from_pypi from PyPI into $scratch/venv" >&2
    python3 -m venv "$scratch/venv"
    "$scratch/venv/bin/pip" install --quiet --disable-pip-version-check "cmake==$cmake_from_pypi"
  fi
fi
mkdir -p "$scratch/qperf"
cat >"$scratch/qperf/CMakeLists.txt" <<'EOF'
# ggml's test-quantize-perf against that ggml alone (llama.cpp's own test
# target would also build libllama and its common library, which it does not
# use).
cmake_minimum_required(VERSION 3.14)
project(ggml_quantize_perf C CXX)
add_subdirectory(${LLAMA_CPP}/ggml ggml)
add_executable(test-quantize-perf ${LLAMA_CPP}/tests/test-quantize-perf.cpp)
target_link_libraries(test-quantize-perf PRIVATE ggml)
EOF
"$cmake" -S "$scratch/qperf" -B "$scratch/build" -DLLAMA_CPP="$llama" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF >"$scratch/cmake-configure.log" 2>&1 ||
  { tail -n 40 "$scratch/cmake-configure.log" >&2; die "CMake could not configure ggml"; }
"$cmake" --build "$scratch/build" --target test-quantize-perf -j "$(nproc)" >"$scratch/cmake-build.log" 2>&1 ||
  { tail -n 40 "$scratch/cmake-build.log" >&2; die "ggml did not build"; }
qperf=$scratch/build/test-quantize-perf
[ -x "$qperf" ] || die "no $qperf after the build"
ggml_version=$(sed -n 's/^-- ggml version: *//p' "$scratch/cmake-configure.log")

say "ours: build minrep (cargo bench, release)"
# The bench binary is run directly, so that the rounds do not wait for cargo.
minrep=$(cargo bench --locked -p latte-kernels --bench minrep --no-run --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "minrep" and m.get("executable"):
        print(m["executable"])')
[ -x "$minrep" ] || die "cargo did not report the minrep bench binary"

pin=()
if command -v taskset >/dev/null; then
  cpu=${GGML_COMPARE_CPU:-$(($(nproc) - 1))}
  pin=(taskset -c "$cpu")
fi
ggml_args=(--op vec_dot_q --type q8_0 --type q4_0 -i "$iterations")
for n in "${sizes[@]}"; do ggml_args+=(--size "$n"); done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq 1 "$rounds"); do
  say "round $r of $rounds: ggml, then ours${pin:+ (${pin[*]})}"
  "${pin[@]}" "$qperf" "${ggml_args[@]}" >"$scratch/ggml.$r.txt"
  "${pin[@]}" "$minrep" --bench tsc >"$scratch/latte.$r.txt"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

export scratch rounds commit llama_cpp_python ggml_version load_before load_after
export pin_text="${pin[*]:-not pinned}"
export ggml_command="${pin[*]:+${pin[*]} }test-quantize-perf ${ggml_args[*]}"
python3 - <<'EOF'
import os, re, subprocess

scratch, rounds = os.environ["scratch"], int(os.environ["rounds"])

def ggml(text):
    """{(type, values): (min, mean)} from test-quantize-perf's output."""
    out, ty, n, mn = {}, None, None, None
    for line in text.splitlines():
        if re.fullmatch(r"[a-z0-9_]+", line):
            ty = line
        elif m := re.fullmatch(r"\s+(\d+) values \(.*\)", line):
            n = int(m[1])
        elif m := re.match(r"\s+min cycles/32 vals\s*:\s*([\d.]+)", line):
            mn = float(m[1])
        elif m := re.match(r"\s+avg cycles/32 vals\s*:\s*([\d.]+)", line):
            out[(ty, n)] = (mn, float(m[1]))
    return out

def latte(text):
    """{(type, values, path): (min, mean)} from `minrep -- tsc`."""
    out = {}
    for m in re.finditer(r"tsc (\w+) (\S+)\s+(\d+) values: min ([\d.]+)\s+mean ([\d.]+)", text):
        out[(m[1], int(m[3]), m[2])] = (float(m[4]), float(m[5]))
    return out

def best(runs):
    """Minimum over the rounds (and the mean of the round that had it)."""
    merged = {}
    for run in runs:
        for k, v in run.items():
            if k not in merged or v[0] < merged[k][0]:
                merged[k] = v
    return merged

raw = {t: [open(f"{scratch}/{t}.{r}.txt").read() for r in range(1, rounds + 1)] for t in ("ggml", "latte")}
g = best(ggml(t) for t in raw["ggml"])
l = best(latte(t) for t in raw["latte"])
paths = sorted({k[2] for k in l})
if not g or not l:
    raise SystemExit("ggml-compare: could not read the results (raw output in the scratch directory)")

def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"

model = sh("lscpu | sed -n 's/^Model name: *//p'")
family = sh("lscpu | sed -n 's/^CPU family: *//p'")
cpu_model = sh("lscpu | sed -n 's/^Model: *//p'")
flags = sh("grep -m1 '^flags' /proc/cpuinfo").split()
simd = " ".join(f for f in ("avx2", "fma", "f16c", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni") if f in flags)
print(f"machine     {model} (family {family}, model {cpu_model}), {sh('nproc')} CPUs; {simd}")
print(f"load        {os.environ['load_before']} before, {os.environ['load_after']} after (1, 5, 15 min)")
print(f"ggml        version {os.environ['ggml_version'] or '?'} from llama-cpp-python {os.environ['llama_cpp_python']}'s sdist (vendored llama.cpp {os.environ['commit']}); {sh('c++ --version | head -n1')}")
print(f"ours        {sh('rustc --version')}, release (SIMD path chosen at run time)")
print(f"commands    {os.environ['ggml_command']}")
print(f"            cargo bench -p latte-kernels --bench minrep -- tsc   ({os.environ['pin_text']}; {rounds} rounds, minimum)")
print("unit        TSC ticks per 32 values, min / mean over 20,000 calls")
busy = max(float(os.environ["load_before"].split()[0]), float(os.environ["load_after"].split()[0]))
ncpu = os.cpu_count() or 1
if busy > 0.5 * ncpu:
    print(f"note        load average {busy:.2f} on {ncpu} CPUs: other work shared the CPUs, so the minima are likely high and the ratios uncertain")
print()
head = ["values", "type", "ggml"] + [f"latte {p}" for p in paths] + ["ggml / fastest latte (min)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for n in sorted({k[1] for k in g}):
    for ty in ("q8_0", "q4_0"):
        if (ty, n) not in g:
            continue
        gm = g[(ty, n)]
        row = [str(n), ty, f"{gm[0]:.2f} / {gm[1]:.2f}"]
        mins = []
        for p in paths:
            v = l.get((ty, n, p))
            row.append(f"{v[0]:.2f} / {v[1]:.2f}" if v else "-")
            if v:
                mins.append(v[0])
        row.append(f"{gm[0] / min(mins):.2f}x" if mins and min(mins) > 0 else "-")
        print("| " + " | ".join(row) + " |")
print()
for t in ("ggml", "latte"):
    for r, text in enumerate(raw[t], 1):
        print(f"---- raw: {t}, round {r}")
        print(text.rstrip())
EOF
