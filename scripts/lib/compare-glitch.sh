# Sourced by scripts/compare: the glitch phase, what a listener hears: the tone played
# into each system, its return recorded by jack_rec and counted by `izyrt glitches`, the
# round trip read beside it, each round's row and note (g_rows, g_notes, g_all_*), and the
# report's section on the phase.
# Uses scripts/lib/compare-procs.sh and compare-measure.sh.

# The port named $3 of the ALSA jack plugin's client $2 on server $1 (the plugin opens one
# JACK client per stream: the second gets a -NN suffix); waits up to 10 s for it.
plugin_port() {
    local server=$1 client=$2 port=$3 i found
    for ((i = 0; i < 100; i++)); do
        found=$(on "$server" jack_lsp 2>/dev/null | grep -m1 -E "^${client}(-[0-9]+)?:${port}\$" || true)
        [ -n "$found" ] && { echo "$found"; return 0; }
        sleep 0.1
    done
    return 1
}

# Plays the tone ($tone_wav) into server $1 at period $2 as the native JACK client izytone
# (one port, izytone:out_1, wired by the caller). Its pid in $tone_pid.
tone_pid='' tone_log=''
start_tone() {
    tone_log=$logs/tone.log
    start_client "$tone_log" "$1" "$izyrt" play "$tone_wav" --device jack:name=izytone,noconnect \
        --rate "$rate" --period "$2" --channels 1
    tone_pid=$last_pid
    wait_port "$1" izytone:out_1 10 || {
        phase_fail "the tone source (izyrt play) did not register izytone:out_1 on $1" "$tone_log"
        return 1
    }
}

# The window hook of the glitch phase: xrun_hook's counts; izyrt's getMetrics (hub, then
# peer: x_metrics) saved at both ends; jack_rec recording port $g_port on server $g_server
# into $g_wav for the window ($secs s), then counted (glitch_window_end).
g_server='' g_port='' g_wav='' g_rec_pid='' g_rec_log='' g_lines=()
glitch_hook() {
    xrun_hook "$1"
    local i
    for i in "${!x_metrics[@]}"; do
        http_get "${x_metrics[i]}" /service/mixeradminclient?getMetrics >"$logs/getMetrics-$i-$1.http" 2>/dev/null || true
    done
    if [ "$1" = start ]; then
        g_lines=()
        for i in "${x_servers[@]}"; do g_lines+=("$(wc -l <"$logs/jackd-$i.log")"); done
        g_rec_log=$logs/jack_rec.log
        start_client "$g_rec_log" "$g_server" jack_rec -f "$g_wav" -d "$secs" -b 32 "$g_port"
        g_rec_pid=$last_pid
    else
        glitch_window_end
    fi
}

# After the window: jack_rec finished, the tone still played, the recording counted by
# `izyrt glitches` (the same detector for every system). Sets g_* figures, or g_fail.
g_epm='' g_events='' g_steps='' g_holes='' g_secs='' g_kinds='' g_times='' g_counters='' g_fail=''
glitch_window_end() {
    local i rc=0 out
    for ((i = 0; i < 150; i++)); do
        alive "$g_rec_pid" || break
        sleep 0.1
    done
    if alive "$g_rec_pid"; then
        g_fail="jack_rec was still recording 15 s after the window"
        phase_fail "$g_fail" "$g_rec_log"
        return 1
    fi
    wait "$g_rec_pid" 2>/dev/null || rc=$?
    if [ "$rc" != 0 ] || [ ! -s "$g_wav" ]; then
        g_fail="jack_rec failed (status $rc) recording $g_port"
        phase_fail "$g_fail" "$g_rec_log"
        return 1
    fi
    if ! alive "$tone_pid"; then
        g_fail="the tone source (izyrt play) had stopped before the window's end"
        phase_fail "$g_fail" "$tone_log"
        return 1
    fi
    if ! "$izyrt" glitches "$g_wav" --freq 441 --json >"$logs/glitches.json" 2>"$logs/glitches.err"; then
        g_fail="izyrt glitches could not count the recording of $g_port"
        phase_fail "$g_fail" "$logs/glitches.err"
        return 1
    fi
    if ! out=$(python3 "$helper" summary "$logs/glitches.json" 2>"$logs/glitches.err"); then
        g_fail="izyrt glitches printed no figures"
        phase_fail "$g_fail" "$logs/glitches.err"
        return 1
    fi
    IFS=$'\t' read -r g_epm g_events g_steps g_holes g_secs g_kinds g_times <<<"$out"
    if [ "${#x_metrics[@]}" = 2 ]; then
        g_counters=$(python3 "$helper" counters "$logs"/getMetrics-{0,1}-{start,end}.http 2>&1 || true)
    fi
    late_clients
}

# Which JACK clients each server logged as late ("client = X was not finished") in the
# window, and how often its dummy driver itself woke late: into g_late.
g_late=''
late_clients() {
    local k srv label window names drv
    g_late=''
    for k in "${!x_servers[@]}"; do
        srv=${x_servers[k]}
        label="the client side's server"
        [ "${#x_servers[@]}" = 2 ] && [ "$k" = 0 ] && label="the hub's server"
        window=$(tail -n +"$((g_lines[k] + 1))" "$logs/jackd-$srv.log")
        names=$(grep -oE 'client = [^ ]+ was not finished' <<<"$window" | awk '{ print $3 }' \
            | sed -E "s/^${tag}[cr]\$/jacktrip/" | sort | uniq -c | sort -rn \
            | awk '{ printf "%s%s %s", sep, $2, $1; sep = ", " }')
        drv=$(grep -c 'JackTimedDriver::Process XRun' <<<"$window" || true)
        g_late+="${g_late:+; }late on $label: ${names:-no client}, its driver $drv times"
    done
}

# JACK alone at period $1: the tone recorded straight back on one server (jack_iodelay
# wired to itself beside it): the floor of the measuring chain.
run_jack_alone() {
    local p=$1
    local srv="${tag}fl$p"
    start_jackd "$srv" "$p" || return 1
    start_tone "$srv" "$p" || return 1
    start_iodelay "$srv" "$logs/iodelay-jack-$p.log" || return 1
    wire "$srv" jack_delay:out jack_delay:in || return 1
    watch_window "$srv"
    g_server=$srv g_port=izytone:out_1
    measure "$logs/iodelay-jack-$p.log" glitch_hook "$iod_pid"
}

# The name a glitch-phase system goes by in the log and the verdicts.
system_label() {
    case $1 in
        jack) echo "JACK alone" ;;
        jacktrip) echo "JackTrip" ;;
        izyrt) echo "izyrt" ;;
        izyrt-b) echo "izyrt B" ;;
        native) echo "izyrt native" ;;
    esac
}

# Its name with the path it takes, as the report's medians and its order of systems say it.
system_path_label() {
    case $1 in
        izyrt) echo "izyrt (ALSA jack PCM)" ;;
        izyrt-b) echo "izyrt B ($b_path)" ;;
        native) echo "izyrt native JACK" ;;
        *) system_label "$1" ;;
    esac
}

# One system ($1: jack, jacktrip, izyrt, izyrt-b or native) in glitch round $round at period $2, izyrt
# with --periods $3. Appends its row, its note and its figures (g_all_*[$1]). A window in
# which the hypervisor took more than $steal_max % of the machine (a storm of this shared
# VM, heard by every system alike) is taken again, up to $retakes times, whatever the
# system: the storm's take is kept in the notes, the last take is the round's.
declare -A g_all_epm=() g_all_steps=() g_all_holes=() g_all_rt=() g_all_cpu=() g_last_fail=()
g_rows=() g_notes=() g_retaken=0
glitch_system() {
    local sys=$1 p=$2 n=$3 rt_note label take
    label=$(system_label "$sys")
    for ((take = 1; ; take++)); do
        logs=$g_logs/round$round-$sys
        [ "$take" = 1 ] || logs+=-take$take
        mkdir -p "$logs"
        g_wav=$logs/recording.wav
        g_epm='' g_events='' g_steps='' g_holes='' g_secs='' g_kinds='' g_times='' g_counters='' g_fail='' g_late=''
        g_rec_pid='' r_median='' r_min='' r_max='' r_count=0 x_jack=0 x_cpu='' x_steal='' failed_phase=''
        echo "== glitch round $round of $glitch_rounds: $label$([ "$take" = 1 ] || echo " (take $take)")" >&2
        case $sys in
            jack) run_jack_alone "$p" ;;
            jacktrip) run_jacktrip "$p" glitch ;;
            izyrt) run_izyrt "$p" "$n" alsa glitch ;;
            izyrt-b) iz_bin=$bin_b_run run_izyrt "$p" "${b_periods:-$n}" "$b_mode" glitch ;;
            native) run_izyrt "$p" 2 native glitch ;;
        esac || true
        stop_all
        [ -n "$x_steal" ] && [ "$take" -le "$retakes" ] && below "$steal_max" "$x_steal" || break
        g_retaken=$((g_retaken + 1))
        rt_note=—
        [ -z "$r_median" ] || rt_note="$(frames "$r_median") frames"
        g_notes+=("- round $round, $label, take $take: taken again, the hypervisor took $x_steal % of the machine in the window (events/min ${g_epm:-—}, round trip $rt_note).")
    done
    if [ -n "$r_median" ]; then
        g_all_rt[$sys]+="$r_median "
        rt_note="round trip $(frames "$r_min")–$(frames "$r_max") over $r_count readings"
    else
        rt_note="round trip not measured${failed_phase:+ ($failed_phase)}"
    fi
    local rt_cell=— steal=${x_steal:-—}
    [ -z "$r_median" ] || rt_cell=$(fmt "$r_median")
    if [ -z "$g_epm" ]; then
        g_fail=${g_fail:-${failed_phase:-no recording was made}}
        failures=$((failures + 1))
        g_last_fail[$sys]=$g_fail
        g_rows+=("| $round | $label | FAILED: $g_fail | | | | | ${g_rec_pid:+$x_jack} | | $steal | $rt_cell |")
        g_notes+=("- round $round, $label: FAILED: $g_fail; $rt_note.")
        return 0
    fi
    g_all_epm[$sys]+="$g_epm "
    g_all_steps[$sys]+="$g_steps "
    g_all_holes[$sys]+="$g_holes "
    [ -z "$x_cpu" ] || g_all_cpu[$sys]+="$x_cpu "
    local short=''
    if below "$g_secs" "$(awk -v s="$secs" 'BEGIN { print s * 0.95 }')"; then
        short=" (the tone was heard for $g_secs s of the $secs s window: silence or a level under half at an end of it is not counted as an event)"
    fi
    g_rows+=("| $round | $label | $g_epm | $g_events | $g_steps | $g_holes | $g_secs | $x_jack | ${x_cpu:-—} | $steal | $rt_cell |")
    g_notes+=("- round $round, $label: events $g_kinds${g_times:+, at $g_times s into the window}$short; $rt_note${g_late:+; $g_late}${g_counters:+; $g_counters}.")
}

# The report's section on the glitch phase.
glitch_report() {
    local sys label epm steps holes rt cpu jt_epm jt_rt iz_epm iz_rt verdict ev_met rt_met
    echo
    echo "## What a listener hears: audible events on the loopback path"
    echo
    local order=''
    for sys in "${g_systems[@]}"; do order+="${order:+, }$(system_path_label "$sys")"; done
    echo "At $glitch_period frames, $glitch_rounds round(s) of ${glitch_secs} s windows, each round running one"
    echo "system after the other on fresh servers with the same names ($order)."
    echo "The same 441 Hz tone at -12 dBFS (\`izyrt play\` of one file, a native JACK"
    echo "client on the client side's server) goes out on channel 1; what comes back on channel 1"
    echo "is recorded by \`jack_rec\` on that server for the window, $warmup s after jack_iodelay's first"
    echo "reading, and counted by \`izyrt glitches --freq 441\`: a **step** is a sample the tone cannot"
    echo "explain (a click: a dropped, repeated or cut span), a **hole** a dip of its level (a"
    echo "fade, a dropout), and steps and holes within 20 ms are one audible **event**. jack_iodelay"
    echo "measures the round trip on channel 2 in the same window. *JACK alone* records the tone"
    echo "straight from its source (jack_iodelay wired to itself beside it): the floor of the"
    echo "measuring chain, the dummy server's and the clients' own misses on this host. JACK xruns"
    echo "are the cycles the servers logged as late in the window (both servers for JackTrip and"
    echo "izyrt; one per cycle, however many clients it names): the host's noise, heard in every"
    echo "system alike. *CPU* is what the system's own processes used in the window (user and"
    echo "system time of JackTrip's hub and client, of izyrt's hub and peer; not the servers, the"
    echo "tone or the recorder), as a share of one core: on a shared host, load one system adds"
    echo "can delay the servers' threads for all. *Steal* is the share of the machine's CPU time the"
    echo "hypervisor took in the window (/proc/stat): this shared VM's storms, 50-75 % for 20-40 s at a"
    echo "time, which every system hears alike; a window above $steal_max % is taken again (up to $retakes"
    echo "times, for every system alike; $g_retaken taken again in this run, each in the notes) and"
    echo "the last take counts. izyrt at its defaults but \`--period $glitch_period"
    echo "--periods $glitch_n\` ($glitch_n_why; the native peer has no device buffer), JackTrip at its"
    echo "defaults (queue 4)."
    [ -z "$bin_b" ] || echo "*izyrt B* is \`$bin_b\` (IZYRT_COMPARE_BIN_B) at izyrt's settings $b_how, run right after $b_after in every round."
    echo
    echo "| round | system | events/min | events | steps | holes | seconds measured | JACK xruns | CPU, % of a core | steal, % | round trip frames (ms) |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf '%s\n' "${g_rows[@]}"
    echo
    echo "Medians over the rounds:"
    echo
    echo "| system | events/min | steps | holes | CPU, % of a core | round trip frames (ms) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for sys in "${g_systems[@]}"; do
        label=$(system_path_label "$sys")
        read -r epm steps holes rt cpu <<<"$(glitch_medians "$sys")"
        [ "$rt" = — ] || rt=$(fmt "$rt")
        if [ "$epm" = — ]; then
            epm="FAILED: ${g_last_fail[$sys]:-every round failed}"
        fi
        echo "| $label | $epm | $steps | $holes | $cpu | $rt |"
    done
    echo
    for sys in "${g_systems[@]}"; do
        [ "$sys" != jack ] && [ "$sys" != jacktrip ] || continue
        read -r ev_met rt_met iz_epm iz_rt jt_epm jt_rt <<<"$(glitch_goals "$sys")"
        label=$(system_label "$sys")
        if [ "$ev_met" = 1 ]; then verdict=met; else verdict="not met"; fi
        echo "${label}'s median events/min <= JackTrip's: **$verdict** ($iz_epm against $jt_epm)."
        if [ "$rt_met" = 1 ]; then verdict=met; else verdict="not met"; fi
        echo "At a lower median round trip: **$verdict** ($(glitch_rt "$iz_rt") against $(glitch_rt "$jt_rt"), jack_iodelay on channel 2 in the same windows)."
        echo
    done
    echo "Every window: the events' kinds and when they happened (seconds into the recording), each"
    echo "with what it did to the tone's timeline in frames (\`izyrt glitches\`' \`jumpFrames\`: + the audio"
    echo "after it is ahead, a span dropped; − behind, a span repeated or silence inserted; 0 the"
    echo "timeline went on, a gap concealed in phase; known modulo the tone's period, 108.8 frames"
    echo "at 441 Hz and 48 kHz, so a dropped 64-frame period reads −45, a repeated one +45, two"
    echo "dropped +19) and zN for a run of N exact zeros (silence a device or a JACK cycle played); the"
    echo "JACK clients each server logged as late in the window, and how often its dummy driver"
    echo "itself woke late (\`izytone\` is the tone, \`jackrec\` the recorder, \`jack_delay\`"
    echo "jack_iodelay; \`izycmp_glitch\` and \`izycmp_glitch-01\` are the ALSA jack plugin's two"
    echo "clients for izyrt's peer, one per stream, \`izycmp_hub\` (and \`-01\`) the hub's; in the"
    echo "native rounds \`izycmp_peer\` and \`izycmp_hub\` are izyrt's own JACK clients); for izyrt,"
    echo "what its hub and peer counted over the window (getMetrics), with the peer's latency target"
    echo "and clock and the hub input's target against its cap, depth and drift at the window's end:"
    echo
    printf '%s\n' "${g_notes[@]}"
}
glitch_rt() { # a median round trip, or —
    if [ "$1" = — ]; then echo —; else fmt "$1"; fi
}
