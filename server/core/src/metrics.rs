//! Operations metrics for monitoring systems, in the Prometheus text format: sign-ins by
//! result and method, second factors by method and result, texts sent and refused, the
//! password-hashing queue, HTTP request latency per route and the database pool. Each
//! instance counts its own; a monitoring system scrapes every instance and adds them up.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The request latency buckets (seconds): from a cached page to a slow password check.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// The metrics of this instance.
pub struct Metrics {
    registry: Registry,
    sign_ins: IntCounterVec,
    second_factors: IntCounterVec,
    texts: IntCounterVec,
    hash_queue: IntGauge,
    http: HistogramVec,
    pool_size: IntGauge,
    pool_idle: IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The database pool at one moment: its connections, and how many of them are idle.
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolUse {
    pub size: u32,
    pub idle: u32,
}

fn must<T>(made: prometheus::Result<T>) -> T {
    // The names and labels below are fixed and valid, so construction cannot fail; a failure
    // is a programming error caught by the unit test.
    #[allow(clippy::expect_used)]
    made.expect("a valid metric definition")
}

/// The histogram of waits for a hashing slot, kept by the password hasher and registered
/// with the metrics of the identity core that uses it.
pub fn hash_wait_histogram() -> Histogram {
    must(Histogram::with_opts(
        HistogramOpts::new(
            "password_hash_wait_seconds",
            "Time a password check waited for a hashing slot.",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
    ))
}

impl Metrics {
    /// The metrics, with the hasher's histogram of waits among them.
    pub fn new(hash_wait: Histogram) -> Self {
        let registry = Registry::new_custom(Some("gatehouse".into()), None).unwrap_or_default();
        let sign_ins = must(IntCounterVec::new(
            Opts::new(
                "sign_ins_total",
                "Sign-in attempts logged, by result (success, failure, interrupted, blocked) and method.",
            ),
            &["result", "method"],
        ));
        let second_factors = must(IntCounterVec::new(
            Opts::new(
                "second_factors_total",
                "Second factors checked, by method and result (success, failure).",
            ),
            &["method", "result"],
        ));
        let texts = must(IntCounterVec::new(
            Opts::new(
                "texts_total",
                "Text messages by outcome (sent, refused by a cap, failed) and destination country calling code.",
            ),
            &["outcome", "country"],
        ));
        let hash_queue = must(IntGauge::new(
            "password_hash_queue",
            "Password checks waiting for a hashing slot now.",
        ));
        let http = must(HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route, method and status class.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route", "method", "status"],
        ));
        let pool_size = must(IntGauge::new(
            "db_pool_connections",
            "Database connections open in the pool.",
        ));
        let pool_idle = must(IntGauge::new(
            "db_pool_idle_connections",
            "Database connections open and idle.",
        ));
        for collector in [
            Box::new(sign_ins.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(second_factors.clone()),
            Box::new(texts.clone()),
            Box::new(hash_wait.clone()),
            Box::new(hash_queue.clone()),
            Box::new(http.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_idle.clone()),
        ] {
            must(registry.register(collector));
        }
        Metrics {
            registry,
            sign_ins,
            second_factors,
            texts,
            hash_queue,
            http,
            pool_size,
            pool_idle,
        }
    }

    pub fn sign_in(&self, result: &str, method: &str) {
        self.sign_ins.with_label_values(&[result, method]).inc();
    }

    pub fn second_factor(&self, method: &str, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.second_factors
            .with_label_values(&[method, result])
            .inc();
    }

    /// A text: `sent`, `refused` (a cap) or `failed`, to a country calling code (`44`).
    pub fn text(&self, outcome: &str, country: &str) {
        self.texts.with_label_values(&[outcome, country]).inc();
    }

    /// One answered HTTP request: its route pattern (`/admin/users/{id}`), method, status.
    pub fn http_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http
            .with_label_values(&[route, method, class])
            .observe(seconds);
    }

    /// The text format of every metric, with the gauges read now.
    pub fn encode(&self, hash_queue: usize, pool: PoolUse) -> String {
        self.hash_queue
            .set(i64::try_from(hash_queue).unwrap_or(i64::MAX));
        self.pool_size.set(i64::from(pool.size));
        self.pool_idle.set(i64::from(pool.idle));
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_named_and_counts() {
        let waits = hash_wait_histogram();
        waits.observe(0.002);
        let m = Metrics::new(waits);
        m.sign_in("success", "password");
        m.sign_in("success", "password");
        m.second_factor("totp", false);
        m.text("refused", "44");
        m.http_request("/sign-in", "POST", 303, 0.004);
        let text = m.encode(3, PoolUse { size: 4, idle: 1 });
        assert!(
            text.contains("gatehouse_sign_ins_total{method=\"password\",result=\"success\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_second_factors_total{method=\"totp\",result=\"failure\"} 1")
        );
        assert!(text.contains("gatehouse_texts_total{country=\"44\",outcome=\"refused\"} 1"));
        assert!(text.contains("gatehouse_password_hash_queue 3"));
        assert!(
            text.contains("gatehouse_password_hash_wait_seconds_count 1"),
            "{text}"
        );
        assert!(text.contains("gatehouse_db_pool_idle_connections 1"));
        assert!(text.contains("gatehouse_http_request_duration_seconds_bucket{method=\"POST\",route=\"/sign-in\",status=\"3xx\",le=\"0.005\"} 1"), "{text}");
    }
}
