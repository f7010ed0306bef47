//! What the metrics server answers: one parsed request in, one response out (HTTP thread).
//!
//! Design: this is the seam between the connection handling ([`super::server`]: sockets,
//! deadlines, keep-alive) and the pages and figures ([`super::page`],
//! [`super::prometheus`], [`super::snapshot`]). [`route`] knows nothing of sockets and the
//! server knows nothing of pages, so either side changes without the other.

use super::page::DASHBOARD_HTML;
use super::prometheus::render_prometheus;
use super::snapshot::SnapshotCell;

/// A parsed request head: what [`route`] needs of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// `GET`, `HEAD`, ...
    pub method: &'a str,
    /// The request target (path and query).
    pub target: &'a str,
}

/// One response, before serialisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// One more header line, with its CRLF.
    pub extra_header: Option<&'static str>,
    /// The body (not sent for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            reason: "OK",
            content_type,
            extra_header: None,
            body,
        }
    }

    /// A plain-text error response saying `status reason`.
    pub fn error(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: format!("{status} {reason}\n").into_bytes(),
        }
    }

    /// The bytes on the wire: status line, headers (`Content-Length`, `Cache-Control:
    /// no-store`, `Connection: keep-alive` or `close`), then the body unless `head_only`.
    pub fn to_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: {}\r\n{}\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
            self.extra_header.unwrap_or(""),
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// The response to `req`, from the latest snapshot in `cell`.
pub fn route(req: &Request<'_>, cell: &SnapshotCell) -> Response {
    let (method, target) = (req.method, req.target);
    if method != "GET" && method != "HEAD" {
        let mut r = Response::error(405, "Method Not Allowed");
        r.extra_header = Some("Allow: GET, HEAD\r\n");
        return r;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match path {
        // The original's dashboard asks for `//service/...` (double slash): served too.
        "/service/mixeradminclient" | "//service/mixeradminclient"
            if has_param(query, "getMetrics") =>
        {
            let snapshot = cell.latest();
            match serde_json::to_vec(&*snapshot) {
                Ok(body) => Response::ok("application/json", body),
                Err(_) => Response::error(500, "Internal Server Error"),
            }
        }
        "/metrics" => Response::ok(
            "text/plain; version=0.0.4; charset=utf-8",
            render_prometheus(&cell.latest()).into_bytes(),
        ),
        "/" => Response::ok(
            "text/html; charset=utf-8",
            DASHBOARD_HTML.as_bytes().to_vec(),
        ),
        _ => Response::error(404, "Not Found"),
    }
}

/// Whether the query string has parameter `name` (`name`, `name=…`, among `&`s).
fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|p| p.split_once('=').map_or(p, |(k, _)| k) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(method: &str, target: &str, cell: &SnapshotCell) -> Response {
        route(&Request { method, target }, cell)
    }

    #[test]
    fn query_parameter_matching() {
        assert!(has_param("getMetrics", "getMetrics"));
        assert!(has_param("a=1&getMetrics=", "getMetrics"));
        assert!(!has_param("getMetricsX", "getMetrics"));
        assert!(!has_param("", "getMetrics"));
    }

    #[test]
    fn routes_and_methods() {
        let cell = SnapshotCell::default();
        assert_eq!(
            route_of("GET", "/service/mixeradminclient?getMetrics", &cell).status,
            200
        );
        assert_eq!(
            route_of("GET", "/service/mixeradminclient", &cell).status,
            404
        );
        assert_eq!(route_of("HEAD", "/metrics?x", &cell).status, 200);
        assert_eq!(
            route_of("GET", "/", &cell).content_type,
            "text/html; charset=utf-8"
        );
        assert_eq!(route_of("GET", "/nope", &cell).status, 404);
        let r = route_of("DELETE", "/", &cell);
        assert_eq!(
            (r.status, r.extra_header),
            (405, Some("Allow: GET, HEAD\r\n"))
        );
    }

    #[test]
    fn serialised_heads_say_whether_the_connection_stays() {
        let r = Response::error(404, "Not Found");
        let close = String::from_utf8(r.to_bytes(false, false)).unwrap();
        assert!(close.contains("Connection: close\r\n") && close.ends_with("404 Not Found\n"));
        let keep = String::from_utf8(r.to_bytes(true, true)).unwrap();
        assert!(keep.contains("Connection: keep-alive\r\n") && keep.ends_with("\r\n\r\n"));
    }
}
