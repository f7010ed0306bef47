# Sourced by scripts/compare: one round trip, measured: jack_iodelay's readings over a
# window, the xruns and CPU inside it, and the three systems measured that way (JackTrip,
# izyrt through the ALSA jack PCM and natively, and the PCM's floor under `izyrt thru`).
# Uses scripts/lib/compare-procs.sh; sets the figures (r_*, jt_*, iz_*, fl_*) the report
# reads.

# The window of jack_iodelay readings: waits for the first reading in $1 (a failure if
# none comes within 20 s), then $warmup s, then calls `$2 start`, waits $secs s and calls
# `$2 end`. Sets r_median, r_min, r_max, r_count, r_below (lines "Signal below threshold"
# in the window); returns 1 (with failed_phase set) without a usable figure.
r_median='' r_min='' r_max='' r_count=0 r_below=0
measure() {
    local log=$1 hook=$2 pid=$3 l0 window
    r_median='' r_min='' r_max='' r_count=0 r_below=0
    if ! wait_line "$log" 'total roundtrip latency' 20 "$pid"; then
        if grep -q 'Signal below threshold' "$log" 2>/dev/null; then
            phase_fail "jack_iodelay: no signal came back within 20 s (\"Signal below threshold\")" "$log"
        else
            phase_fail "jack_iodelay printed nothing within 20 s" "$log"
        fi
        return 1
    fi
    pause "$warmup"
    "$hook" start
    l0=$(wc -l <"$log")
    pause "$secs"
    "$hook" end
    window=$(tail -n +"$((l0 + 1))" "$log")
    r_below=$(grep -c 'Signal below threshold' <<<"$window" || true)
    local values
    values=$(awk '/total roundtrip latency/ { print $1 + 0 }' <<<"$window" | sort -n)
    r_count=$(grep -c . <<<"$values" || true)
    if [ "$r_count" -lt 3 ]; then
        phase_fail "jack_iodelay: $r_count readings in ${secs} s (signal below threshold $r_below times)" "$log"
        return 1
    fi
    r_min=$(head -n1 <<<"$values")
    r_max=$(tail -n1 <<<"$values")
    # shellcheck disable=SC2086 # one reading a word
    r_median=$(median_of $values)
}

# Starts jack_iodelay on server $1; its pid in $iod_pid, its log $2.
iod_pid=
start_iodelay() {
    start_client "$2" "$1" stdbuf -oL jack_iodelay
    iod_pid=$last_pid
    wait_port "$1" jack_delay:in 10 || {
        phase_fail "jack_iodelay did not register its ports on $1" "$2"
        return 1
    }
}

# CPU time (user + system) processes "$@" have used so far, in clock ticks; a process that
# is gone counts nothing.
cpu_ticks() {
    local pid n=0 stat
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Fields after "pid (comm) ": state is the 1st, utime the 12th, stime the 13th.
        n=$((n + $(awk '{ print $12 + $13 }' <<<"${stat##*) }")))
    done
    echo "$n"
}

# The machine's CPU time so far, summed over its CPUs (/proc/stat's first line, guest time
# left out: it is in user time already): "STEAL TOTAL" in ticks, steal being the time the
# hypervisor gave this VM's CPUs to others while they had work. On this shared VM that is
# what a storm is: 50-75 % of both cores taken for 20-40 s at a time.
host_ticks() {
    awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t; exit }' /proc/stat
}

# Window hooks: JACK xruns of the phase's servers, plus izyrt's own, and the CPU the
# system's own processes (x_pids: JackTrip's two, izyrt's hub and peer) used in the window,
# as a share of one core (x_cpu, "" when it has none); the share of the machine's CPU time
# the hypervisor took in the window, % (x_steal; x_steal_note ", steal X %", or "").
x_servers=()
x_metrics=()
x_pids=()
# What the next window watches: "$1" its servers, "$2" izyrt's metrics endpoints, "$3" the
# system's pids (each a space-separated list, possibly empty).
watch_window() {
    read -ra x_servers <<<"$1"
    read -ra x_metrics <<<"${2:-}"
    read -ra x_pids <<<"${3:-}"
}
x_jack0=0 x_jack=0 x_izyrt0=0 x_izyrt=0 x_cpu0=0 x_ns0=0 x_cpu='' x_host0='' x_steal='' x_steal_note=''
clk_tck=$(getconf CLK_TCK)
xrun_hook() {
    local n=0 m
    for m in "${x_metrics[@]}"; do n=$((n + $(izyrt_xruns "$m"))); done
    if [ "$1" = start ]; then
        x_jack0=$(jack_xruns "${x_servers[@]}")
        x_izyrt0=$n
        x_cpu0=$(cpu_ticks "${x_pids[@]}") x_ns0=$(date +%s%N) x_cpu=''
        x_host0=$(host_ticks) x_steal='' x_steal_note=''
    else
        x_steal=$(awk -v a="$x_host0" -v b="$(host_ticks)" 'BEGIN {
            split(a, s); split(b, e); t = e[2] - s[2]
            if (t > 0) printf "%.1f", 100 * (e[1] - s[1]) / t }')
        x_steal_note=${x_steal:+, steal $x_steal %} # as the round trip's notes append it
        x_jack=$(($(jack_xruns "${x_servers[@]}") - x_jack0))
        x_izyrt=$((n - x_izyrt0))
        if [ "${#x_pids[@]}" -gt 0 ]; then
            x_cpu=$(awk -v t="$(($(cpu_ticks "${x_pids[@]}") - x_cpu0))" -v hz="$clk_tck" \
                -v ns="$(($(date +%s%N) - x_ns0))" 'BEGIN { printf "%.1f", t / hz * 1e11 / ns }')
        fi
        # Each izyrt process's metrics at the window's end, kept with the logs (where the
        # round trip went: latency targets, buffer depths, misses).
        local i=0
        for m in "${x_metrics[@]}"; do
            http_get "$m" /service/mixeradminclient?getMetrics >"$logs/metrics-${x_servers[$i]:-$i}-$(date +%s%N).txt" || true
            i=$((i + 1))
        done
    fi
}

# JackTrip at period $1. Sets jt_* figures. With $2 "glitch", the glitch phase's wiring: the
# tone into send_1 and receive_1 recorded (glitch_hook), jack_iodelay on channel 2.
jt_median='' jt_detail=''
run_jacktrip() {
    local p=$1 glitch=${2:-}
    local hub="${tag}jth$p" cli="${tag}jtc$p" name="${tag}c" remote="${tag}r"
    # Ports below the ephemeral range, derived from our pid, moved on while taken: the hub
    # listens on TCP 4464 + offset, the client binds UDP 4464 + offset, the hub's UDP from udp.
    local offset=$((10000 + ($$ % 4000) * 2)) udp=$((24000 + ($$ % 4000) * 2))
    while ! port_free $((4464 + offset)) || ! port_free "$udp"; do
        offset=$((offset + 2)) udp=$((udp + 2))
    done
    jt_median='' jt_detail=''
    start_jackd "$hub" "$p" || return 1
    start_jackd "$cli" "$p" || return 1
    if [ -n "$glitch" ]; then start_tone "$cli" "$p" || return 1; fi
    start_client "$logs/jacktrip-hub-$p.log" "$hub" jacktrip -S -p 1 -o "$offset" -U "$udp"
    local hub_pid=$last_pid
    wait_line "$logs/jacktrip-hub-$p.log" 'Waiting for client connections' 15 "$hub_pid" || {
        phase_fail "the JackTrip hub server did not start" "$logs/jacktrip-hub-$p.log"
        return 1
    }
    # -D: do not wire the dummy system ports in (they carry silence; jack_iodelay is wired below).
    start_client "$logs/jacktrip-client-$p.log" "$cli" jacktrip -C 127.0.0.1 -o "$offset" -J "$name" -K "$remote" -D
    local cli_pid=$last_pid
    if ! wait_port "$cli" "$name:send_1" 15 || ! wait_port "$hub" "$remote:receive_1" 15; then
        phase_fail "the JackTrip hub client did not connect" "$logs/jacktrip-client-$p.log"
        return 1
    fi
    start_iodelay "$cli" "$logs/iodelay-jacktrip-$p.log" || return 1
    local hook=xrun_hook ch=1
    if [ -n "$glitch" ]; then
        hook=glitch_hook ch=2 g_server=$cli g_port=$name:receive_1
        wire "$cli" izytone:out_1 "$name:send_1" || return 1
    fi
    wire "$cli" jack_delay:out "$name:send_$ch" || return 1
    wire "$cli" "$name:receive_$ch" jack_delay:in || return 1
    watch_window "$hub $cli" "" "$hub_pid $cli_pid"
    if ! measure "$logs/iodelay-jacktrip-$p.log" "$hook" "$iod_pid"; then
        alive "$hub_pid" || phase_fail "$failed_phase; the JackTrip hub server had exited" "$logs/jacktrip-hub-$p.log"
        alive "$cli_pid" || phase_fail "$failed_phase; the JackTrip client had exited" "$logs/jacktrip-client-$p.log"
        return 1
    fi
    jt_median=$r_median
    jt_detail="JackTrip $(frames "$r_min")–$(frames "$r_max") over $r_count readings, JACK xruns $x_jack$x_steal_note"
    [ "$r_below" = 0 ] || jt_detail+=", signal lost $r_below times"
    jt_queue=$(grep -m1 -oE 'JitterBuffer strategy [0-9]+' "$logs/jacktrip-client-$p.log" || echo 'JitterBuffer strategy ?')
}

# izyrt peer + hub at period $1 with --periods $2, on the ALSA jack PCM, or as native JACK
# clients when $3 is "native". Sets iz_* figures. With $4 "glitch", the glitch phase's
# wiring: the tone into the peer's channel 1, its channel 1 recorded (glitch_hook),
# jack_iodelay on channel 2. Hub and peer are $iz_bin when it is set (IZYRT_COMPARE_BIN_B),
# else this checkout's build.
iz_median='' iz_detail='' iz_xruns=0
run_izyrt() {
    local p=$1 n=$2 mode=${3:-alsa} glitch=${4:-} bin=${iz_bin:-$izyrt}
    local hub="${tag}izh$p" cli="${tag}izc$p" log_h="$logs/izyrt-hub-$p-$n-$mode.log" log_p="$logs/izyrt-peer-$p-$n-$mode.log"
    local hub_dev=$hub_device peer_dev=izycmp_peer
    if [ "$mode" = native ]; then
        hub_dev=$hub_native peer_dev=jack:name=izycmp_peer,noconnect
    elif [ -n "$glitch" ]; then
        peer_dev=izycmp_glitch
    fi
    iz_median='' iz_detail='' iz_xruns=0
    start_jackd "$hub" "$p" || return 1
    start_jackd "$cli" "$p" || return 1
    if [ -n "$glitch" ]; then start_tone "$cli" "$p" || return 1; fi
    start_iodelay "$cli" "$logs/iodelay-izyrt-$p-$n-$mode.log" || return 1
    local common=(--rate "$rate" --period "$p" --periods "$n" --metrics 127.0.0.1:0)
    start_client "$log_h" "$hub" env ALSA_CONFIG_PATH="$alsa_path" \
        "$bin" hub --listen 127.0.0.1:0 --mix loopback --device "$hub_dev" "${common[@]}"
    local hub_pid=$last_pid
    wait_line "$log_h" '^([0-9:.TZ-]+ )?metrics: ' 15 "$hub_pid" || {
        phase_fail "izyrt hub did not start" "$log_h"
        return 1
    }
    local addr hub_metrics
    addr=$(addr_after "$log_h" 'listening on ')
    hub_metrics=$(addr_after "$log_h" 'metrics: +')
    start_client "$log_p" "$cli" env ALSA_CONFIG_PATH="$alsa_path" \
        "$bin" peer --hub "$addr" --user compare --device "$peer_dev" "${common[@]}"
    local peer_pid=$last_pid
    if ! wait_line "$log_p" 'joined the hub' 15 "$peer_pid" || ! wait_line "$log_p" '^([0-9:.TZ-]+ )?metrics: ' 5 "$peer_pid"; then
        phase_fail "izyrt peer did not join the hub" "$log_p"
        return 1
    fi
    local hook=xrun_hook
    if [ -n "$glitch" ]; then
        hook=glitch_hook g_server=$cli g_port=izycmp_peer:out_1
        if [ "$mode" = native ]; then
            wire "$cli" izytone:out_1 izycmp_peer:in_1 || return 1
            wire "$cli" jack_delay:out izycmp_peer:in_2 || return 1
            wire "$cli" izycmp_peer:out_2 jack_delay:in || return 1
        else
            # The PCM wired itself (izycmp_glitch below); its playback is the client whose
            # ports are out_NNN, named izycmp_glitch or izycmp_glitch-01 by the order the
            # plugin opened its two streams in.
            g_port=$(plugin_port "$cli" izycmp_glitch out_000) || {
                phase_fail "the peer's ALSA jack PCM has no port out_000 on $cli" "$log_p"
                return 1
            }
        fi
    elif [ "$mode" = native ]; then
        wire "$cli" jack_delay:out izycmp_peer:in_1 || return 1
        wire "$cli" izycmp_peer:out_1 jack_delay:in || return 1
    fi
    watch_window "$hub $cli" "$hub_metrics $(addr_after "$log_p" 'metrics: +')" "$hub_pid $peer_pid"
    if ! measure "$logs/iodelay-izyrt-$p-$n-$mode.log" "$hook" "$iod_pid"; then
        alive "$hub_pid" || phase_fail "$failed_phase; the izyrt hub had exited" "$log_h"
        alive "$peer_pid" || phase_fail "$failed_phase; the izyrt peer had exited" "$log_p"
        return 1
    fi
    iz_median=$r_median
    iz_xruns=$x_izyrt
    if [ "$mode" = native ]; then
        iz_detail="izyrt native $(frames "$r_min")–$(frames "$r_max") over $r_count readings, izyrt late cycles $x_izyrt, JACK xruns $x_jack$x_steal_note"
    else
        iz_detail="izyrt $(frames "$r_min")–$(frames "$r_max") over $r_count readings with --periods $n, izyrt xruns $x_izyrt, JACK xruns $x_jack$x_steal_note"
    fi
    [ "$r_below" = 0 ] || iz_detail+=", signal lost $r_below times"
}

# The floor at period $1 with --periods $2: JACK's own loop, then izyrt thru on the PCM.
fl_median='' fl_detail='' fl_jack=''
run_floor() {
    local p=$1 n=$2
    local srv="${tag}fl$p" log_t="$logs/thru-$p-$n.log"
    fl_median='' fl_detail='' fl_jack=''
    start_jackd "$srv" "$p" || return 1
    start_iodelay "$srv" "$logs/iodelay-jack-$p.log" || return 1
    # JACK alone: jack_iodelay's output straight into its input (one graph cycle).
    wire "$srv" jack_delay:out jack_delay:in || return 1
    watch_window "$srv"
    local save_w=$warmup save_s=$secs
    warmup=1 secs=2
    if measure "$logs/iodelay-jack-$p.log" xrun_hook "$iod_pid"; then fl_jack=$r_median; fi
    warmup=$save_w secs=$save_s
    stop_pids "$iod_pid"
    start_iodelay "$srv" "$logs/iodelay-floor-$p-$n.log" || return 1
    start_client "$log_t" "$srv" env ALSA_CONFIG_PATH="$alsa_path" \
        "$izyrt" thru --device izycmp_peer --rate "$rate" --period "$p" --periods "$n"
    local thru_pid=$last_pid
    if ! measure "$logs/iodelay-floor-$p-$n.log" xrun_hook "$iod_pid"; then
        alive "$thru_pid" || phase_fail "$failed_phase; izyrt thru had exited" "$log_t"
        return 1
    fi
    fl_median=$r_median
    fl_detail="floor $(frames "$r_min")–$(frames "$r_max") over $r_count readings, JACK xruns $x_jack$x_steal_note"
    [ "$r_below" = 0 ] || fl_detail+=", signal lost $r_below times"
}

