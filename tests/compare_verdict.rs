//! `scripts/compare`'s verdicts on fixed figures: the functions of
//! `scripts/lib/compare-verdict.sh` sourced by bash under the script's own `set -euo
//! pipefail`, fed the medians a run would have measured, and their closing section ("Every
//! goal, in this run") read back. A full run takes half an hour and two sound servers; a
//! verdict that misreads its figures (as one did, saying "every goal met" whatever the
//! glitch phase found, when no period had failed) shows here instead.

use std::path::Path;
use std::process::Command;

/// Runs `body` after sourcing the library, with the run's globals set as a three-period
/// run with the glitch phase and native runs sets them; returns stdout.
fn verdict(body: &str) -> String {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lib/compare-verdict.sh");
    let script = format!(
        "set -euo pipefail\n\
         source '{}'\n\
         rate=48000 periods_list='32 64 128' glitch=1 native=1 started_at='12-07 20:00'\n\
         pcm_ratios=() nv_ratios=() pcm_over=() nv_over=()\n\
         declare -A g_all_epm=() g_all_steps=() g_all_holes=() g_all_rt=() g_all_cpu=()\n\
         {body}\n",
        lib.display()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "bash failed: {}\n{stdout}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A run's figures, then `goal_report`: each period's medians (period, JackTrip, izyrt
/// through the PCM, izyrt native; frames, '' for a figure never measured) and each glitch
/// system's events/min and round trips (frames) by round.
fn run(periods: &[(u32, &str, &str, &str)], glitch: &[(&str, &str, &str)]) -> String {
    let mut body = String::new();
    for (p, jt, iz, nv) in periods {
        body += &format!("tally_period {p} '{jt}' '{iz}' '{nv}'\n");
    }
    body += "echo \"ratios ${pcm_ratios[*]} / ${nv_ratios[*]}\"\n";
    for (sys, epm, rt) in glitch {
        body += &format!(
            "g_all_epm[{sys}]='{epm} '; g_all_steps[{sys}]='0 '; g_all_holes[{sys}]='0 '; g_all_rt[{sys}]='{rt} '\n"
        );
    }
    verdict(&(body + "goal_report"))
}

/// The last line of the section: the run as a row of RESULTS.md's table.
fn row(report: &str) -> &str {
    report.lines().rfind(|l| l.starts_with("| ")).unwrap_or("")
}

#[test]
fn every_goal_met_on_both_paths() {
    let r = run(
        &[
            (32, "256", "237.4", "210"),
            (64, "512", "312.6", "298.9"),
            (128, "1152", "651.6", "532.3"),
        ],
        &[
            ("jack", "0 1 0", "32 32 32"),
            ("jacktrip", "2 1 3", "512 512 448"),
            ("izyrt", "1 2 0", "359.7 360 380"),
            ("native", "1 1 2", "380.2 370 390"),
        ],
    );
    assert!(
        r.contains("- izyrt (ALSA jack PCM): every goal **met**."),
        "{r}"
    );
    assert!(
        r.contains("- izyrt native JACK: every goal **met**."),
        "{r}"
    );
    // The run's time, the commit, then the medians and ratios as the table gives them.
    let row = row(&r);
    assert!(row.starts_with("| 12-07 20:00, "), "{row}");
    assert!(
        row.ends_with(
            " | 0 | 2 at 512 | 0.93, 0.61, 0.57 | 1 at 360 | 0.82, 0.58, 0.46 | 1 at 380.2 \
             | **yes** / **yes** |"
        ),
        "{row}"
    );
}

#[test]
fn a_period_and_the_glitch_phase_fail_by_name() {
    // Through the PCM: 32 frames at JackTrip's round trip (equal is not below) and more
    // events; natively: every period below, the glitch windows' round trip not lower.
    let r = run(
        &[
            (32, "256", "256", "240"),
            (64, "512", "400", "300"),
            (128, "1152", "700", "600"),
        ],
        &[
            ("jack", "1 1 1", "32 32 32"),
            ("jacktrip", "3 3 4", "448 448 448"),
            ("izyrt", "5 4 6", "400 410 420"),
            ("native", "3 2 9", "448 460 470"),
        ],
    );
    assert!(
        r.contains("- izyrt (ALSA jack PCM): **not met** (fails: 32, ev)."),
        "{r}"
    );
    // Events equal to JackTrip's meet "no higher"; the round trip must be lower.
    assert!(
        r.contains("- izyrt native JACK: **not met** (fails: rt)."),
        "{r}"
    );
    assert!(
        row(&r).ends_with("| no (32, ev) / no (rt) |"),
        "{}",
        row(&r)
    );
}

#[test]
fn no_failed_period_does_not_hide_a_failed_glitch_phase() {
    // The bug of 2026-12-07: with no period over, the closing verdict said "met".
    let r = run(
        &[
            (32, "256", "200", "200"),
            (64, "512", "300", "300"),
            (128, "1152", "600", "600"),
        ],
        &[
            ("jack", "0 0 0", "32 32 32"),
            ("jacktrip", "1 1 1", "448 448 448"),
            ("izyrt", "9 9 9", "600 600 600"),
            ("native", "1 0 1", "400 400 400"),
        ],
    );
    assert!(
        r.contains("- izyrt (ALSA jack PCM): **not met** (fails: ev, rt)."),
        "{r}"
    );
    assert!(
        r.contains("- izyrt native JACK: every goal **met**."),
        "{r}"
    );
}

#[test]
fn a_figure_that_was_never_measured_fails_its_goal() {
    // JackTrip's 64-frame round trip failed every round, and izyrt native's glitch rounds:
    // neither can be called below JackTrip's.
    let r = run(
        &[
            (32, "256", "200", "190"),
            (64, "", "300", "280"),
            (128, "1152", "600", "500"),
        ],
        &[
            ("jack", "0 0 0", "32 32 32"),
            ("jacktrip", "2 2 2", "448 448 448"),
            ("izyrt", "1 1 1", "400 400 400"),
        ],
    );
    assert!(r.contains("ratios 0.78 — 0.52 / 0.74 — 0.43"), "{r}");
    assert!(
        r.contains("- izyrt (ALSA jack PCM): **not met** (fails: 64)."),
        "{r}"
    );
    assert!(
        r.contains("- izyrt native JACK: **not met** (fails: 64, ev, rt)."),
        "{r}"
    );
    assert!(row(&r).contains("| — at — |"), "{}", row(&r));
}

#[test]
fn without_the_glitch_phase_or_native_runs_only_the_round_trips_count() {
    let r = verdict(
        "glitch=0 native=0\n\
         tally_period 32 256 300 ''\n\
         tally_period 64 512 300 ''\n\
         tally_period 128 1152 600 ''\n\
         echo \"native ${nv_ratios[*]} over ${#nv_over[@]}\"\n\
         goal_report",
    );
    assert!(r.contains("native — — — over 0"), "{r}");
    assert!(
        r.contains("- izyrt (ALSA jack PCM): **not met** (fails: 32)."),
        "{r}"
    );
    assert!(!r.contains("native JACK:"), "{r}");
    assert!(
        !r.contains("As a row"),
        "no row without the glitch phase: {r}"
    );
}

#[test]
fn medians_and_figures_read_as_the_report_prints_them() {
    let r = verdict(
        "median_of 3 1 2; median_of 4 1 3 2; median_of '' 5; median_of; echo end\n\
         frames 127.999; frames 255.44; fmt 256; echo\n\
         joined a b c",
    );
    assert_eq!(r, "2\n2.5\n5\nend\n128\n255.4\n256 (5.33)\na, b, c");
}
