# Sourced by scripts/compare: the arithmetic of its figures and the verdicts on its goals,
# apart from the measuring so that tests/compare_verdict.rs can run them on fixed figures
# (a run takes 30 minutes and a sound server; a verdict that reads its figures wrong, as
# one did under `set -u` on an empty list, would otherwise only show in a report).
#
# It reads the run's globals: `rate`, `periods_list`, `glitch` (0/1), `native` (0/1),
# `started_at`; the round-trip tally `pcm_ratios`, `pcm_over`, `nv_ratios`, `nv_over`
# (filled by `tally_period`); and the glitch phase's figures per system (jack, jacktrip,
# izyrt, izyrt-b, native), the associative arrays `g_all_epm`, `g_all_steps`,
# `g_all_holes`, `g_all_rt`, `g_all_cpu`, each a space-separated list of the rounds'
# figures.

# The median of the numbers given, one per argument (empty arguments skipped; prints
# nothing when none is left).
median_of() {
    printf '%s\n' "$@" | { grep . || true; } | sort -n \
        | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else if (NR) print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
ratio_of() { # $1 / $2 to two decimals
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
frames() { # a reading, to a tenth of a frame (jack_iodelay prints 127.999 for 128)
    awk -v f="$1" 'BEGIN { s = sprintf("%.1f", f); sub(/\.0$/, "", s); print s }'
}
fmt() { # frames → "F (M.MM)" (ms)
    awk -v f="$(frames "$1")" -v r="$rate" 'BEGIN { printf "%s (%.2f)", f, f * 1000 / r }'
}

# Median $2 against JackTrip's $1 at one period: "RATIO OVER", the ratio ("—" when either
# median is missing) and OVER 1 when $2 is not below JackTrip's or was not measured.
against_jacktrip() {
    local ratio=— over=1
    if [ -n "$1" ] && [ -n "$2" ]; then
        ratio=$(ratio_of "$2" "$1")
        if below "$2" "$1"; then over=0; fi
    fi
    echo "$ratio $over"
}

# Period $1's medians: JackTrip $2, izyrt through the PCM $3, izyrt native $4 (each empty
# when every round failed). Appends the ratios to `pcm_ratios`/`nv_ratios` ("—" when a
# median is missing) and the period to `pcm_over`/`nv_over` when its round trip is not
# below JackTrip's or was not measured; with `native` 0 the native side gets "—" only.
tally_period() {
    local p=$1 ratio over
    read -r ratio over <<<"$(against_jacktrip "$2" "$3")"
    pcm_ratios+=("$ratio")
    [ "$over" = 0 ] || pcm_over+=("$p")
    if [ "$native" = 0 ]; then
        nv_ratios+=(—)
        return 0
    fi
    read -r ratio over <<<"$(against_jacktrip "$2" "$4")"
    nv_ratios+=("$ratio")
    [ "$over" = 0 ] || nv_over+=("$p")
}

# The glitch phase's medians for system $1: "events/min steps holes round-trip" (each "—"
# when no round measured it).
glitch_medians() {
    local f m figs=()
    for f in g_all_epm g_all_steps g_all_holes g_all_rt g_all_cpu; do
        local -n a=$f
        # shellcheck disable=SC2086 # one figure a word
        m=$(median_of ${a[$1]:-})
        figs+=("${m:-—}")
        unset -n a
    done
    echo "${figs[*]}"
}

# System $1's glitch goals against JackTrip's medians: "EV RT IZ_EPM IZ_RT JT_EPM JT_RT",
# EV 1 when its median events/min is no higher than JackTrip's, RT 1 when its median round
# trip is lower (0 when either median is missing, "—"), then the four medians compared.
glitch_goals() {
    local epm rt jt_epm jt_rt ev=0 lower=0
    read -r jt_epm _ _ jt_rt _ <<<"$(glitch_medians jacktrip)"
    read -r epm _ _ rt _ <<<"$(glitch_medians "$1")"
    if [ "$epm" != — ] && [ "$jt_epm" != — ] && ! below "$jt_epm" "$epm"; then ev=1; fi
    if [ "$rt" != — ] && [ "$jt_rt" != — ] && below "$rt" "$jt_rt"; then lower=1; fi
    echo "$ev $lower $epm $rt $jt_epm $jt_rt"
}

# What failed of every goal for path $1 (izyrt or native), comma-separated, empty when
# nothing did: the periods whose round trip was not below JackTrip's, "ev" (the glitch
# phase's median events/min above JackTrip's) and "rt" (its median round trip not below
# JackTrip's; both "—" when a median is missing).
goal_failures() {
    local fails=() ev_met rt_met
    if [ "$1" = izyrt ]; then fails=("${pcm_over[@]}"); else fails=("${nv_over[@]}"); fi
    if [ "$glitch" != 0 ]; then
        read -r ev_met rt_met _ <<<"$(glitch_goals "$1")"
        [ "$ev_met" = 1 ] || fails+=(ev)
        [ "$rt_met" = 1 ] || fails+=(rt)
    fi
    local IFS=,
    echo "${fails[*]}"
}

# System $1's median events/min "at" its median round trip in frames, as the table gives them.
events_at() {
    local epm rt
    read -r epm _ _ rt _ <<<"$(glitch_medians "$1")"
    if [ "$rt" = — ]; then echo "$epm at —"; else echo "$epm at $(frames "$rt")"; fi
}
joined() { printf '%s, ' "$@" | sed 's/, $//'; } # "a, b, c"

# The closing verdict: every goal of the run per path, and the run as one row of the table
# `benches/RESULTS.md` keeps of every full run ("Every full run, one row each").
goal_report() {
    local sys label f verdicts=() cells=() epm
    echo
    echo "## Every goal, in this run"
    echo
    echo "A path meets every goal when its round trip is below JackTrip's at every period measured"
    # shellcheck disable=SC2086 # one period a word
    echo "($(joined $periods_list) frames)$([ "$glitch" = 0 ] || echo " and, in the glitch phase, its median audible events/min is no higher than JackTrip's at a lower median round trip")."
    echo "What fails is named: a period (its round trip)$([ "$glitch" = 0 ] || echo ", *ev* (the events), *rt* (the glitch windows' round trip)")."
    echo
    for sys in izyrt native; do
        [ "$sys" = izyrt ] || [ "$native" != 0 ] || continue
        label="izyrt (ALSA jack PCM)"
        [ "$sys" = izyrt ] || label="izyrt native JACK"
        f=$(goal_failures "$sys")
        if [ -z "$f" ]; then
            verdicts+=("**yes**")
            echo "- $label: every goal **met**."
        else
            verdicts+=("no (${f//,/, })")
            echo "- $label: **not met** (fails: ${f//,/, })."
        fi
    done
    [ "$glitch" != 0 ] || return 0
    echo
    echo "As a row of that table (run, JACK alone, JackTrip, then each path's ratios and events/min at frames):"
    echo
    read -r epm _ <<<"$(glitch_medians jack)"
    cells+=("$epm" "$(events_at jacktrip)" "$(joined "${pcm_ratios[@]}")" "$(events_at izyrt)")
    if [ "$native" != 0 ]; then
        cells+=("$(joined "${nv_ratios[@]}")" "$(events_at native)")
    else
        cells+=(— —) verdicts+=(—)
    fi
    echo "| $started_at, $(git rev-parse --short HEAD 2>/dev/null || echo '?') | $(printf '%s | ' "${cells[@]}")${verdicts[0]} / ${verdicts[1]} |"
}
