//! The QoS dashboard page served at `/` (HTTP thread).
//!
//! Design: one self-contained document (no CDN, no external script or style), assembled
//! once from three files kept apart so each reads as what it is: `dashboard.html` (the
//! skeleton, with the status element `data-izy-circus-inner-html-status` the original
//! system's dashboard reads), `dashboard.css` and `dashboard.js`. The script polls
//! `/service/mixeradminclient?getMetrics` once a second and renders by the snapshot's
//! `role`:
//!
//! - hub: its own figures (clients, miss periods, refusals; no mic or speaker, so no
//!   alarms about them), the session table from `sessions`, per-user trends and the RT
//!   threads;
//! - monitor and peer: their own link to the hub (latency, buffer, misses, levels; the
//!   mic for a peer; the hub status and why it is not running), then the hub's session
//!   table as METADATA carried it.
//!
//! The trends (misses/s, latency, round trip per user; the RT threads' wakeup p99.9) come
//! from the page's own polling history, 300 points. Untrusted text (user names, reasons)
//! is only ever set with `textContent`. The page marks `<html>` with `data-role`,
//! `data-polls` and `data-fits` (no horizontal scrollbar) for `tests/dashboard_browser.rs`.

use std::sync::LazyLock;

const HTML: &str = include_str!("dashboard.html");
const CSS: &str = include_str!("dashboard.css");
const JS: &str = include_str!("dashboard.js");

/// The dashboard document: `dashboard.html` with the style and script put in.
pub(crate) static DASHBOARD_HTML: LazyLock<String> = LazyLock::new(|| {
    HTML.replacen("/*DASHBOARD_CSS*/", CSS, 1)
        .replacen("/*DASHBOARD_JS*/", JS, 1)
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_and_script_are_inlined_once() {
        let page = DASHBOARD_HTML.as_str();
        assert!(!page.contains("/*DASHBOARD_CSS*/") && !page.contains("/*DASHBOARD_JS*/"));
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(page.contains("const METRICS = \"/service/mixeradminclient?getMetrics\""));
        assert!(page.contains(".sessions td.state"));
    }

    #[test]
    fn self_contained_and_text_only() {
        let page = DASHBOARD_HTML.as_str();
        for banned in [
            "<script src",
            "<link",
            "@import",
            "https://",
            // Markup from strings: as properties or calls, not the words in a comment.
            ".innerHTML",
            ".outerHTML",
            ".insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!page.contains(banned), "the page contains {banned:?}");
        }
        // The only absolute URL is the SVG namespace, which is a name, not a fetch.
        assert_eq!(page.matches("http://").count(), 1);
        assert!(page.contains("\"http://www.w3.org/2000/svg\""));
        // The script's text must not end the script element early.
        assert!(!JS.contains("</script"));
    }

    #[test]
    fn the_original_dashboards_status_element_is_there() {
        assert!(
            DASHBOARD_HTML
                .contains("<span data-izy-circus-inner-html-status id=\"aggregator\">n/a</span>")
        );
    }
}
