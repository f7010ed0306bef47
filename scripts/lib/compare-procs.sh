# Sourced by scripts/compare: the processes it starts (JACK servers, clients, izyrt) and
# stopping every one of them however the run ends, with the small readers of their logs
# and endpoints the measuring needs. Reads the run's settings (`keep`, `rate`, ...) and
# keeps the state below for the script.

tmp=
logs= # this round's logs, under $tmp
clients=() # jack clients (jack_iodelay, jacktrip, izyrt): stopped first
servers=() # jackd pids
server_names=()
sleeper=
failed_phase=

# True while pid $1 runs (a zombie does not count).
alive() {
    local s
    s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    [[ $s != Z* ]]
}

# SIGTERM, up to 5 s of grace, then SIGKILL; reaps them.
stop_pids() {
    local p i any
    [ "$#" -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        any=0
        for p in "$@"; do alive "$p" && any=1; done
        [ "$any" = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# Stops everything started so far: clients, then servers; removes a killed server's
# leftover sockets.
stop_all() {
    if [ "${#clients[@]}" -gt 0 ]; then
        stop_pids "${clients[@]}"
        clients=()
        # Let the servers notice the clients are gone: a jackd told to stop while it still
        # has a dead client writes to that client's socket, dies of SIGPIPE and leaves its
        # entry in jack's server registry (8 entries machine-wide; then no jackd starts).
        [ "${#servers[@]}" -gt 0 ] && sleep 0.5
    fi
    stop_pids "${servers[@]}"
    servers=()
    local n
    # jackd2 leaves its clients' semaphores behind even on a clean exit, and a killed
    # server its sockets: remove ours (they carry our server names).
    for n in "${server_names[@]}"; do
        rm -f /dev/shm/jack_"${n}"_* /dev/shm/jack_sem.*_"${n}"_* 2>/dev/null || true
    done
    server_names=()
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null
    stop_all
    if [ -n "$tmp" ] && [ -d "$tmp" ]; then
        if [ "$keep" = 1 ]; then
            echo "compare: logs kept in $tmp" >&2
        elif [ "$status" = 1 ]; then
            # A figure failed: keep the logs the messages name, not the recordings.
            find "$tmp" -name '*.wav' -delete
            echo "compare: logs kept in $tmp (IZYRT_COMPARE_KEEP=1 keeps the recordings too)" >&2
        else
            rm -rf "$tmp"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "compare: interrupted; stopping what it started" >&2; exit 130' INT
trap 'echo "compare: terminated; stopping what it started" >&2; exit 143' TERM

# Sleeps, interruptibly (a trapped signal ends `wait` at once).
pause() {
    sleep "$1" &
    sleeper=$!
    wait "$sleeper" || true
    sleeper=
}

# Runs the JACK client command "${@:3}" against server $2 in the background, output to
# log $1; its pid in $last_pid. `setsid` and `env` exec the command, so the pid is the
# client's own (a shell function here would put a subshell between them, and kill only
# that). Its own session keeps a Ctrl-C on the terminal from reaching it: the script
# stops everything itself, clients before servers.
last_pid=
start_client() {
    local log=$1 server=$2
    shift 2
    setsid env JACK_DEFAULT_SERVER="$server" JACK_NO_START_SERVER=1 "$@" >"$log" 2>&1 &
    last_pid=$!
    clients+=("$last_pid")
}

# Runs a JACK client command against server $1, in the foreground.
on() {
    local server=$1
    shift
    # A JACK client can wait on a server that stopped answering forever: bound it.
    env JACK_DEFAULT_SERVER="$server" JACK_NO_START_SERVER=1 timeout 10 "$@"
}

# Starts `jackd -d dummy` named $1 at period $2 and waits until it accepts clients.
start_jackd() {
    local name=$1 period=$2 i
    setsid env JACK_NO_AUDIO_RESERVATION=1 jackd -n "$name" -R -P 70 -d dummy -r "$rate" -p "$period" \
        >"$logs/jackd-$name.log" 2>&1 &
    servers+=("$!")
    server_names+=("$name")
    local pid=$!
    for ((i = 0; i < 150; i++)); do
        alive "$pid" || { phase_fail "jackd $name exited at start" "$logs/jackd-$name.log"; return 1; }
        if timeout 5 jack_wait -s "$name" -c 2>/dev/null | grep -qx running; then
            # The pid must be jackd's own, not a setsid that forked (see start_client).
            [ "$(ps -o comm= -p "$pid")" = jackd ] || die "pid $pid is not jackd: setsid forked"
            return 0
        fi
        sleep 0.1
    done
    phase_fail "jackd $name did not come up within 15 s" "$logs/jackd-$name.log"
    return 1
}

# Waits up to $3 s for a line matching $2 in file $1 while pid $4 (if given) is alive.
wait_line() {
    local file=$1 pattern=$2 limit=$3 pid=${4:-} i
    for ((i = 0; i < limit * 10; i++)); do
        grep -qE "$pattern" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! alive "$pid"; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# Waits up to $3 s until server $1 has port $2.
wait_port() {
    local server=$1 port=$2 limit=$3 i
    for ((i = 0; i < limit * 10; i++)); do
        on "$server" jack_lsp 2>/dev/null | grep -qxF "$port" && return 0
        sleep 0.1
    done
    return 1
}

# Connects port $2 to port $3 on server $1; says so and returns 1 when it cannot.
wire() {
    on "$1" jack_connect "$2" "$3" || {
        phase_fail "jack_connect $2 $3 failed on server $1"
        return 1
    }
}

# Records why the current phase failed for the report; says so with the log's path and tail.
phase_fail() {
    failed_phase=$1
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        echo "compare: $1 (log: $2)" >&2
        tail -n 15 "$2" | sed 's/^/    | /' >&2
    else
        echo "compare: $1" >&2
    fi
}

# GET http://$1$2 (no curl needed); the whole response.
http_get() {
    local fd
    exec {fd}<>"/dev/tcp/${1%:*}/${1##*:}" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$2" >&"$fd"
    timeout 5 cat <&"$fd" || true
    exec {fd}<&-
}

# The xruns an izyrt process reports on its metrics address $1 (sum over its RT threads).
izyrt_xruns() {
    http_get "$1" /service/mixeradminclient?getMetrics \
        | grep -oE '"xruns":[0-9]+' | awk -F: '{ n += $2 } END { print n + 0 }'
}

# JACK-level xruns a server has logged so far: cycles its graph did not finish in time.
# The server logs one "client = X was not finished" line for every client still waiting
# in such a cycle and then one "Process error" line, so it counts those: per line, a system
# with more clients downstream of the late one (the ALSA jack PCM's two per process) would
# read as more xruns for the same late cycle (late_clients names them).
jack_xruns() {
    local n=0 name c
    for name in "$@"; do
        c=$(grep -cE 'ProcessGraph[A-Za-z]*: Process error' "$logs/jackd-$name.log" 2>/dev/null || true)
        n=$((n + ${c:-0}))
    done
    echo "$n"
}

# True when no TCP or UDP socket is bound to port $1 (true as well without `ss`).
port_free() {
    command -v ss >/dev/null || return 0
    ! ss -Htuan 2>/dev/null | awk '{ print $5 }' | grep -qE ":$1\$"
}

# The address after "$2" in log $1 (e.g. "listening on 127.0.0.1:40111 (...").
addr_after() {
    grep -m1 -oE "$2(http://)?[0-9.]+:[0-9]+" "$1" | grep -oE '[0-9.]+:[0-9]+$'
}

