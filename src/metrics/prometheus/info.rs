//! `izyrt_build_info` and `izyrt_info`: which build answers, and as what (HTTP thread).
//!
//! Both are gauges of value 1 whose labels carry the information, the Prometheus
//! convention for info metrics: join them on `instance` to label any other series.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use super::{escape, header};

/// The crate version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git commit the build script recorded (`IZYRT_GIT_COMMIT`), or `unknown`.
pub const COMMIT: &str = match option_env!("IZYRT_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// Writes both families; `obj`'s `role`, `user` and `hubAddress` give `izyrt_info`'s
/// labels (empty when absent or `null`).
pub(super) fn render(out: &mut String, obj: &Map<String, Value>) {
    header(
        out,
        "izyrt_build_info",
        "gauge",
        "1, labelled with the izyrt version and git commit of this build.",
    );
    let _ = writeln!(
        out,
        "izyrt_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        escape(VERSION),
        escape(COMMIT)
    );
    let label = |key: &str| escape(obj.get(key).and_then(Value::as_str).unwrap_or(""));
    header(
        out,
        "izyrt_info",
        "gauge",
        "1, labelled with this process's role (hub, peer, monitor, dev), its user and its hub's address.",
    );
    let _ = writeln!(
        out,
        "izyrt_info{{role=\"{}\",user=\"{}\",hub=\"{}\"}} 1",
        label("role"),
        label("user"),
        label("hubAddress")
    );
}
