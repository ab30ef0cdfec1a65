//! Realistic generated data for development, tests and benchmarks: accounts and a sign-in
//! log with a mix of methods, applications, platforms, countries, failures and second
//! factors, spread over a number of days with a daily rhythm. Deterministic for a seed, so a
//! test or a benchmark can count on what it made.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::store::{InsightEvent, SignInLogEntry};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub users: u64,
    pub sign_ins: u64,
    pub days: u64,
    /// The end of the generated period (milliseconds); sign-ins fall in the `days` before.
    pub until: i64,
    pub seed: u64,
}

/// One generated account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedUser {
    pub id: String,
    pub email: String,
    pub display_name: String,
    pub created_at: i64,
}

impl GeneratedUser {
    /// The account to create (no password: generated accounts cannot sign in).
    pub fn as_new_user(&self) -> crate::store::NewUser<'_> {
        crate::store::NewUser {
            id: &self.id,
            email: &self.email,
            display_name: &self.display_name,
            password_hash: None,
            is_admin: false,
            now: self.created_at,
        }
    }
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// (weight, method, result, failure reason): the mix of attempts.
const OUTCOMES: [(u32, &str, &str, Option<&str>); 12] = [
    (40, "password", "success", None),
    (6, "password", "failure", Some("invalid_credentials")),
    (5, "password", "interrupted", Some("second_factor_required")),
    (12, "email_code", "success", None),
    (2, "email_code", "failure", Some("code_wrong")),
    (9, "passkey", "success", None),
    (7, "federated", "success", None),
    (1, "federated", "failure", Some("provider_error")),
    (10, "sso", "success", None),
    (4, "totp", "success", None),
    (1, "totp", "failure", Some("code_wrong")),
    (3, "sms", "success", None),
];

/// (weight, user agent, browser family, operating system).
const PLATFORMS: [(u32, &str, &str, &str); 5] = [
    (34, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36", "Chrome", "Windows 10"),
    (26, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari", "iPhone"),
    (20, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36", "Chrome", "Android"),
    (13, "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", "Safari", "Mac OSX"),
    (7, "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0", "Firefox", "Linux"),
];

/// (weight, country, city, latitude, longitude, autonomous system, documentation prefix).
const PLACES: [(u32, &str, &str, f64, f64, i64, &str); 8] = [
    (24, "US", "New York", 40.7128, -74.006, 7922, "198.51.100"),
    (14, "DE", "Berlin", 52.52, 13.405, 3320, "203.0.113"),
    (13, "FR", "Paris", 48.8566, 2.3522, 3215, "192.0.2"),
    (12, "GB", "London", 51.5074, -0.1278, 2856, "198.18.0"),
    (11, "IN", "Mumbai", 19.076, 72.8777, 9829, "198.18.1"),
    (10, "BR", "São Paulo", -23.5505, -46.6333, 28573, "198.18.2"),
    (9, "JP", "Tokyo", 35.6762, 139.6503, 2516, "198.18.3"),
    (7, "AU", "Sydney", -33.8688, 151.2093, 1221, "198.18.4"),
];

fn pick<T: Copy>(rng: &mut StdRng, items: &[(u32, T)]) -> T {
    let total: u32 = items.iter().map(|(w, _)| w).sum();
    let mut n = rng.gen_range(0..total.max(1));
    for (w, item) in items {
        if n < *w {
            return *item;
        }
        n -= w;
    }
    items[items.len() - 1].1
}

/// A time of day: more sign-ins in the day than at night (minutes after midnight, UTC).
fn minute_of_day(rng: &mut StdRng) -> i64 {
    let hour = pick(
        rng,
        &[
            (1, 0),
            (1, 1),
            (1, 2),
            (1, 3),
            (1, 4),
            (2, 5),
            (4, 6),
            (7, 7),
            (9, 8),
            (10, 9),
            (10, 10),
            (9, 11),
            (9, 12),
            (9, 13),
            (9, 14),
            (9, 15),
            (9, 16),
            (9, 17),
            (8, 18),
            (8, 19),
            (7, 20),
            (6, 21),
            (4, 22),
            (2, 23),
        ],
    );
    hour * 60 + rng.gen_range(0..60)
}

/// The accounts, numbered from `first` (so a second run with `--force` adds new ones), made
/// before the period starts or during it.
pub fn users(plan: &Plan, first: u64) -> impl Iterator<Item = GeneratedUser> + '_ {
    let start = plan.until - plan.days.max(1) as i64 * DAY_MS;
    (first..first + plan.users).map(move |n| {
        let mut rng = StdRng::seed_from_u64(plan.seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        // A third of the accounts are new during the period, the rest older.
        let created_at = if rng.gen_bool(1.0 / 3.0) {
            rng.gen_range(start..plan.until.max(start + 1))
        } else {
            start - rng.gen_range(0..365 * DAY_MS)
        };
        GeneratedUser {
            id: format!("gen-{n:08}"),
            email: format!("user{n}@generated.example"),
            display_name: format!("Generated User {n}"),
            created_at,
        }
    })
}

/// The sign-in log, oldest first, for accounts `gen-{first..first+users}`; `applications`
/// are the client ids attempts may be for (the account portal is always among them).
pub fn sign_ins<'a>(
    plan: &'a Plan,
    first: u64,
    applications: &'a [String],
) -> impl Iterator<Item = SignInLogEntry> + 'a {
    let days = plan.days.max(1) as i64;
    let start = plan.until - days * DAY_MS;
    let per_day = plan.sign_ins.div_ceil(days as u64).max(1);
    let mut rng = StdRng::seed_from_u64(plan.seed);
    (0..plan.sign_ins).map(move |i| {
        let day = (i / per_day) as i64;
        // Days run midnight to midnight (UTC), the first from the midnight before the start.
        let midnight = start - start.rem_euclid(DAY_MS) + day * DAY_MS;
        let at = (midnight + minute_of_day(&mut rng) * 60_000 + rng.gen_range(0..60_000))
            .clamp(start, plan.until - 1);
        let users = plan.users.max(1);
        // Some accounts sign in far more than others.
        let skewed = (rng.gen::<f64>().powi(2) * users as f64) as u64;
        let n = first + skewed.min(users - 1);
        let (method, result, reason) =
            pick(&mut rng, &OUTCOMES.map(|(w, m, r, why)| (w, (m, r, why))));
        let (agent, browser, os) = pick(&mut rng, &PLATFORMS.map(|(w, a, b, o)| (w, (a, b, o))));
        let (country, city, lat, lon, asn, prefix) = pick(
            &mut rng,
            &PLACES.map(|(w, c, city, lat, lon, asn, p)| (w, (c, city, lat, lon, asn, p))),
        );
        let application = if method == "sso" && applications.len() > 1 {
            applications[rng.gen_range(1..applications.len())].clone()
        } else if rng.gen_bool(0.7) || applications.len() < 2 {
            crate::identity::ACCOUNT_PORTAL.to_string()
        } else {
            applications[rng.gen_range(1..applications.len())].clone()
        };
        let known = !(result == "failure" && rng.gen_bool(0.2));
        SignInLogEntry {
            id: format!("gen-{}-{first}-{i:010}", plan.seed),
            occurred_at: at,
            user_id: known.then(|| format!("gen-{n:08}")),
            email: if known {
                format!("user{n}@generated.example")
            } else {
                format!("unknown{}@generated.example", rng.gen_range(0..1_000))
            },
            application,
            client_ip: format!("{prefix}.{}", rng.gen_range(1..255)),
            user_agent: agent.into(),
            method: method.into(),
            result: result.into(),
            failure_reason: reason.map(str::to_string),
            country: Some(country.into()),
            city: Some(city.into()),
            latitude_e6: Some((lat * 1e6) as i64),
            longitude_e6: Some((lon * 1e6) as i64),
            accuracy_km: Some(20),
            asn: Some(asn),
            browser: Some(browser.into()),
            os: Some(os.into()),
            device: Some(format!(
                "gen-device-{}",
                n * 2 + u64::from(rng.gen_bool(0.2))
            )),
            risk_level: Some("none".into()),
            ..SignInLogEntry::default()
        }
    })
}

/// The country calling code of each generated place.
fn calling_code(country: &str) -> &'static str {
    match country {
        "US" => "1",
        "DE" => "49",
        "FR" => "33",
        "GB" => "44",
        "IN" => "91",
        "BR" => "55",
        "JP" => "81",
        _ => "61",
    }
}

/// The text messages the generated sign-ins needed: one sent for each text-message second
/// factor, from the sign-in's country, and for one in ten of them another first refused by
/// a cap.
pub fn texts(rows: &[SignInLogEntry]) -> Vec<InsightEvent> {
    let mut out = Vec::new();
    for e in rows.iter().filter(|e| e.method == "sms") {
        let code = calling_code(e.country.as_deref().unwrap_or_default());
        let text = |result: &str, suffix: &str| InsightEvent {
            id: format!("{}-text{suffix}", e.id),
            occurred_at: e.occurred_at,
            application: e.application.clone(),
            kind: "text".into(),
            value: code.into(),
            result: result.into(),
        };
        if e.id.ends_with('7') {
            out.push(text("refused", "-refused"));
        }
        out.push(text("sent", ""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            users: 200,
            sign_ins: 20_000,
            days: 30,
            until: 1_800_000_000_000,
            seed: 7,
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_data_spread_over_the_period() {
        let apps = vec!["account".to_string(), "shop".to_string()];
        let a: Vec<_> = sign_ins(&plan(), 0, &apps).collect();
        let b: Vec<_> = sign_ins(&plan(), 0, &apps).collect();
        assert_eq!(a, b);
        assert_eq!(a.len(), 20_000);
        let start = plan().until - 30 * DAY_MS;
        assert!(a
            .iter()
            .all(|e| (start..plan().until).contains(&e.occurred_at)));
        // Every day of the period has sign-ins, in order of days.
        let days: std::collections::BTreeSet<i64> =
            a.iter().map(|e| (e.occurred_at - start) / DAY_MS).collect();
        assert_eq!(days.len(), 30);
        let ids: std::collections::HashSet<&str> = a.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), a.len(), "ids are unique");
        let users: Vec<_> = super::users(&plan(), 0).collect();
        assert_eq!(users.len(), 200);
        assert!(a
            .iter()
            .filter_map(|e| e.user_id.as_deref())
            .all(|u| users.iter().any(|g| g.id == u)));
    }

    #[test]
    fn the_mix_has_every_method_platform_country_and_failures() {
        let apps = vec![
            "account".to_string(),
            "shop".to_string(),
            "blog".to_string(),
        ];
        let a: Vec<_> = sign_ins(&plan(), 0, &apps).collect();
        let share = |f: &dyn Fn(&SignInLogEntry) -> bool| {
            a.iter().filter(|e| f(e)).count() as f64 / a.len() as f64
        };
        let successes = share(&|e| e.result == "success");
        assert!((0.78..0.92).contains(&successes), "{successes}");
        assert!(share(&|e| e.result == "failure") > 0.05);
        assert!(share(&|e| e.result == "interrupted") > 0.02);
        for method in [
            "password",
            "email_code",
            "passkey",
            "federated",
            "sso",
            "totp",
            "sms",
        ] {
            assert!(share(&|e| e.method == method) > 0.01, "{method}");
        }
        for country in ["US", "DE", "FR", "GB", "IN", "BR", "JP", "AU"] {
            assert!(
                share(&|e| e.country.as_deref() == Some(country)) > 0.03,
                "{country}"
            );
        }
        for os in ["Windows 10", "iPhone", "Android", "Mac OSX", "Linux"] {
            assert!(share(&|e| e.os.as_deref() == Some(os)) > 0.03, "{os}");
        }
        assert!(share(&|e| e.application == "shop") > 0.05);
        assert!(
            share(&|e| e.user_id.is_none()) > 0.005,
            "unknown accounts fail too"
        );
        // More in the day than at night.
        let hour = |e: &SignInLogEntry| (e.occurred_at / 3_600_000) % 24;
        assert!(share(&|e| hour(e) == 10) > 3.0 * share(&|e| hour(e) == 3));
    }
}
