//! A dashboard page in real headless Chromium (Debian's `/usr/bin/chromium`, or
//! `IZYRT_CHROMIUM`), and the DOM it rendered read back with a few string helpers.
//!
//! Design: one `chromium --headless --dump-dom --screenshot` run per page, with
//! `--virtual-time-budget`. Virtual time fires the page's 1 s poll timer as soon as the
//! previous fetch is answered (a pending fetch holds virtual time), so the budget buys
//! that many real polls of the real processes without sleeping; the DOM is dumped and
//! the 1400×1000 screenshot taken after them. Needs `mod procs` (common/procs.rs) beside it.
#![allow(dead_code)]

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs::scratch;

/// Virtual time Chromium gives the page: about this many polls.
pub const BUDGET_MS: u32 = 6000;
/// Real time one Chromium run may take (generous: the machine is shared).
pub const CHROMIUM_DEADLINE: Duration = Duration::from_secs(300);

/// Chromium's path (`IZYRT_CHROMIUM`, else Debian's), when it is there.
pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("IZYRT_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    path.is_file().then_some(path)
}

/// What Chromium rendered of one page: the DOM after the budget and the screenshot's path.
pub struct Rendered {
    pub dom: String,
    pub png: PathBuf,
}

/// Loads `http://ADDR/` in headless Chromium at 1400×1000 with a fresh profile.
pub fn render(chrome: &Path, addr: SocketAddr, name: &str) -> Rendered {
    let dir = scratch(&format!("dashboard-{name}"));
    let profile = dir.join("profile");
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let png = dir.join(format!("{name}.png"));
    let _ = std::fs::remove_file(&png);
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={BUDGET_MS}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--dump-dom")
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let dom = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > CHROMIUM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium on {name} ran past {CHROMIUM_DEADLINE:?}:\n{}",
                log.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (dom, log) = (dom.join().unwrap(), log.join().unwrap());
    assert!(
        status.success() && dom.contains("</html>"),
        "chromium on {name}: {status}\n{log}"
    );
    eprintln!(
        "dashboard_browser: {name} page rendered in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Rendered { dom, png }
}

/// The first element `<tag …>…</tag>` whose opening tag contains `needle`.
pub fn element<'a>(dom: &'a str, tag: &str, needle: &str) -> Option<&'a str> {
    elements(dom, tag).into_iter().find(|e| {
        let open = &e[..e.find('>').unwrap_or(e.len())];
        open.contains(needle)
    })
}

/// Every element `<tag …>…</tag>` in `dom`, outermost first, nested ones included.
pub fn elements<'a>(dom: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    // An opening tag is `<tag` followed by a space or `>` (so `<tr` is not `<track`).
    let opens_at = |i: usize| {
        dom[i..].starts_with(&open)
            && matches!(dom.as_bytes().get(i + open.len()), Some(b' ' | b'>'))
    };
    let mut found = Vec::new();
    for (start, _) in dom.match_indices(&open).filter(|(i, _)| opens_at(*i)) {
        let mut depth = 0usize;
        let mut i = start;
        while i < dom.len() {
            if opens_at(i) {
                depth += 1;
                i += open.len();
            } else if dom[i..].starts_with(&close) {
                depth -= 1;
                i += close.len();
                if depth == 0 {
                    found.push(&dom[start..i]);
                    break;
                }
            } else {
                i += dom[i..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    found
}

/// The text of an HTML fragment: tags dropped, the entities the DOM dump uses decoded.
pub fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in the opening tag of `element`.
pub fn attr<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    let open = &element[..element.find('>')?];
    let key = format!(" {name}=\"");
    let at = open.find(&key)? + key.len();
    open[at..].split('"').next()
}

/// The `<html>` opening tag.
pub fn html_tag(dom: &str) -> &str {
    let at = dom.find("<html").expect("an <html> element");
    &dom[at..at + dom[at..].find('>').unwrap() + 1]
}
