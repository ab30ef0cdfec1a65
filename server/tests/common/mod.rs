//! What the HTTP test binaries share: a real server on an ephemeral port with a manual clock,
//! and a browser (cookie jar, our Origin on every change, no automatic redirects).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod idp;
pub mod mmdb;
pub mod oidc;
pub mod passkey;

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_core::clock::ManualClock;
use gatehouse_core::store::testing::fresh_sqlite_url;
use gatehouse_core::store::Store;
use gatehouse_server::config::Config;
use gatehouse_server::{build_state, http, AppState};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::StatusCode;

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    /// A pool of the test's own on the server's database: what tests read and arrange
    /// directly, beside the server (the server itself reaches it only through its core).
    pub store: Store,
}

/// The configuration of a test server on `port`: its own data folder, no built site, and the
/// loopback trusted as a proxy so tests can set the client address with `X-Forwarded-For`.
pub fn test_config(port: u16, database_url: String) -> Config {
    test_config_with(port, database_url, &[])
}

/// [`test_config`] with more settings.
pub fn test_config_with(
    port: u16,
    database_url: String,
    extra: &[(&'static str, String)],
) -> Config {
    let data_dir =
        std::env::temp_dir().join(format!("gatehouse-http-{port}-{}", std::process::id()));
    let vars: HashMap<&str, String> = HashMap::from([
        ("GATEHOUSE_DATABASE_URL", database_url),
        ("GATEHOUSE_PUBLIC_URL", format!("http://localhost:{port}")),
        ("GATEHOUSE_DATA_DIR", data_dir.display().to_string()),
        ("GATEHOUSE_SITE_ROOT", "/nonexistent".to_string()),
        ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1/32".to_string()),
    ]);
    let mut vars = vars;
    vars.extend(extra.iter().cloned());
    Config::load(None, &move |k| vars.get(k).cloned()).unwrap()
}

/// A server that runs until its `stop` sender fires; `handle` ends when it has drained.
pub struct StoppableServer {
    pub base: String,
    pub store: gatehouse_core::store::Store,
    pub stop: tokio::sync::oneshot::Sender<()>,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub async fn stoppable_server(database_url: String) -> StoppableServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let state = build_state(
        test_config(port, database_url.clone()),
        Arc::new(ManualClock::default()),
    )
    .await
    .unwrap();
    let store = Store::connect(&database_url, 4).await.unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(http::serve(listener, state, async move {
        let _ = stop_rx.await;
    }));
    StoppableServer {
        base: format!("http://localhost:{port}"),
        store,
        stop,
        handle,
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(fresh_sqlite_url()).await
    }

    pub async fn start_with(database_url: String) -> Self {
        Self::start_configured(database_url, &[]).await
    }

    /// A server on SQLite with more settings.
    pub async fn start_with_settings(extra: &[(&'static str, String)]) -> Self {
        Self::start_configured(fresh_sqlite_url(), extra).await
    }

    /// A server on `database_url` (another instance's, say) with more settings.
    pub async fn start_configured(database_url: String, extra: &[(&'static str, String)]) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let clock = Arc::new(ManualClock::default());
        let state = build_state(
            test_config_with(port, database_url.clone(), extra),
            clock.clone(),
        )
        .await
        .unwrap();
        let store = Store::connect(&database_url, 4).await.unwrap();
        let serving = state.clone();
        tokio::spawn(async move { http::serve(listener, serving, std::future::pending()).await });
        TestServer {
            base: format!("http://localhost:{port}"),
            state,
            clock,
            store,
        }
    }

    /// The account with this email (it must exist).
    pub async fn user(&self, email: &str) -> gatehouse_core::store::User {
        self.store
            .find_user_by_email(email)
            .await
            .unwrap()
            .expect("the account exists")
    }

    /// The live sessions of the account with this email.
    pub async fn sessions_of(&self, email: &str) -> Vec<gatehouse_core::store::Session> {
        let user = self.user(email).await;
        self.state
            .identity
            .list_sessions(&user.id, self.state.now())
            .await
            .unwrap()
    }

    /// The audit-log actions about the account with this email, newest first.
    pub async fn audit_actions(&self, email: &str) -> Vec<String> {
        let user = self.user(email).await;
        self.store
            .audit_for_user(&user.id, 50)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect()
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base, "203.0.113.10")
    }

    /// The newest 6-digit code sent to `email`.
    pub async fn last_code(&self, email: &str) -> String {
        let messages = self.store.messages_for(email).await.unwrap();
        let subject = &messages.first().expect("a message was sent").subject;
        subject.split_whitespace().next().unwrap().to_string()
    }

    pub async fn message_count(&self, email: &str) -> usize {
        self.store.messages_for(email).await.unwrap().len()
    }

    pub async fn counts(&self) -> Vec<(String, i64)> {
        self.store.table_counts().await.unwrap()
    }

    /// Signs up `email` with a password, gives the account the admin role, and returns its
    /// signed-in browser.
    pub async fn admin_browser(&self, name: &str, email: &str) -> Browser {
        let b = self.signed_up(name, email, PASSWORD).await;
        let user = self.user(email).await;
        self.store
            .set_admin(&user.id, true, self.state.now())
            .await
            .unwrap();
        b
    }

    /// Signs up `email` with a password through the pages and returns the signed-in browser.
    pub async fn signed_up(&self, name: &str, email: &str, password: &str) -> Browser {
        let mut b = self.browser();
        let r = b
            .post(
                "/sign-up",
                &[("name", name), ("email", email), ("password", password)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let code = self.last_code(email).await;
        let r = b.post("/code", &[("code", &code)]).await;
        assert_eq!(r.location(), Some("/account"), "{}", r.body);
        b
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    }

    /// The body with per-response nonces blanked, for byte-for-byte comparisons.
    pub fn body_without_nonces(&self) -> String {
        without_nonces(&self.body)
    }
}

/// `html` with the per-response nonces blanked (random text that may spell anything).
pub fn without_nonces(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(i) = rest.find("nonce=\"") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let end = rest.find('"').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A browser: a cookie jar, our Origin on every request, no automatic redirects.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub cookies: HashMap<String, String>,
    pub forwarded_for: String,
}

impl Browser {
    pub fn new(base: &str, ip: &str) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/156.0 Safari/537.36")
            .build()
            .unwrap();
        Browser {
            client,
            base: base.into(),
            cookies: HashMap::new(),
            forwarded_for: ip.into(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Reply {
        let req = req
            .header("cookie", self.cookie_header())
            .header("x-forwarded-for", &self.forwarded_for);
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for c in headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), v.to_string());
                }
            }
        }
        let body = resp.text().await.unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let req = self.client.get(format!("{}{}", self.base, path));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let req = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("origin", self.base.clone())
            .form(form);
        self.send(req).await
    }

    /// A JSON POST from our origin, as the passkey island sends it.
    pub async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Reply {
        let req = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("origin", self.base.clone())
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(req).await
    }

    /// The body of a JSON reply.
    /// Posts the password sign-in form.
    pub async fn sign_in_with_password(&mut self, email: &str, password: &str) -> Reply {
        self.post("/sign-in", &[("email", email), ("password", password)])
            .await
    }

    /// Signs in with a password on an account that has a second factor, and completes the
    /// sign-in with `code`; the answer is the second step's.
    pub async fn sign_in_with_second_factor(
        &mut self,
        email: &str,
        password: &str,
        code: &str,
    ) -> Reply {
        let r = self.sign_in_with_password(email, password).await;
        assert_eq!(
            r.location(),
            Some("/sign-in/verify"),
            "the password leads to the second factor"
        );
        self.post("/sign-in/verify", &[("code", code)]).await
    }

    pub fn json(reply: &Reply) -> serde_json::Value {
        serde_json::from_str(&reply.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn session_cookie(&self) -> Option<String> {
        self.cookies.get("__Host-gh_session").cloned()
    }
}

pub const PASSWORD: &str = "violet-harbor-lantern-42";

/// Runs the `gatehouse` binary with only this data folder set (and a quiet log).
pub fn gatehouse_cli(data_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(args)
        .env_clear()
        .env("GATEHOUSE_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}
