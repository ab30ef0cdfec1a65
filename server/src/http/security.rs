//! Request security at the edge: same-origin enforcement for every state-changing request,
//! security headers on every response, and the client IP as seen through trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{HeaderName, HeaderValue, CONTENT_SECURITY_POLICY};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

use crate::AppState;

/// Refuses any request that may change state unless it comes from our own origin: a browser's
/// `Sec-Fetch-Site: same-origin`, or else an `Origin` header equal to the public origin. A
/// cross-site form post therefore cannot sign anyone in or out. Server functions are covered
/// too, since they are POST routes of the same router.
pub async fn require_same_origin(
    State(guard): State<Guard>,
    request: Request,
    next: Next,
) -> Response {
    if is_safe_method(request.method())
        || is_same_origin(request.headers(), &guard.state.config.public_origin)
        || guard.access(request.uri().path()) != Access::OwnPages
    {
        return next.run(request).await;
    }
    tracing::info!(method = %request.method(), path = %request.uri().path(), "refused a cross-origin request");
    (StatusCode::FORBIDDEN, "Cross-origin request refused.").into_response()
}

/// The device id given to a browser that had none, for this request's handlers.
#[derive(Debug, Clone)]
pub struct NewDevice(pub String);

/// Gives every browser a device cookie (a random id) the first time it asks for one of our
/// pages or forms. The OAuth endpoints applications call, and static files, get none.
pub async fn device_cookie(
    State(guard): State<Guard>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let exempt = path.starts_with("/pkg/")
        || path.starts_with("/.well-known/")
        || guard.access(path) == Access::Applications
        || path == "/healthz";
    let policy = crate::http::cookies::CookiePolicy {
        secure: guard.state.config.secure_cookies(),
    };
    if exempt
        || policy
            .read(request.headers(), crate::http::cookies::DEVICE)
            .is_some()
    {
        return next.run(request).await;
    }
    let id = gatehouse_core::tokens::random_id();
    request.extensions_mut().insert(NewDevice(id.clone()));
    let mut response = next.run(request).await;
    response.headers_mut().append(
        axum::http::header::SET_COOKIE,
        policy.set(
            crate::http::cookies::DEVICE,
            &id,
            Some(crate::http::cookies::DEVICE_MAX_AGE_S),
        ),
    );
    response
}

/// Who may send a route's state-changing requests: a flag of each entry of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only our own pages (same origin). Every route is this unless its entry says otherwise.
    OwnPages,
    /// Posts that arrive from other sites by design and act on no browser cookie alone: a
    /// provider's `response_mode=form_post` answer (its handler only redirects to the GET of
    /// the callback, which checks the browser's own cookie and the `state`), and an
    /// application's authorization request (the same as its GET, validated against the
    /// registered client).
    CrossSite,
    /// The OAuth endpoints applications call with their own credentials or tokens, from any
    /// site; browsers get no device cookie there.
    Applications,
}

/// What the edge's guards know: the state, and the routes that are not [`Access::OwnPages`]
/// (from the route table).
#[derive(Clone)]
pub struct Guard {
    pub state: AppState,
    pub access: std::sync::Arc<std::collections::HashMap<&'static str, Access>>,
}

impl Guard {
    pub fn access(&self, path: &str) -> Access {
        self.access.get(path).copied().unwrap_or(Access::OwnPages)
    }
}

pub fn is_safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub fn is_same_origin(headers: &HeaderMap, public_origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    match headers.get(axum::http::header::ORIGIN) {
        Some(origin) => origin
            .to_str()
            .map(|o| o.eq_ignore_ascii_case(public_origin))
            .unwrap_or(false),
        None => false,
    }
}

const ALWAYS_HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Headers every response carries. Pages set their own nonce-based CSP; everything else gets a
/// CSP that allows nothing. Served over https, browsers are told to use nothing else for a year
/// (HSTS); on plain http the header would mean nothing and is left out.
pub async fn security_headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if state.config.public_origin.starts_with("https://") {
        h.insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    for (name, value) in ALWAYS_HEADERS {
        h.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if !h.contains_key(CONTENT_SECURITY_POLICY) {
        h.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    response
}

/// The CSP of an HTML page rendered with `nonce`.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self' 'nonce-{nonce}'; \
         img-src 'self' https: data:; font-src 'self'; connect-src 'self'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
}

/// The client's IP: the peer address, unless the peer is a trusted proxy; then the
/// `X-Forwarded-For` chain is walked from the right for as long as the hops are trusted proxies.
/// An entry that cannot be read stops the walk at the last trusted hop: nothing to its left was
/// written by anyone we trust.
///
/// Every address is canonical first: an IPv4 client reaching a listener on `[::]` arrives as
/// `::ffff:a.b.c.d`, and is the IPv4 address `a.b.c.d` for proxies, throttles and logs alike.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.to_canonical();
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut current = peer;
    for entry in entries.iter().rev() {
        if !is_trusted(&current) {
            return current;
        }
        match parse_forwarded_ip(entry) {
            Some(ip) => current = ip.to_canonical(),
            None => return current,
        }
    }
    current
}

/// An address as proxies write it: `203.0.113.9`, `203.0.113.9:4711`, `2001:db8::1` or
/// `[2001:db8::1]:4711`.
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    match entry.split_once(':') {
        Some((ip, port)) if port.bytes().all(|b| b.is_ascii_digit()) => ip.parse().ok(),
        _ => None,
    }
}

/// The peer address of a request (from the listener's connect info).
pub fn peer_ip(request_extensions: &axum::http::Extensions) -> IpAddr {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_rules() {
        let origin = "http://localhost:3000";
        let mut h = HeaderMap::new();
        assert!(
            !is_same_origin(&h, origin),
            "no Origin and no Sec-Fetch-Site is refused"
        );
        h.insert("origin", HeaderValue::from_static("http://localhost:3000"));
        assert!(is_same_origin(&h, origin));
        h.insert("origin", HeaderValue::from_static("http://evil.test"));
        assert!(!is_same_origin(&h, origin));
        h.insert("origin", HeaderValue::from_static("null"));
        assert!(!is_same_origin(&h, origin));
        let mut s = HeaderMap::new();
        s.insert("origin", HeaderValue::from_static("http://localhost:3000"));
        s.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(
            !is_same_origin(&s, origin),
            "the browser's own verdict wins"
        );
        s.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(is_same_origin(&s, origin));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.9, 198.51.100.7, 10.1.1.1"),
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(outsider, &h, &trusted), outsider);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
        // Ports and brackets as some proxies write them.
        let mut p = HeaderMap::new();
        p.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, 203.0.113.9:4711"),
        );
        assert_eq!(
            client_ip(proxy, &p, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        p.insert(
            "x-forwarded-for",
            HeaderValue::from_static("[2001:db8::7]:443"),
        );
        assert_eq!(
            client_ip(proxy, &p, &trusted),
            "2001:db8::7".parse::<IpAddr>().unwrap()
        );
        // An unreadable hop stops the walk: the client-written part to its left is never used.
        let mut bad = HeaderMap::new();
        bad.insert(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.1, garbage"),
        );
        assert_eq!(client_ip(proxy, &bad, &trusted), proxy);
    }

    #[test]
    fn ipv4_mapped_addresses_are_their_ipv4_address_everywhere() {
        // A dual-stack listener on [::] sees IPv4 clients (and proxies) as ::ffff:a.b.c.d.
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        let mapped_proxy: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("::ffff:198.51.100.7"),
        );
        assert_eq!(
            client_ip(mapped_proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap(),
            "the mapped proxy is trusted and the mapped client is IPv4"
        );
        let mapped_client: IpAddr = "::ffff:203.0.113.5".parse().unwrap();
        assert_eq!(
            client_ip(mapped_client, &HeaderMap::new(), &trusted),
            "203.0.113.5".parse::<IpAddr>().unwrap()
        );
        // Two IPv4 clients never share one throttle bucket through their mapped form.
        use gatehouse_core::identity::ip_key;
        assert_eq!(ip_key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_ne!(ip_key("::ffff:198.51.100.7"), ip_key("::ffff:198.51.100.8"));
        assert_eq!(ip_key("2001:db8:1:2:3::9"), "2001:db8:1:2::/64");
    }
}
