//! Webhooks for Identity Protection's events: the event types, the payloads (OCSF 1.3.0
//! records in a Standard Webhooks envelope), the Standard Webhooks signature and the retry
//! schedule. Pure functions over plain data; the identity core reads the rows and the server
//! sends the requests.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::risk::{DetectionKind, RiskState};
use crate::secret::SecretString;
use crate::store::{
    DetectionRecord, RiskStateChange, SignInLogEntry, EVENT_DETECTION_CREATED,
    EVENT_DETECTION_STATE_CHANGED, EVENT_RISKY_SIGN_IN, EVENT_TEST,
};

/// The events an endpoint may receive, with what they are in words.
pub const EVENT_TYPES: [(&str, &str); 3] = [
    (
        EVENT_DETECTION_CREATED,
        "A new risk detection (OCSF Detection Finding, activity Create)",
    ),
    (
        EVENT_DETECTION_STATE_CHANGED,
        "A detection was remediated, dismissed, confirmed safe or confirmed compromised \
         (OCSF Detection Finding, activity Update or Close)",
    ),
    (
        EVENT_RISKY_SIGN_IN,
        "A sign-in assessed at low, medium or high risk (OCSF Authentication)",
    ),
];

/// Whether `t` is an event type an endpoint can subscribe to.
pub fn is_event_type(t: &str) -> bool {
    EVENT_TYPES.iter().any(|(name, _)| *name == t)
}

/// Events are retried for this long after they happened, then given up.
pub const RETRY_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// After a rotation the previous secret signs too, for this long.
pub const PREVIOUS_SECRET_MS: i64 = 24 * 60 * 60 * 1000;
/// The first retry comes this long after the first failure; each further one waits twice as
/// long, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: i64 = 30 * 1000;
pub const MAX_RETRY_DELAY_MS: i64 = 4 * 60 * 60 * 1000;

/// How long to wait after the `failed`-th failed attempt (1 for the first).
pub fn retry_delay_ms(failed: i64) -> i64 {
    let doublings = (failed.max(1) - 1).min(20) as u32;
    FIRST_RETRY_DELAY_MS
        .saturating_mul(1i64 << doublings)
        .min(MAX_RETRY_DELAY_MS)
}

/// When to try an event created at `created_at` again after its `failed`-th failure at
/// `now`; none once its retry window has passed (the delivery is given up).
pub fn next_attempt_at(created_at: i64, now: i64, failed: i64) -> Option<i64> {
    let deadline = created_at.saturating_add(RETRY_WINDOW_MS);
    if now >= deadline {
        return None;
    }
    Some(now.saturating_add(retry_delay_ms(failed)).min(deadline))
}

/// A new signing secret: `whsec_` and 32 random bytes in base64, the Standard Webhooks form.
pub fn new_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    SecretString::new(format!("whsec_{}", STANDARD.encode(bytes)))
}

/// The `v1,` signature of one delivery: HMAC-SHA256 under the secret's bytes over
/// `id.timestamp.body`, in base64. None if the secret is not in the `whsec_` form.
pub fn sign(secret: &SecretString, id: &str, timestamp_s: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.expose().strip_prefix("whsec_")?)
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: the signature under each secret, separated by spaces.
pub fn signature_header(
    secrets: &[&SecretString],
    id: &str,
    timestamp_s: i64,
    body: &[u8],
) -> Option<String> {
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| sign(s, id, timestamp_s, body))
        .collect::<Option<_>>()?;
    Some(signatures.join(" "))
}

/// Whether `header` holds a valid signature of the delivery under `secret` (what a receiver
/// checks; used by the tests and the documentation's example).
pub fn verify(
    secret: &SecretString,
    id: &str,
    timestamp_s: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(expected) = sign(secret, id, timestamp_s, body) else {
        return false;
    };
    header.split(' ').any(|candidate| {
        use subtle::ConstantTimeEq;
        candidate.as_bytes().ct_eq(expected.as_bytes()).into()
    })
}

/// The Standard Webhooks envelope: the event type, when it happened (RFC 3339) and its data.
pub fn envelope(event_type: &str, occurred_at_ms: i64, data: Value) -> Value {
    json!({
        "type": event_type,
        "timestamp": rfc3339(occurred_at_ms),
        "data": data,
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The OCSF schema version of the records.
pub const OCSF_VERSION: &str = "1.3.0";

fn metadata(uid: &str, logged_ms: i64) -> Value {
    json!({
        "version": OCSF_VERSION,
        "uid": uid,
        "logged_time": logged_ms,
        "product": {
            "name": "Gatehouse",
            "vendor_name": "Gatehouse",
            "version": env!("CARGO_PKG_VERSION"),
        },
    })
}

/// OCSF `severity_id` (and its caption) of a risk level: low 2, medium 3, high 4.
fn severity(level: &str) -> (u8, &'static str) {
    match level {
        "low" => (2, "Low"),
        "medium" => (3, "Medium"),
        "high" => (4, "High"),
        _ => (1, "Informational"),
    }
}

/// OCSF `risk_level_id` (and caption): none 0 Info, low 1, medium 2, high 3.
fn risk_level(level: &str) -> (u8, &'static str) {
    match level {
        "low" => (1, "Low"),
        "medium" => (2, "Medium"),
        "high" => (3, "High"),
        _ => (0, "Info"),
    }
}

/// OCSF finding `status_id` (and caption) of a risk state.
fn finding_status(state: &str) -> (u8, &'static str) {
    match RiskState::parse(state) {
        Some(RiskState::AtRisk) => (1, "New"),
        Some(RiskState::ConfirmedCompromised) => (2, "In Progress"),
        Some(RiskState::Dismissed) => (3, "Suppressed"),
        Some(RiskState::Remediated | RiskState::ConfirmedSafe) => (4, "Resolved"),
        None => (99, "Other"),
    }
}

/// Where a sign-in came from, as an OCSF network endpoint.
fn src_endpoint(s: &SignInLogEntry) -> Value {
    let mut endpoint = json!({ "ip": s.client_ip });
    let mut location = serde_json::Map::new();
    if let Some(c) = &s.country {
        location.insert("country".into(), json!(c));
    }
    if let Some(c) = &s.city {
        location.insert("city".into(), json!(c));
    }
    if let (Some(lat), Some(lon)) = (s.latitude_e6, s.longitude_e6) {
        location.insert("lat".into(), json!(lat as f64 / 1e6));
        location.insert("long".into(), json!(lon as f64 / 1e6));
    }
    if !location.is_empty() {
        endpoint["location"] = Value::Object(location);
    }
    if let Some(asn) = s.asn {
        endpoint["autonomous_system"] = json!({ "number": asn });
    }
    endpoint
}

fn user(user_id: &str, email: Option<&str>) -> Value {
    let mut u = json!({ "uid": user_id, "type_id": 1, "type": "User" });
    if let Some(email) = email.filter(|e| !e.is_empty()) {
        u["email_addr"] = json!(email);
        u["name"] = json!(email);
    }
    u
}

/// What a detection event tells: the detection, the change of state that is the event (its
/// first state for a new detection), the account's email and the sign-in it came from.
#[derive(Debug, Clone, Copy)]
pub struct FindingEvent<'a> {
    pub detection: &'a DetectionRecord,
    pub change: &'a RiskStateChange,
    pub email: Option<&'a str>,
    pub sign_in: Option<&'a SignInLogEntry>,
    /// Whether the change is the detection's first state (`risk_detection.created`).
    pub created: bool,
}

/// A detection event as an OCSF Detection Finding (class 2004): activity Create for its first
/// state, Close for a change that leaves it no longer at risk, Update for any other change.
pub fn detection_finding(e: FindingEvent<'_>) -> Value {
    let d = e.detection;
    let closed = RiskState::parse(&e.change.state).is_some_and(|s| !s.is_open());
    let (activity_id, activity) = if e.created {
        (1u8, "Create")
    } else if closed {
        (3, "Close")
    } else {
        (2, "Update")
    };
    let (severity_id, severity_name) = severity(&d.level);
    let (risk_id, risk_name) = risk_level(&d.level);
    let (status_id, status) = finding_status(&e.change.state);
    let title: &str = match DetectionKind::parse(&d.kind) {
        Some(kind) => kind.label(),
        None => &d.kind,
    };
    let mut evidence = json!({
        "data": serde_json::from_str::<Value>(&d.evidence).unwrap_or(Value::Null),
        "user": user(&d.user_id, e.email),
    });
    if let Some(s) = e.sign_in {
        evidence["src_endpoint"] = src_endpoint(s);
        if !s.user_agent.is_empty() {
            evidence["http_request"] = json!({ "user_agent": s.user_agent });
        }
    }
    json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": 200400 + u32::from(activity_id),
        "type_name": format!("Detection Finding: {activity}"),
        "time": e.change.changed_at,
        "severity_id": severity_id,
        "severity": severity_name,
        "risk_level_id": risk_id,
        "risk_level": risk_name,
        "status_id": status_id,
        "status": status,
        "message": d.summary,
        "finding_info": {
            "uid": d.id,
            "title": title,
            "desc": d.summary,
            "types": [d.kind],
            "created_time": d.detected_at,
            "first_seen_time": d.detected_at,
            "last_seen_time": d.detected_at,
            "analytic": {
                "uid": d.kind,
                "name": title,
                "type_id": 1,
                "type": "Rule",
            },
        },
        "evidences": [evidence],
        "metadata": metadata(&e.change.id, e.change.changed_at),
        "unmapped": {
            "gatehouse": {
                "detection_id": d.id,
                "kind": d.kind,
                "level": d.level,
                "timing": d.timing,
                "state": e.change.state,
                "reason": e.change.reason,
                "changed_by": e.change.changed_by,
                "sign_in_id": d.sign_in_id,
            },
        },
    })
}

/// A sign-in log row as an OCSF Authentication event (class 3002, activity Logon). The
/// session's id is never in it.
pub fn authentication(s: &SignInLogEntry) -> Value {
    let (status_id, status) = match s.result.as_str() {
        "success" => (1u8, "Success"),
        "failure" => (2, "Failure"),
        _ => (99, "Other"),
    };
    let level = s.risk_level.as_deref().unwrap_or("none");
    let (severity_id, severity_name) = severity(level);
    let (risk_id, risk_name) = risk_level(level);
    let mut event = json!({
        "class_uid": 3002,
        "class_name": "Authentication",
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "activity_id": 1,
        "activity_name": "Logon",
        "type_uid": 300201,
        "type_name": "Authentication: Logon",
        "time": s.occurred_at,
        "severity_id": severity_id,
        "severity": severity_name,
        "risk_level_id": risk_id,
        "risk_level": risk_name,
        "status_id": status_id,
        "status": status,
        "auth_protocol_id": 99,
        "auth_protocol": s.method,
        "src_endpoint": src_endpoint(s),
        "service": { "name": s.application },
        "metadata": metadata(&s.id, s.occurred_at),
        "unmapped": {
            "gatehouse": {
                "sign_in_id": s.id,
                "result": s.result,
                "browser": s.browser,
                "os": s.os,
                "policies": s
                    .policies
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p).ok()),
            },
        },
    });
    if let Some(reason) = &s.failure_reason {
        event["status_detail"] = json!(reason);
    }
    if !s.user_agent.is_empty() {
        event["http_request"] = json!({ "user_agent": s.user_agent });
    }
    match &s.user_id {
        Some(id) => event["user"] = user(id, Some(&s.email)),
        None if !s.email.is_empty() => event["user"] = json!({ "name": s.email }),
        None => {}
    }
    event
}

/// The data of a test event an admin sends.
pub fn test_data(endpoint_id: &str) -> Value {
    json!({
        "message": "A test event from Gatehouse: this endpoint receives and verifies webhooks.",
        "endpoint_id": endpoint_id,
    })
}

/// The type of a test event.
pub const TEST_EVENT: &str = EVENT_TEST;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_the_standard_webhooks_vector() {
        let secret = SecretString::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let body = br#"{"test": 2432232314}"#;
        let sig = sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
            &sig
        ));
        // Any change of id, time or body breaks it.
        assert!(!verify(&secret, "msg_other", 1614265330, body, &sig));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265331,
            body,
            &sig
        ));
        assert!(!verify(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b"{}",
            &sig
        ));
        // A secret not in the whsec_ form signs nothing.
        assert!(sign(&SecretString::new("MfKQ9r8G"), "m", 1, body).is_none());
    }

    #[test]
    fn after_a_rotation_both_secrets_sign_and_either_verifies() {
        let (old, new) = (new_secret(), new_secret());
        assert!(old.expose().starts_with("whsec_"));
        assert_ne!(old.expose(), new.expose());
        let header = signature_header(&[&new, &old], "evt", 10, b"body").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&new, "evt", 10, b"body", &header));
        assert!(verify(&old, "evt", 10, b"body", &header));
        assert!(!verify(&new_secret(), "evt", 10, b"body", &header));
    }

    #[test]
    fn retries_back_off_exponentially_and_stop_after_a_day() {
        let delays: Vec<i64> = (1..=12).map(retry_delay_ms).collect();
        assert_eq!(delays[0], 30_000);
        assert_eq!(delays[1], 60_000);
        assert_eq!(delays[2], 120_000);
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*delays.last().unwrap(), MAX_RETRY_DELAY_MS);
        assert_eq!(retry_delay_ms(10_000), MAX_RETRY_DELAY_MS);
        // The schedule never passes the end of the window, and ends there.
        let created = 1_000_000;
        assert_eq!(next_attempt_at(created, created, 1), Some(created + 30_000));
        let late = created + RETRY_WINDOW_MS - 1_000;
        assert_eq!(
            next_attempt_at(created, late, 9),
            Some(created + RETRY_WINDOW_MS)
        );
        assert_eq!(next_attempt_at(created, created + RETRY_WINDOW_MS, 9), None);
        // Failing at every scheduled time ends within the day, in a bounded number of tries.
        let (mut now, mut failed) = (created, 0);
        while let Some(next) = next_attempt_at(created, now, failed + 1) {
            failed += 1;
            assert!(next > now);
            now = next;
        }
        assert!(now <= created + RETRY_WINDOW_MS);
        assert!((10..=20).contains(&failed), "{failed} attempts");
    }

    fn detection(level: &str) -> DetectionRecord {
        DetectionRecord {
            id: "det1".into(),
            user_id: "u1".into(),
            sign_in_id: Some("s1".into()),
            kind: "atypical-travel".into(),
            level: level.into(),
            timing: "real-time".into(),
            detected_at: 1_700_000_000_000,
            state: "dismissed".into(),
            evidence: r#"{"km":16960}"#.into(),
            summary: "Sydney, AU 2 h after Paris, FR".into(),
            updated_at: 1_700_000_100_000,
        }
    }

    fn change(state: &str, at: i64, reason: &str) -> RiskStateChange {
        RiskStateChange {
            id: "chg1".into(),
            user_id: "u1".into(),
            detection_id: "det1".into(),
            state: state.into(),
            changed_by: None,
            changed_at: at,
            reason: reason.into(),
        }
    }

    fn sign_in(result: &str, risk: Option<&str>) -> SignInLogEntry {
        SignInLogEntry {
            id: "s1".into(),
            occurred_at: 1_700_000_000_000,
            user_id: Some("u1".into()),
            email: "ada@example.com".into(),
            application: "shop".into(),
            client_ip: "203.0.113.9".into(),
            user_agent: "Firefox".into(),
            method: "password".into(),
            result: result.into(),
            failure_reason: None,
            session_id: Some("secret-session-id".into()),
            policies: None,
            country: Some("AU".into()),
            city: Some("Sydney".into()),
            latitude_e6: Some(-33_868_800),
            longitude_e6: Some(151_209_300),
            accuracy_km: Some(20),
            asn: Some(64_500),
            browser: Some("Firefox".into()),
            os: Some("Linux".into()),
            device: None,
            risk_level: risk.map(str::to_string),
        }
    }

    #[test]
    fn a_new_detection_is_an_ocsf_detection_finding_create() {
        let d = detection("high");
        let c = change("at-risk", d.detected_at, "detected at sign-in");
        let s = sign_in("success", Some("high"));
        let v = detection_finding(FindingEvent {
            detection: &d,
            change: &c,
            email: Some("ada@example.com"),
            sign_in: Some(&s),
            created: true,
        });
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 4);
        assert_eq!(v["risk_level_id"], 3);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["finding_info"]["uid"], "det1");
        assert_eq!(v["finding_info"]["title"], "Atypical travel");
        assert_eq!(v["finding_info"]["types"][0], "atypical-travel");
        assert_eq!(v["evidences"][0]["data"]["km"], 16960);
        assert_eq!(v["evidences"][0]["user"]["email_addr"], "ada@example.com");
        assert_eq!(v["evidences"][0]["src_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(
            v["evidences"][0]["src_endpoint"]["location"]["city"],
            "Sydney"
        );
        assert_eq!(
            v["evidences"][0]["src_endpoint"]["autonomous_system"]["number"],
            64500
        );
        assert_eq!(v["metadata"]["version"], "1.3.0");
        assert_eq!(v["metadata"]["uid"], "chg1");
        assert!(!v.to_string().contains("secret-session-id"));
    }

    #[test]
    fn state_changes_map_to_update_and_close_with_their_status() {
        let d = detection("medium");
        let at = d.detected_at + 5_000;
        let cases = [
            ("confirmed-compromised", 2, 2, "In Progress"),
            ("dismissed", 3, 3, "Suppressed"),
            ("confirmed-safe", 3, 4, "Resolved"),
            ("remediated", 3, 4, "Resolved"),
            ("at-risk", 2, 1, "New"),
        ];
        for (state, activity, status, caption) in cases {
            let c = change(state, at, "an admin acted");
            let v = detection_finding(FindingEvent {
                detection: &d,
                change: &c,
                email: None,
                sign_in: None,
                created: false,
            });
            assert_eq!(v["activity_id"], activity, "{state}");
            assert_eq!(v["type_uid"], 200400 + activity, "{state}");
            assert_eq!(v["status_id"], status, "{state}");
            assert_eq!(v["status"], caption, "{state}");
            assert_eq!(v["severity_id"], 3);
            assert_eq!(v["time"], at);
            assert!(v["evidences"][0].get("src_endpoint").is_none());
            assert!(v["evidences"][0]["user"].get("email_addr").is_none());
        }
    }

    #[test]
    fn a_risky_sign_in_is_an_ocsf_authentication_logon_without_its_session() {
        let v = authentication(&sign_in("success", Some("medium")));
        assert_eq!(v["class_uid"], 3002);
        assert_eq!(v["category_uid"], 3);
        assert_eq!(v["type_uid"], 300201);
        assert_eq!(v["status_id"], 1);
        assert_eq!(v["risk_level_id"], 2);
        assert_eq!(v["severity_id"], 3);
        assert_eq!(v["auth_protocol"], "password");
        assert_eq!(v["service"]["name"], "shop");
        assert_eq!(v["user"]["email_addr"], "ada@example.com");
        assert_eq!(v["src_endpoint"]["location"]["country"], "AU");
        assert_eq!(v["http_request"]["user_agent"], "Firefox");
        assert!(!v.to_string().contains("secret-session-id"));
        let mut failed = sign_in("failure", Some("high"));
        failed.failure_reason = Some("blocked_by_policy".into());
        let v = authentication(&failed);
        assert_eq!(v["status_id"], 2);
        assert_eq!(v["status_detail"], "blocked_by_policy");
    }

    #[test]
    fn the_envelope_names_the_type_and_the_time() {
        let v = envelope("webhook.test", 1_614_265_330_123, json!({"a": 1}));
        assert_eq!(v["type"], "webhook.test");
        assert_eq!(v["timestamp"], "2021-02-25T15:02:10.123Z");
        assert_eq!(v["data"]["a"], 1);
        assert!(is_event_type(EVENT_RISKY_SIGN_IN));
        assert!(!is_event_type(EVENT_TEST));
        assert!(!is_event_type("risk_detection"));
    }
}
