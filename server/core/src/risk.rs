//! Identity Protection's plain data and pure rules: the kinds of risk detection, their states,
//! and how detection levels aggregate into an account's user risk.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::conditional_access::RiskLevel;
pub use crate::store::SourceActivity;

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionKind {
    /// An administrator confirmed the account compromised.
    AdminConfirmedCompromised,
    /// A sign-in from a Tor exit node or an anonymizing VPN or hosting range.
    AnonymousIp,
    /// A sign-in from a known-bad address.
    MaliciousIp,
    /// A sign-in farther from the previous one than a person can travel in the time between.
    AtypicalTravel,
    /// A sign-in whose network, country, browser, system or device the account never used.
    UnfamiliarFeatures,
    /// The password just proven appears in a corpus of breached passwords.
    LeakedCredentials,
    /// A correct password after many wrong ones for the account.
    BruteForce,
    /// A correct password from an address that tried few passwords on many accounts.
    PasswordSpray,
    /// A refresh token used from another country or network than it was issued to.
    AnomalousToken,
    /// The owner said a sign-in was not them ("This wasn't me" in the new-browser email).
    UserReportedSuspicious,
}

impl DetectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "admin-confirmed-compromised",
            DetectionKind::AnonymousIp => "anonymous-ip",
            DetectionKind::MaliciousIp => "malicious-ip",
            DetectionKind::AtypicalTravel => "atypical-travel",
            DetectionKind::UnfamiliarFeatures => "unfamiliar-features",
            DetectionKind::LeakedCredentials => "leaked-credentials",
            DetectionKind::BruteForce => "brute-force",
            DetectionKind::PasswordSpray => "password-spray",
            DetectionKind::AnomalousToken => "anomalous-token",
            DetectionKind::UserReportedSuspicious => "user-reported-suspicious",
        }
    }

    pub const ALL: [DetectionKind; 10] = [
        DetectionKind::AdminConfirmedCompromised,
        DetectionKind::AnonymousIp,
        DetectionKind::MaliciousIp,
        DetectionKind::AtypicalTravel,
        DetectionKind::UnfamiliarFeatures,
        DetectionKind::LeakedCredentials,
        DetectionKind::BruteForce,
        DetectionKind::PasswordSpray,
        DetectionKind::AnomalousToken,
        DetectionKind::UserReportedSuspicious,
    ];

    /// Whether it is about the sign-in (where and how it came) rather than the account.
    pub fn is_sign_in_risk(self) -> bool {
        matches!(
            self,
            DetectionKind::AnonymousIp
                | DetectionKind::MaliciousIp
                | DetectionKind::AtypicalTravel
                | DetectionKind::UnfamiliarFeatures
        )
    }

    /// The kind named `s` (see [`DetectionKind::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        DetectionKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Its name in the console.
    pub fn label(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "Admin confirmed user compromised",
            DetectionKind::AnonymousIp => "Anonymous IP address",
            DetectionKind::MaliciousIp => "Malicious IP address",
            DetectionKind::AtypicalTravel => "Atypical travel",
            DetectionKind::UnfamiliarFeatures => "Unfamiliar sign-in properties",
            DetectionKind::LeakedCredentials => "Leaked credentials",
            DetectionKind::BruteForce => "Password guessed after many failures",
            DetectionKind::PasswordSpray => "Password spray",
            DetectionKind::AnomalousToken => "Anomalous token",
            DetectionKind::UserReportedSuspicious => "User reported suspicious activity",
        }
    }
}

/// The address lists an admin keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Tor exit addresses (the Tor Project's exit list format, or one address a line).
    Tor,
    /// Anonymizing VPN and hosting ranges (CIDR or an address a line).
    Vpn,
    /// Known-bad addresses (CIDR or an address a line).
    Bad,
}

impl ListKind {
    pub const ALL: [ListKind; 3] = [ListKind::Tor, ListKind::Vpn, ListKind::Bad];

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Tor => "tor",
            ListKind::Vpn => "vpn",
            ListKind::Bad => "bad",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        ListKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Reads a list file into ranges. The Tor format's `ExitAddress ADDRESS DATE` lines give their
/// address and its other lines are skipped; otherwise each line is an address or a CIDR range;
/// `#` starts a comment. A line that is neither is refused with its number.
pub fn parse_list(kind: ListKind, text: &str) -> Result<Vec<IpNet>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let value = match (kind, line.split_whitespace().collect::<Vec<_>>().as_slice()) {
            (ListKind::Tor, ["ExitAddress", address, ..]) => *address,
            (ListKind::Tor, [first, ..])
                if ["ExitNode", "Published", "LastStatus"].contains(first) =>
            {
                continue
            }
            (_, [only]) => *only,
            _ => {
                return Err(format!(
                    "line {}: {line:?} is not an address or a range",
                    n + 1
                ))
            }
        };
        let net = value
            .parse::<IpNet>()
            .or_else(|_| value.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("line {}: {value:?} is not an address or a range", n + 1))?;
        out.push(net.trunc());
    }
    Ok(out)
}

/// The lists in force, as ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RiskLists {
    pub tor: Vec<IpNet>,
    pub vpn: Vec<IpNet>,
    pub bad: Vec<IpNet>,
}

impl RiskLists {
    /// The lists from stored (kind, entry) rows; unreadable rows are skipped.
    pub fn from_entries<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut lists = RiskLists::default();
        for (kind, entry) in rows {
            let Ok(net) = entry.parse::<IpNet>() else {
                continue;
            };
            match ListKind::parse(kind) {
                Some(ListKind::Tor) => lists.tor.push(net),
                Some(ListKind::Vpn) => lists.vpn.push(net),
                Some(ListKind::Bad) => lists.bad.push(net),
                None => {}
            }
        }
        lists
    }

    pub fn is_empty(&self) -> bool {
        self.tor.is_empty() && self.vpn.is_empty() && self.bad.is_empty()
    }
}

/// A real-time detection of one attempt, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: DetectionKind,
    pub level: RiskLevel,
    pub summary: String,
    pub evidence: serde_json::Value,
}

/// What the lists say of a client address: a Tor exit is high risk, a VPN or hosting range
/// medium, a known-bad address high. An IPv4-mapped IPv6 address is its IPv4 address.
pub fn assess_address(ip: IpAddr, lists: &RiskLists) -> Vec<Finding> {
    let ip = ip.to_canonical();
    let hit = |nets: &[IpNet]| nets.iter().find(|n| n.contains(&ip)).copied();
    let mut found = Vec::new();
    if let Some(net) = hit(&lists.tor) {
        found.push(Finding {
            kind: DetectionKind::AnonymousIp,
            level: RiskLevel::High,
            summary: format!("The sign-in came from {ip}, a Tor exit node."),
            evidence: serde_json::json!({"address": ip.to_string(), "list": "tor", "entry": net.to_string()}),
        });
    } else if let Some(net) = hit(&lists.vpn) {
        found.push(Finding {
            kind: DetectionKind::AnonymousIp,
            level: RiskLevel::Medium,
            summary: format!("The sign-in came from {ip}, in the anonymizing VPN or hosting range {net}."),
            evidence: serde_json::json!({"address": ip.to_string(), "list": "vpn", "entry": net.to_string()}),
        });
    }
    if let Some(net) = hit(&lists.bad) {
        found.push(Finding {
            kind: DetectionKind::MaliciousIp,
            level: RiskLevel::High,
            summary: format!("The sign-in came from {ip}, a known-bad address ({net})."),
            evidence: serde_json::json!({"address": ip.to_string(), "list": "bad", "entry": net.to_string()}),
        });
    }
    found
}

/// [`assess_address`] of an address as logged (nothing for one that does not parse).
pub fn assess_address_str(ip: &str, lists: &RiskLists) -> Vec<Finding> {
    match ip.trim().parse() {
        Ok(ip) => assess_address(ip, lists),
        Err(_) => Vec::new(),
    }
}

/// An attempt's sign-in risk: the highest level of its detections.
pub fn sign_in_risk(findings: &[Finding]) -> RiskLevel {
    findings
        .iter()
        .map(|f| f.level)
        .max()
        .unwrap_or(RiskLevel::None)
}

/// What one sign-in showed of where and how it came, as kept with its sign-in log row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignInProperties {
    /// When (milliseconds since the epoch).
    pub at: i64,
    pub client_ip: String,
    /// ISO 3166-1 alpha-2, from the GeoIP database.
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// How far off the coordinates may be (kilometres), when the database says.
    pub accuracy_km: Option<u32>,
    /// The autonomous system the address belongs to, from the ASN database.
    pub asn: Option<u32>,
    /// The browser's family ("Chrome", "Firefox") and the operating system, from the user agent.
    pub browser: Option<String>,
    pub os: Option<String>,
    /// The device cookie's hash.
    pub device: Option<String>,
}

impl SignInProperties {
    /// "Paris, FR", "FR", or the address when nothing is known of where it is.
    pub fn place(&self) -> String {
        match (&self.city, &self.country) {
            (Some(city), Some(country)) => format!("{city}, {country}"),
            (None, Some(country)) => country.clone(),
            _ => self.client_ip.clone(),
        }
    }

    fn coordinates(&self) -> Option<(f64, f64)> {
        match (self.latitude, self.longitude) {
            (Some(lat), Some(lon)) if lat.is_finite() && lon.is_finite() => Some((lat, lon)),
            _ => None,
        }
    }
}

/// The history-based detections stay quiet until an account has this many successful
/// sign-ins...
pub const LEARNING_SIGN_INS: usize = 10;
/// ...or its first successful sign-in is this old (milliseconds), whichever comes first.
pub const LEARNING_PERIOD_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Faster than this between two sign-ins (km/h, after the accuracy radii are taken off the
/// distance) is atypical travel: above an airliner's cruising speed.
pub const TRAVEL_SPEED_KMH: f64 = 900.0;
/// A VPN range the account signed in from this many times before is the account's own.
pub const FAMILIAR_RANGE_SIGN_INS: usize = 3;
/// Wrong passwords for an account before a correct one that make it brute force (medium), and
/// the count that makes it high.
pub const BRUTE_FORCE_FAILURES: i64 = 10;
pub const BRUTE_FORCE_FAILURES_HIGH: i64 = 50;

/// What the history-based detections know of an account's successful sign-ins: how many
/// there were, when the first was, the newest with coordinates, and the distinct values they
/// showed. It comes from the account's [`SignInProfile`] (one row), or for an account without
/// one yet from the database's summary of its newest sign-ins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SignInHistory {
    /// Successful sign-ins compared (the newest).
    pub total: u64,
    pub first_at: Option<i64>,
    /// The newest compared sign-in with coordinates, made no later than now: its time,
    /// address, place and coordinates (what atypical travel compares).
    pub last_located: Option<SignInProperties>,
    pub seen: SeenValues,
}

/// The distinct values of the compared sign-ins, each once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenValues {
    pub asns: Vec<u32>,
    pub countries: Vec<String>,
    pub browsers: Vec<String>,
    pub oses: Vec<String>,
    pub devices: Vec<String>,
    /// (country, city) of the sign-ins with a country.
    pub places: Vec<(String, Option<String>)>,
    /// Each address, with how many of the compared sign-ins came from it.
    pub addresses: Vec<(String, u64)>,
}

impl SignInHistory {
    /// Whether the learning period is over: enough sign-ins, or the first one long enough ago.
    pub fn learned(&self, now: i64) -> bool {
        self.total >= LEARNING_SIGN_INS as u64
            || self
                .first_at
                .is_some_and(|first| now - first >= LEARNING_PERIOD_MS)
    }
}

/// The most distinct values of each property a profile keeps: the most recently seen.
pub const PROFILE_VALUES: usize = 50;

/// One value a profile has seen: when last, and how many sign-ins showed it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Seen<T> {
    pub value: T,
    pub last_at: i64,
    pub count: u64,
}

/// Where the newest located sign-in came from, as atypical travel compares it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Located {
    pub at: i64,
    pub ip: String,
    pub country: Option<String>,
    pub city: Option<String>,
    pub latitude: f64,
    pub longitude: f64,
    pub accuracy_km: Option<u32>,
}

/// An account's sign-in profile: what its successful sign-ins showed, kept as one row and
/// brought up to date by each successful sign-in in the transaction that logs it, so the
/// detections read one row however long the history. Each property keeps its
/// [`PROFILE_VALUES`] most recently seen values with how often each was seen.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SignInProfile {
    pub total: u64,
    pub first_at: Option<i64>,
    pub located: Option<Located>,
    pub asns: Vec<Seen<u32>>,
    pub countries: Vec<Seen<String>>,
    pub places: Vec<Seen<(String, Option<String>)>>,
    pub browsers: Vec<Seen<String>>,
    pub oses: Vec<Seen<String>>,
    pub devices: Vec<Seen<String>>,
    pub addresses: Vec<Seen<String>>,
}

fn note<T: PartialEq>(list: &mut Vec<Seen<T>>, value: Option<T>, at: i64, count: u64) {
    let Some(value) = value else {
        return;
    };
    match list.iter_mut().find(|s| s.value == value) {
        Some(s) => {
            s.count += count;
            s.last_at = s.last_at.max(at);
        }
        None => {
            list.push(Seen {
                value,
                last_at: at,
                count,
            });
            if list.len() > PROFILE_VALUES {
                if let Some(oldest) = list
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, s)| s.last_at)
                    .map(|(i, _)| i)
                {
                    list.remove(oldest);
                }
            }
        }
    }
}

impl SignInProfile {
    /// Takes one more successful sign-in into the profile.
    pub fn observe(&mut self, p: &SignInProperties) {
        self.total += 1;
        self.first_at = Some(self.first_at.map_or(p.at, |f| f.min(p.at)));
        if let Some((latitude, longitude)) = p.coordinates() {
            if self.located.as_ref().is_none_or(|l| p.at >= l.at) {
                self.located = Some(Located {
                    at: p.at,
                    ip: p.client_ip.clone(),
                    country: p.country.clone(),
                    city: p.city.clone(),
                    latitude,
                    longitude,
                    accuracy_km: p.accuracy_km,
                });
            }
        }
        note(&mut self.asns, p.asn, p.at, 1);
        note(&mut self.countries, p.country.clone(), p.at, 1);
        note(
            &mut self.places,
            p.country.clone().map(|c| (c, p.city.clone())),
            p.at,
            1,
        );
        note(&mut self.browsers, p.browser.clone(), p.at, 1);
        note(&mut self.oses, p.os.clone(), p.at, 1);
        note(&mut self.devices, p.device.clone(), p.at, 1);
        note(&mut self.addresses, Some(p.client_ip.clone()), p.at, 1);
    }

    /// A profile started from what the log holds of an account that has none yet (the
    /// database's summary of its newest sign-ins, the one being logged included).
    pub fn from_history(h: &SignInHistory, now: i64) -> Self {
        let mut profile = SignInProfile {
            total: h.total,
            first_at: h.first_at,
            located: h.last_located.as_ref().and_then(|p| {
                let (latitude, longitude) = p.coordinates()?;
                Some(Located {
                    at: p.at,
                    ip: p.client_ip.clone(),
                    country: p.country.clone(),
                    city: p.city.clone(),
                    latitude,
                    longitude,
                    accuracy_km: p.accuracy_km,
                })
            }),
            ..SignInProfile::default()
        };
        let seen = &h.seen;
        for v in &seen.asns {
            note(&mut profile.asns, Some(*v), now, 1);
        }
        for (list, values) in [
            (&mut profile.countries, &seen.countries),
            (&mut profile.browsers, &seen.browsers),
            (&mut profile.oses, &seen.oses),
            (&mut profile.devices, &seen.devices),
        ] {
            for v in values {
                note(list, Some(v.clone()), now, 1);
            }
        }
        for v in &seen.places {
            note(&mut profile.places, Some(v.clone()), now, 1);
        }
        for (ip, n) in &seen.addresses {
            note(&mut profile.addresses, Some(ip.clone()), now, *n);
        }
        profile
    }

    /// What the detections compare with.
    pub fn history(&self) -> SignInHistory {
        fn values<T: Clone>(list: &[Seen<T>]) -> Vec<T> {
            list.iter().map(|s| s.value.clone()).collect()
        }
        SignInHistory {
            total: self.total,
            first_at: self.first_at,
            last_located: self.located.as_ref().map(|l| SignInProperties {
                at: l.at,
                client_ip: l.ip.clone(),
                country: l.country.clone(),
                city: l.city.clone(),
                latitude: Some(l.latitude),
                longitude: Some(l.longitude),
                accuracy_km: l.accuracy_km,
                ..SignInProperties::default()
            }),
            seen: SeenValues {
                asns: values(&self.asns),
                countries: values(&self.countries),
                browsers: values(&self.browsers),
                oses: values(&self.oses),
                devices: values(&self.devices),
                places: values(&self.places),
                addresses: self
                    .addresses
                    .iter()
                    .map(|s| (s.value.clone(), s.count))
                    .collect(),
            },
        }
    }
}

/// The stored profile (JSON) once `seen`, a successful sign-in, is taken in; for an account
/// without one, the profile started from the log's summary (which holds `seen` already). A
/// profile that cannot be read starts again from `seen`.
pub fn updated_profile(
    seed: crate::store::ProfileSeed<'_>,
    seen: &SignInProperties,
    now: i64,
) -> String {
    let profile = match seed {
        crate::store::ProfileSeed::Stored(json) => {
            let mut profile: SignInProfile = serde_json::from_str(json).unwrap_or_default();
            profile.observe(seen);
            profile
        }
        crate::store::ProfileSeed::Log(summary) => {
            SignInProfile::from_history(&history_of_summary(summary), now)
        }
    };
    serde_json::to_string(&profile).unwrap_or_default()
}

/// Sign-ins one by one, newest first: the history as the log holds it, from which
/// [`RecentSignIns::summary`] computes what the database's aggregate query returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentSignIns {
    pub recent: Vec<SignInProperties>,
    pub first_at: Option<i64>,
}

impl RecentSignIns {
    pub fn summary(&self, now: i64) -> SignInHistory {
        fn add<T: PartialEq>(list: &mut Vec<T>, value: Option<T>) {
            if let Some(v) = value {
                if !list.contains(&v) {
                    list.push(v);
                }
            }
        }
        let mut seen = SeenValues::default();
        for p in &self.recent {
            add(&mut seen.asns, p.asn);
            add(&mut seen.countries, p.country.clone());
            add(&mut seen.browsers, p.browser.clone());
            add(&mut seen.oses, p.os.clone());
            add(&mut seen.devices, p.device.clone());
            add(
                &mut seen.places,
                p.country.clone().map(|c| (c, p.city.clone())),
            );
            match seen.addresses.iter_mut().find(|(a, _)| *a == p.client_ip) {
                Some((_, n)) => *n += 1,
                None => seen.addresses.push((p.client_ip.clone(), 1)),
            }
        }
        SignInHistory {
            total: self.recent.len() as u64,
            first_at: self.first_at,
            last_located: self
                .recent
                .iter()
                .find(|p| p.coordinates().is_some() && p.at <= now)
                .map(|p| SignInProperties {
                    asn: None,
                    browser: None,
                    os: None,
                    device: None,
                    ..p.clone()
                }),
            seen,
        }
    }
}

/// The detections' history from the database's summary of it.
pub fn history_of_summary(s: &crate::store::SignInSummary) -> SignInHistory {
    let mut seen = SeenValues::default();
    for (kind, value, n) in &s.values {
        let text = || value.clone();
        match kind.as_str() {
            "asn" => seen.asns.extend(value.parse::<u32>().ok()),
            "country" => seen.countries.push(text()),
            "browser" => seen.browsers.push(text()),
            "os" => seen.oses.push(text()),
            "device" => seen.devices.push(text()),
            "place" => {
                if let Some((country, city)) = value.split_once('|') {
                    let city = city.strip_prefix('+').map(str::to_string);
                    seen.places.push((country.to_string(), city));
                }
            }
            "address" => seen
                .addresses
                .push((text(), u64::try_from(*n).unwrap_or(0))),
            _ => {}
        }
    }
    SignInHistory {
        total: u64::try_from(s.compared).unwrap_or(0),
        first_at: s.first_at,
        last_located: s.last_located.as_ref().map(properties_of_row),
        seen,
    }
}

/// A sign-in log row's properties, as the detections compare them.
pub fn properties_of_row(row: &crate::store::SignInLogEntry) -> SignInProperties {
    let degrees = |e6: Option<i64>| e6.map(|v| v as f64 / 1e6);
    SignInProperties {
        at: row.occurred_at,
        client_ip: row.client_ip.clone(),
        country: row.country.clone(),
        city: row.city.clone(),
        latitude: degrees(row.latitude_e6),
        longitude: degrees(row.longitude_e6),
        accuracy_km: row.accuracy_km.and_then(|v| u32::try_from(v).ok()),
        asn: row.asn.and_then(|v| u32::try_from(v).ok()),
        browser: row.browser.clone(),
        os: row.os.clone(),
        device: row.device.clone(),
    }
}

/// The great-circle distance between two points (degrees), in kilometres.
pub fn great_circle_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6_371.0;
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().clamp(0.0, 1.0).asin()
}

/// `12,345` for the evidence sentences.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// "2 h", "45 min", "3 d".
fn elapsed_words(ms: i64) -> String {
    let minutes = (ms / 60_000).max(0);
    if minutes < 120 {
        format!("{minutes} min")
    } else if minutes < 48 * 60 {
        format!("{} h", minutes / 60)
    } else {
        format!("{} d", minutes / (24 * 60))
    }
}

fn on_anonymizing_list(ip: &str, lists: &RiskLists) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    let ip = ip.to_canonical();
    lists.tor.iter().chain(&lists.vpn).any(|n| n.contains(&ip))
}

/// Atypical travel: the previous successful sign-in with coordinates was farther away than
/// [`TRAVEL_SPEED_KMH`] allows in the time since, once both accuracy radii are taken off the
/// distance. Quiet during the learning period, for a place the account signed in from
/// before (two homes, a regular trip), and when either address is an anonymizing one (its
/// place is the exit's, not the person's; the anonymous-IP detection speaks for it).
pub fn atypical_travel(
    current: &SignInProperties,
    history: &SignInHistory,
    lists: &RiskLists,
    now: i64,
) -> Option<Finding> {
    if !history.learned(now) {
        return None;
    }
    let here = current.coordinates()?;
    let previous = history.last_located.as_ref().filter(|p| p.at <= now)?;
    let there = previous.coordinates()?;
    let familiar = current.country.as_ref().is_some_and(|country| {
        history
            .seen
            .places
            .iter()
            .any(|(c, city)| c == country && *city == current.city)
    });
    if familiar
        || on_anonymizing_list(&current.client_ip, lists)
        || on_anonymizing_list(&previous.client_ip, lists)
    {
        return None;
    }
    let radii = f64::from(current.accuracy_km.unwrap_or(0) + previous.accuracy_km.unwrap_or(0));
    let distance = (great_circle_km(there, here) - radii).max(0.0);
    if distance <= 0.0 {
        return None;
    }
    let elapsed_ms = (now - previous.at).max(1);
    let hours = elapsed_ms as f64 / 3_600_000.0;
    let speed = distance / hours;
    if speed <= TRAVEL_SPEED_KMH {
        return None;
    }
    let point = |p: &SignInProperties, (lat, lon): (f64, f64)| {
        serde_json::json!({
            "place": p.place(), "address": p.client_ip, "at": p.at,
            "latitude": lat, "longitude": lon, "accuracy_km": p.accuracy_km,
        })
    };
    Some(Finding {
        kind: DetectionKind::AtypicalTravel,
        level: RiskLevel::Medium,
        summary: format!(
            "{} {} after {}: {} km at {} km/h.",
            current.place(),
            elapsed_words(elapsed_ms),
            previous.place(),
            grouped(distance.round() as u64),
            grouped(speed.round() as u64),
        ),
        evidence: serde_json::json!({
            "from": point(previous, there),
            "to": point(current, here),
            "distance_km": distance.round(),
            "hours": (hours * 100.0).round() / 100.0,
            "speed_kmh": speed.round(),
            "threshold_kmh": TRAVEL_SPEED_KMH,
        }),
    })
}

/// Unfamiliar sign-in properties: which of the network (ASN), country, browser family,
/// operating system and device the account never signed in with before. A property the
/// history never recorded (no ASN database then, say) is not compared. One new property is
/// ordinary (a new phone); two are low risk, three medium, four or five high. Quiet during
/// the learning period.
pub fn unfamiliar_features(
    current: &SignInProperties,
    history: &SignInHistory,
    now: i64,
) -> Option<Finding> {
    if !history.learned(now) {
        return None;
    }
    fn new_value<T: PartialEq>(current: &Option<T>, known: &[T]) -> bool {
        current
            .as_ref()
            .is_some_and(|value| !known.is_empty() && !known.contains(value))
    }
    let seen = &history.seen;
    let mut new: Vec<(&str, String)> = Vec::new();
    if new_value(&current.asn, &seen.asns) {
        new.push(("network", format!("AS{}", current.asn.unwrap_or_default())));
    }
    if new_value(&current.country, &seen.countries) {
        new.push(("country", current.country.clone().unwrap_or_default()));
    }
    if new_value(&current.browser, &seen.browsers) {
        new.push(("browser", current.browser.clone().unwrap_or_default()));
    }
    if new_value(&current.os, &seen.oses) {
        new.push(("operating system", current.os.clone().unwrap_or_default()));
    }
    if new_value(&current.device, &seen.devices) {
        new.push(("device", "a device never seen".to_string()));
    }
    let level = match new.len() {
        0 | 1 => return None,
        2 => RiskLevel::Low,
        3 => RiskLevel::Medium,
        _ => RiskLevel::High,
    };
    let words: Vec<String> = new.iter().map(|(what, v)| format!("{what} {v}")).collect();
    Some(Finding {
        kind: DetectionKind::UnfamiliarFeatures,
        level,
        summary: format!(
            "New for this account, compared with its last {} sign-ins: {}.",
            history.total,
            words.join(", ")
        ),
        evidence: serde_json::json!({
            "new": new.iter().map(|(what, _)| *what).collect::<Vec<_>>(),
            "asn": current.asn, "country": current.country, "browser": current.browser,
            "os": current.os, "compared_with": history.total,
        }),
    })
}

/// The real-time detections of a sign-in: the address lists, atypical travel and unfamiliar
/// properties. A VPN range the account signed in from [`FAMILIAR_RANGE_SIGN_INS`] times
/// before is its own (a person who always uses one VPN is not flagged at every sign-in).
pub fn assess_sign_in(
    current: &SignInProperties,
    history: &SignInHistory,
    lists: &RiskLists,
    now: i64,
) -> Vec<Finding> {
    let mut found = assess_address_str(&current.client_ip, lists);
    found.retain(|f| {
        let vpn_range = (f.kind == DetectionKind::AnonymousIp && f.evidence["list"] == "vpn")
            .then(|| {
                f.evidence["entry"]
                    .as_str()
                    .and_then(|e| e.parse::<IpNet>().ok())
            })
            .flatten();
        let Some(range) = vpn_range else {
            return true;
        };
        let before: u64 = history
            .seen
            .addresses
            .iter()
            .filter(|(a, _)| {
                a.parse::<IpAddr>()
                    .is_ok_and(|ip| range.contains(&ip.to_canonical()))
            })
            .map(|(_, n)| n)
            .sum();
        !(history.learned(current.at) && before >= FAMILIAR_RANGE_SIGN_INS as u64)
    });
    found.extend(atypical_travel(current, history, lists, now));
    found.extend(unfamiliar_features(current, history, now));
    found
}

/// Brute force followed by success: the password was right after `failures` wrong ones in a
/// row for the account (medium from [`BRUTE_FORCE_FAILURES`], high from
/// [`BRUTE_FORCE_FAILURES_HIGH`]).
pub fn brute_force(failures: i64) -> Option<Finding> {
    let level = if failures >= BRUTE_FORCE_FAILURES_HIGH {
        RiskLevel::High
    } else if failures >= BRUTE_FORCE_FAILURES {
        RiskLevel::Medium
    } else {
        return None;
    };
    Some(Finding {
        kind: DetectionKind::BruteForce,
        level,
        summary: format!(
            "The right password came after {} wrong ones in a row.",
            grouped(failures.max(0) as u64)
        ),
        evidence: serde_json::json!({ "failures": failures, "threshold": BRUTE_FORCE_FAILURES }),
    })
}

/// Leaked credentials: the password just proven appears `times` times in the breach corpus
/// (high: whoever holds the corpus can sign in as the person).
pub fn leaked_credentials(times: u64, corpus: &str) -> Finding {
    Finding {
        kind: DetectionKind::LeakedCredentials,
        level: RiskLevel::High,
        summary: format!(
            "The password used appears {} times in a corpus of breached passwords.",
            grouped(times)
        ),
        evidence: serde_json::json!({ "times_seen": times, "corpus": corpus }),
    }
}

/// The offline detections look back this far.
pub const OFFLINE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// A password spray: wrong passwords for at least this many accounts from one address...
pub const SPRAY_MIN_ACCOUNTS: i64 = 10;
/// ...with at most this many wrong passwords per account on average (few passwords each).
pub const SPRAY_MAX_FAILURES_PER_ACCOUNT: i64 = 3;
/// A failing address: at least this many password attempts...
pub const FAILING_MIN_ATTEMPTS: i64 = 20;
/// ...of which at least this share (percent) were wrong.
pub const FAILING_MIN_PERCENT: i64 = 90;

fn hours(ms: i64) -> String {
    let h = ms as f64 / 3_600_000.0;
    if h < 1.0 {
        format!("{} min", (ms / 60_000).max(1))
    } else {
        format!("{h:.1} h")
    }
}

/// Password spray: `source` sent wrong passwords for many accounts, few each, and then the
/// right one for the account of `proven_at` (high: the spray found a working password).
pub fn password_spray(source: &SourceActivity, proven_at: i64) -> Option<Finding> {
    let accounts = source.failed_accounts;
    if accounts < SPRAY_MIN_ACCOUNTS
        || source.failures > accounts * SPRAY_MAX_FAILURES_PER_ACCOUNT
        || proven_at < source.first_at
    {
        return None;
    }
    let per_account = source.failures as f64 / accounts as f64;
    Some(Finding {
        kind: DetectionKind::PasswordSpray,
        level: RiskLevel::High,
        summary: format!(
            "{} sent wrong passwords for {} accounts over {} ({per_account:.1} tries each), \
             then this account's right one.",
            source.client_ip,
            grouped(accounts as u64),
            hours(source.last_at - source.first_at),
        ),
        evidence: serde_json::json!({
            "client_ip": source.client_ip,
            "accounts": accounts,
            "failures": source.failures,
            "attempts": source.attempts,
            "first_at": source.first_at,
            "last_at": source.last_at,
            "min_accounts": SPRAY_MIN_ACCOUNTS,
        }),
    })
}

/// Malicious IP by failure ratio: most of `source`'s password attempts were wrong, and one
/// of its sign-ins got through (high).
pub fn failing_source(source: &SourceActivity) -> Option<Finding> {
    if source.attempts < FAILING_MIN_ATTEMPTS
        || source.failures * 100 < source.attempts * FAILING_MIN_PERCENT
    {
        return None;
    }
    let percent = source.failures * 100 / source.attempts.max(1);
    Some(Finding {
        kind: DetectionKind::MaliciousIp,
        level: RiskLevel::High,
        summary: format!(
            "{} failed {percent}% of {} password attempts over {}.",
            source.client_ip,
            grouped(source.attempts as u64),
            hours(source.last_at - source.first_at),
        ),
        evidence: serde_json::json!({
            "client_ip": source.client_ip,
            "attempts": source.attempts,
            "failures": source.failures,
            "failure_percent": percent,
            "min_attempts": FAILING_MIN_ATTEMPTS,
            "min_percent": FAILING_MIN_PERCENT,
            "source": "failure ratio",
        }),
    })
}

/// Where a request came from, as far as the network data tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub asn: Option<u32>,
    pub country: Option<String>,
}

impl Network {
    fn describe(&self) -> String {
        match (&self.asn, &self.country) {
            (Some(a), Some(c)) => format!("AS{a} ({c})"),
            (Some(a), None) => format!("AS{a}"),
            (None, Some(c)) => c.clone(),
            (None, None) => "an unknown network".into(),
        }
    }
}

/// Anomalous token: application `app`'s refresh token, issued to `origin`, was used from
/// `now`. Another country is medium; only another network (the same country: a phone leaving
/// its Wi-Fi, say) is low. What either side does not know is not compared.
pub fn anomalous_token(
    app: &str,
    origin: &Network,
    now: &Network,
    client_ip: &str,
) -> Option<Finding> {
    fn differs<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        matches!((a, b), (Some(x), Some(y)) if x != y)
    }
    let new_country = differs(&origin.country, &now.country);
    let new_asn = differs(&origin.asn, &now.asn);
    let level = if new_country {
        RiskLevel::Medium
    } else if new_asn {
        RiskLevel::Low
    } else {
        return None;
    };
    Some(Finding {
        kind: DetectionKind::AnomalousToken,
        level,
        summary: format!(
            "{app}'s refresh token, issued to {}, was used from {} ({client_ip}).",
            origin.describe(),
            now.describe()
        ),
        evidence: serde_json::json!({
            "application": app,
            "client_ip": client_ip,
            "issued_to": { "asn": origin.asn, "country": origin.country },
            "used_from": { "asn": now.asn, "country": now.country },
            "new_country": new_country,
            "new_network": new_asn,
        }),
    })
}

/// Where a detection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskState {
    AtRisk,
    /// The person proved it was them (a password change after MFA).
    Remediated,
    /// An administrator dismissed it.
    Dismissed,
    ConfirmedSafe,
    ConfirmedCompromised,
}

impl RiskState {
    pub fn as_str(self) -> &'static str {
        match self {
            RiskState::AtRisk => "at-risk",
            RiskState::Remediated => "remediated",
            RiskState::Dismissed => "dismissed",
            RiskState::ConfirmedSafe => "confirmed-safe",
            RiskState::ConfirmedCompromised => "confirmed-compromised",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "at-risk" => RiskState::AtRisk,
            "remediated" => RiskState::Remediated,
            "dismissed" => RiskState::Dismissed,
            "confirmed-safe" => RiskState::ConfirmedSafe,
            "confirmed-compromised" => RiskState::ConfirmedCompromised,
            _ => return None,
        })
    }

    /// Whether a detection in this state still counts toward the account's risk.
    pub fn is_open(self) -> bool {
        matches!(self, RiskState::AtRisk | RiskState::ConfirmedCompromised)
    }
}

/// An account's user risk: the highest level of its detections still open (`none` without
/// one). Levels that cannot be read count as high, so a damaged row never lowers the risk.
pub fn user_risk<'a>(open_levels: impl IntoIterator<Item = &'a str>) -> RiskLevel {
    open_levels
        .into_iter()
        .map(|l| l.parse().unwrap_or(RiskLevel::High))
        .max()
        .unwrap_or(RiskLevel::None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(attempts: i64, failures: i64, failed_accounts: i64) -> SourceActivity {
        SourceActivity {
            client_ip: "203.0.113.9".into(),
            attempts,
            failures,
            failed_accounts,
            first_at: 1_000,
            last_at: 1_000 + 2 * 60 * 60 * 1000,
        }
    }

    #[test]
    fn a_spray_is_few_wrong_passwords_on_many_accounts_then_a_right_one() {
        let spray = password_spray(&source(13, 12, 12), 5_000).unwrap();
        assert_eq!(spray.kind, DetectionKind::PasswordSpray);
        assert_eq!(spray.level, RiskLevel::High);
        assert_eq!(
            spray.summary,
            "203.0.113.9 sent wrong passwords for 12 accounts over 2.0 h (1.0 tries each), then \
             this account's right one."
        );
        assert_eq!(spray.evidence["accounts"], 12);
        // Thresholds: accounts at the minimum pass, one fewer does not.
        assert!(password_spray(&source(10, 10, SPRAY_MIN_ACCOUNTS), 5_000).is_some());
        assert!(password_spray(&source(9, 9, SPRAY_MIN_ACCOUNTS - 1), 5_000).is_none());
        // Many tries per account is brute force, not a spray.
        assert!(password_spray(&source(40, 30, 10), 5_000).is_some());
        assert!(password_spray(&source(40, 31, 10), 5_000).is_none());
        // A right password before the spray began is not its doing.
        assert!(password_spray(&source(13, 12, 12), 999).is_none());
    }

    #[test]
    fn a_token_used_from_another_country_or_network_is_anomalous() {
        let net = |asn: Option<u32>, country: Option<&str>| Network {
            asn,
            country: country.map(str::to_string),
        };
        let home = net(Some(3215), Some("FR"));
        let abroad =
            anomalous_token("Shop", &home, &net(Some(4134), Some("CN")), "192.0.2.9").unwrap();
        assert_eq!(
            (abroad.kind, abroad.level),
            (DetectionKind::AnomalousToken, RiskLevel::Medium)
        );
        assert_eq!(
            abroad.summary,
            "Shop's refresh token, issued to AS3215 (FR), was used from AS4134 (CN) (192.0.2.9)."
        );
        let mobile =
            anomalous_token("Shop", &home, &net(Some(15557), Some("FR")), "192.0.2.9").unwrap();
        assert_eq!(mobile.level, RiskLevel::Low);
        assert_eq!(mobile.evidence["new_network"], true);
        assert!(anomalous_token("Shop", &home, &home, "192.0.2.9").is_none());
        // Unknowns are not compared.
        assert!(
            anomalous_token("Shop", &net(None, None), &net(Some(1), Some("US")), "x").is_none()
        );
        assert!(anomalous_token("Shop", &home, &net(None, Some("FR")), "x").is_none());
        assert_eq!(
            anomalous_token("Shop", &home, &net(None, Some("DE")), "x").map(|f| f.level),
            Some(RiskLevel::Medium)
        );
    }

    #[test]
    fn a_failing_address_needs_enough_attempts_and_a_high_share_wrong() {
        let f = failing_source(&source(20, 18, 3)).unwrap();
        assert_eq!(f.kind, DetectionKind::MaliciousIp);
        assert_eq!(
            f.summary,
            "203.0.113.9 failed 90% of 20 password attempts over 2.0 h."
        );
        assert_eq!(f.evidence["failure_percent"], 90);
        assert!(
            failing_source(&source(20, 17, 3)).is_none(),
            "85% is under the share"
        );
        assert!(
            failing_source(&source(19, 19, 3)).is_none(),
            "under the minimum count"
        );
        assert!(failing_source(&source(0, 0, 0)).is_none());
    }

    #[test]
    fn lists_read_the_tor_format_and_cidr_lines_and_name_a_bad_line() {
        let tor = "ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E\n\
                   Published 2024-05-01 10:00:00\n\
                   LastStatus 2024-05-01 11:00:00\n\
                   ExitAddress 198.51.100.7 2024-05-01 11:02:11\n";
        assert_eq!(
            parse_list(ListKind::Tor, tor).unwrap(),
            vec!["198.51.100.7/32".parse::<IpNet>().unwrap()]
        );
        let vpn = "# hosting\n203.0.113.0/24\n2001:db8::1\n\n10.1.2.3/8 # not canonical\n";
        assert_eq!(
            parse_list(ListKind::Vpn, vpn).unwrap(),
            vec![
                "203.0.113.0/24".parse::<IpNet>().unwrap(),
                "2001:db8::1/128".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap()
            ]
        );
        let err = parse_list(ListKind::Bad, "192.0.2.1\nnot-an-ip\n").unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn addresses_on_the_lists_raise_the_sign_in_risk() {
        let lists = RiskLists::from_entries([
            ("tor", "198.51.100.7/32"),
            ("vpn", "203.0.113.0/24"),
            ("bad", "203.0.113.66/32"),
            ("unknown", "192.0.2.0/24"),
            ("tor", "garbled"),
        ]);
        let at = |ip: &str| assess_address(ip.parse().unwrap(), &lists);
        assert_eq!(sign_in_risk(&at("198.51.100.7")), RiskLevel::High);
        assert_eq!(sign_in_risk(&at("::ffff:198.51.100.7")), RiskLevel::High);
        let vpn = at("203.0.113.5");
        assert_eq!(sign_in_risk(&vpn), RiskLevel::Medium);
        assert!(
            vpn[0].summary.contains("203.0.113.0/24"),
            "{}",
            vpn[0].summary
        );
        let both = at("203.0.113.66");
        assert_eq!(both.len(), 2);
        assert_eq!(sign_in_risk(&both), RiskLevel::High);
        assert!(
            at("192.0.2.1").is_empty(),
            "an unknown list kind is ignored"
        );
        assert_eq!(sign_in_risk(&at("192.0.2.1")), RiskLevel::None);
    }

    #[test]
    fn user_risk_is_the_highest_open_level() {
        assert_eq!(user_risk([]), RiskLevel::None);
        assert_eq!(user_risk(["low", "medium"]), RiskLevel::Medium);
        assert_eq!(user_risk(["low", "high", "medium"]), RiskLevel::High);
        assert_eq!(
            user_risk(["garbled"]),
            RiskLevel::High,
            "unreadable counts as high"
        );
    }

    #[test]
    fn states_and_kinds_read_back_and_only_open_ones_count() {
        for s in [
            RiskState::AtRisk,
            RiskState::Remediated,
            RiskState::Dismissed,
            RiskState::ConfirmedSafe,
            RiskState::ConfirmedCompromised,
        ] {
            assert_eq!(RiskState::parse(s.as_str()), Some(s));
            assert_eq!(
                s.is_open(),
                crate::store::OPEN_RISK_STATES.contains(&s.as_str()),
                "the store's open states are the same"
            );
        }
        for k in DetectionKind::ALL {
            assert_eq!(DetectionKind::parse(k.as_str()), Some(k));
            assert_eq!(
                k.is_sign_in_risk(),
                crate::store::SIGN_IN_RISK_KINDS.contains(&k.as_str()),
                "the store remediates the same kinds at MFA"
            );
        }
    }
    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn at_place(
        at: i64,
        ip: &str,
        city: &str,
        country: &str,
        (lat, lon): (f64, f64),
    ) -> SignInProperties {
        SignInProperties {
            at,
            client_ip: ip.into(),
            country: Some(country.into()),
            city: Some(city.into()),
            latitude: Some(lat),
            longitude: Some(lon),
            accuracy_km: Some(20),
            asn: Some(3215),
            browser: Some("Firefox".into()),
            os: Some("Linux".into()),
            device: Some("device-a".into()),
        }
    }

    const PARIS: (f64, f64) = (48.8566, 2.3522);
    const SYDNEY: (f64, f64) = (-33.8688, 151.2093);
    const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
    const LYON: (f64, f64) = (45.764, 4.8357);

    /// `n` sign-ins from Paris, one a day, the newest at `last`.
    fn paris_history(n: usize, last: i64) -> RecentSignIns {
        let recent: Vec<_> = (0..n)
            .map(|i| at_place(last - i as i64 * DAY, "192.0.2.10", "Paris", "FR", PARIS))
            .collect();
        RecentSignIns {
            first_at: recent.last().map(|p| p.at),
            recent,
        }
    }

    fn sorted(mut h: SignInHistory) -> SignInHistory {
        h.seen.asns.sort_unstable();
        h.seen.countries.sort();
        h.seen.browsers.sort();
        h.seen.oses.sort();
        h.seen.devices.sort();
        h.seen.places.sort();
        h.seen.addresses.sort();
        h
    }

    fn arbitrary_sign_in() -> impl proptest::strategy::Strategy<Value = SignInProperties> {
        use proptest::prelude::*;
        (
            0u8..5,
            proptest::option::of((0u8..3, any::<bool>())),
            proptest::option::of(0u32..4),
            proptest::option::of(0u8..3),
            proptest::option::of(0u8..3),
        )
            .prop_map(|(ip, place, asn, browser, device)| SignInProperties {
                at: 0,
                client_ip: format!("192.0.2.{ip}"),
                country: place.map(|(c, _)| ["FR", "AU", "US"][c as usize].to_string()),
                city: place.and_then(|(c, with)| {
                    with.then(|| ["Paris", "Sydney", "Boston"][c as usize].to_string())
                }),
                latitude: place.map(|(c, _)| f64::from(c) * 10.0),
                longitude: place.map(|(c, _)| f64::from(c) * 20.0),
                accuracy_km: place.map(|_| 20),
                asn,
                browser: browser.map(|b| format!("browser-{b}")),
                os: Some("Linux".into()),
                device: device.map(|d| format!("device-{d}")),
            })
    }

    proptest::proptest! {
        /// A profile kept up one sign-in at a time compares the same as the sign-ins read
        /// one by one (while each property has fewer than PROFILE_VALUES values).
        #[test]
        fn a_profile_compares_the_same_as_the_sign_ins_it_took_in(
            sign_ins in proptest::collection::vec(arbitrary_sign_in(), 0..40)
        ) {
            let mut profile = SignInProfile::default();
            let mut recent = Vec::new();
            for (i, p) in sign_ins.into_iter().enumerate() {
                let p = SignInProperties { at: (i as i64 + 1) * HOUR, ..p };
                profile.observe(&p);
                recent.insert(0, p);
            }
            let rows = RecentSignIns { first_at: recent.last().map(|p| p.at), recent };
            let now = 100 * DAY;
            proptest::prop_assert_eq!(sorted(profile.history()), sorted(rows.summary(now)));
            // Stored as JSON and read back, it is the same profile.
            let json = serde_json::to_string(&profile).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<SignInProfile>(&json).unwrap(), profile.clone());
            // Started from a summary, it compares the same too.
            let seeded = SignInProfile::from_history(&rows.summary(now), now);
            proptest::prop_assert_eq!(sorted(seeded.history()), sorted(rows.summary(now)));
        }
    }

    #[test]
    fn a_profile_keeps_the_most_recently_seen_values() {
        let mut profile = SignInProfile::default();
        let seen = |profile: &mut SignInProfile, at: i64, device: String| {
            profile.observe(&SignInProperties {
                at: at * HOUR,
                client_ip: "192.0.2.1".into(),
                device: Some(device),
                ..SignInProperties::default()
            })
        };
        let full = PROFILE_VALUES as i64;
        for i in 0..full {
            seen(&mut profile, i, format!("device-{i}"));
        }
        // The first device comes back: it is recent again, and stays when ten new ones come.
        seen(&mut profile, full, "device-0".into());
        for i in full..full + 10 {
            seen(&mut profile, i + 1, format!("device-{i}"));
        }
        let devices = profile.history().seen.devices;
        assert_eq!(devices.len(), PROFILE_VALUES);
        assert!(devices.contains(&"device-0".to_string()));
        for gone in 1..=10 {
            assert!(
                !devices.contains(&format!("device-{gone}")),
                "device-{gone} was the oldest"
            );
        }
        assert!(devices.contains(&"device-11".to_string()));
        assert_eq!(profile.total, PROFILE_VALUES as u64 + 11);
        assert_eq!(profile.addresses[0].count, PROFILE_VALUES as u64 + 11);
    }

    #[test]
    fn distances_are_great_circles() {
        let d = great_circle_km(PARIS, SYDNEY);
        assert!((16_900.0..17_000.0).contains(&d), "{d}");
        assert!(great_circle_km(PARIS, PARIS) < 1e-9);
        assert_eq!(grouped(16_960), "16,960");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }

    #[test]
    fn the_learning_period_ends_after_ten_sign_ins_or_fourteen_days() {
        let now = 100 * DAY;
        assert!(!paris_history(9, now - HOUR).summary(now).learned(now));
        assert!(paris_history(10, now - HOUR).summary(now).learned(now));
        let mut old = paris_history(2, now - HOUR);
        old.first_at = Some(now - 14 * DAY);
        assert!(old.summary(now).learned(now));
        old.first_at = Some(now - 14 * DAY + 1);
        assert!(
            !old.summary(now).learned(now),
            "the clock has not yet moved far enough"
        );
        assert!(!SignInHistory::default().learned(now));
    }

    #[test]
    fn paris_then_sydney_two_hours_later_is_atypical_travel_with_its_evidence() {
        let now = 100 * DAY;
        let history = paris_history(12, now - 2 * HOUR);
        let sydney = at_place(now, "198.51.100.20", "Sydney", "AU", SYDNEY);
        let f = atypical_travel(&sydney, &history.summary(now), &RiskLists::default(), now)
            .expect("impossible travel");
        assert_eq!(f.kind, DetectionKind::AtypicalTravel);
        assert_eq!(f.level, RiskLevel::Medium);
        assert!(
            f.summary
                .starts_with("Sydney, AU 2 h after Paris, FR: 16,9"),
            "{}",
            f.summary
        );
        assert!(f.summary.contains(" km/h"), "{}", f.summary);
        assert_eq!(f.evidence["from"]["place"], "Paris, FR");
        assert_eq!(f.evidence["to"]["latitude"], SYDNEY.0);
        let speed = f.evidence["speed_kmh"].as_f64().unwrap();
        assert!((8_400.0..8_500.0).contains(&speed), "{speed}");
    }

    #[test]
    fn travel_at_airliner_speed_or_slower_is_not_atypical() {
        let now = 100 * DAY;
        // Paris to New York, 5,837 km, in 7 h 30: about 770 km/h.
        let history = paris_history(12, now - 7 * HOUR - 30 * 60_000);
        let ny = at_place(now, "198.51.100.30", "New York", "US", NEW_YORK);
        assert_eq!(
            atypical_travel(&ny, &history.summary(now), &RiskLists::default(), now),
            None
        );
        // The same trip in 5 h is too fast.
        let history = paris_history(12, now - 5 * HOUR);
        assert!(atypical_travel(&ny, &history.summary(now), &RiskLists::default(), now).is_some());
    }

    #[test]
    fn the_accuracy_radii_are_taken_off_the_distance() {
        let now = 100 * DAY;
        // Paris to Lyon, 392 km, in 20 minutes is 1,176 km/h...
        let mut history = paris_history(12, now - 20 * 60_000);
        let lyon = at_place(now, "198.51.100.40", "Lyon", "FR", LYON);
        assert!(
            atypical_travel(&lyon, &history.summary(now), &RiskLists::default(), now).is_some()
        );
        // ...but not when each place may be 100 km off: 192 km in 20 minutes is 576 km/h.
        history.recent[0].accuracy_km = Some(100);
        let lyon = SignInProperties {
            accuracy_km: Some(100),
            ..lyon
        };
        assert_eq!(
            atypical_travel(&lyon, &history.summary(now), &RiskLists::default(), now),
            None
        );
    }

    #[test]
    fn travel_is_quiet_while_learning_for_familiar_places_and_from_anonymizers() {
        let now = 100 * DAY;
        let sydney = at_place(now, "198.51.100.20", "Sydney", "AU", SYDNEY);
        let lists = RiskLists::default();
        // Learning: three sign-ins over three days.
        assert_eq!(
            atypical_travel(
                &sydney,
                &paris_history(3, now - 2 * HOUR).summary(now),
                &lists,
                now
            ),
            None
        );
        // A person with two homes: Sydney is in the history.
        let mut two_homes = paris_history(12, now - 2 * HOUR);
        two_homes.recent[5] = at_place(now - 6 * DAY, "198.51.100.21", "Sydney", "AU", SYDNEY);
        assert_eq!(
            atypical_travel(&sydney, &two_homes.summary(now), &lists, now),
            None
        );
        // The new address is a VPN exit: its place is not the person's.
        let vpn = RiskLists::from_entries([("vpn", "198.51.100.0/24")]);
        assert_eq!(
            atypical_travel(
                &sydney,
                &paris_history(12, now - 2 * HOUR).summary(now),
                &vpn,
                now
            ),
            None
        );
        // No coordinates, no travel.
        let nowhere = SignInProperties {
            latitude: None,
            ..sydney.clone()
        };
        assert_eq!(
            atypical_travel(
                &nowhere,
                &paris_history(12, now - 2 * HOUR).summary(now),
                &lists,
                now
            ),
            None
        );
    }

    #[test]
    fn unfamiliar_properties_are_levelled_by_how_many_are_new() {
        let now = 100 * DAY;
        let history = paris_history(12, now - DAY);
        let same = at_place(now, "192.0.2.10", "Paris", "FR", PARIS);
        assert_eq!(unfamiliar_features(&same, &history.summary(now), now), None);
        // A second device alone is ordinary.
        let second_device = SignInProperties {
            device: Some("device-b".into()),
            ..same.clone()
        };
        assert_eq!(
            unfamiliar_features(&second_device, &history.summary(now), now),
            None
        );
        // New browser and device: low.
        let two = SignInProperties {
            browser: Some("Chrome".into()),
            ..second_device.clone()
        };
        assert_eq!(
            unfamiliar_features(&two, &history.summary(now), now)
                .unwrap()
                .level,
            RiskLevel::Low
        );
        // And a new network: medium.
        let three = SignInProperties {
            asn: Some(64_500),
            ..two.clone()
        };
        let f = unfamiliar_features(&three, &history.summary(now), now).unwrap();
        assert_eq!(f.level, RiskLevel::Medium);
        assert!(f.summary.contains("network AS64500"), "{}", f.summary);
        // Everything new: high.
        let all = SignInProperties {
            country: Some("BR".into()),
            os: Some("Windows".into()),
            ..three
        };
        assert_eq!(
            unfamiliar_features(&all, &history.summary(now), now)
                .unwrap()
                .level,
            RiskLevel::High
        );
        // During the learning period nothing is unfamiliar.
        assert_eq!(
            unfamiliar_features(&all, &paris_history(4, now - DAY).summary(now), now),
            None
        );
    }

    #[test]
    fn a_property_the_history_never_recorded_is_not_compared() {
        let now = 100 * DAY;
        let mut history = paris_history(12, now - DAY);
        for p in &mut history.recent {
            p.asn = None;
            p.device = None;
        }
        let current = SignInProperties {
            asn: Some(64_500),
            device: Some("device-z".into()),
            browser: Some("Chrome".into()),
            ..at_place(now, "192.0.2.10", "Paris", "FR", PARIS)
        };
        assert_eq!(
            unfamiliar_features(&current, &history.summary(now), now),
            None,
            "only the browser is comparable, and one new property is ordinary"
        );
    }

    #[test]
    fn a_vpn_the_person_always_uses_is_not_flagged_but_tor_always_is() {
        let now = 100 * DAY;
        let lists =
            RiskLists::from_entries([("vpn", "203.0.113.0/24"), ("tor", "198.51.100.7/32")]);
        let mut history = paris_history(12, now - DAY);
        let via_vpn = at_place(now, "203.0.113.9", "Paris", "FR", PARIS);
        assert_eq!(
            sign_in_risk(&assess_sign_in(
                &via_vpn,
                &history.summary(now),
                &lists,
                now
            )),
            RiskLevel::Medium,
            "a VPN never used before"
        );
        for p in history.recent.iter_mut().take(FAMILIAR_RANGE_SIGN_INS) {
            p.client_ip = "203.0.113.40".into();
        }
        assert_eq!(
            assess_sign_in(&via_vpn, &history.summary(now), &lists, now),
            vec![],
            "the account's own VPN"
        );
        let mut tor_history = history.clone();
        for p in &mut tor_history.recent {
            p.client_ip = "198.51.100.7".into();
        }
        let via_tor = at_place(now, "198.51.100.7", "Paris", "FR", PARIS);
        assert_eq!(
            sign_in_risk(&assess_sign_in(
                &via_tor,
                &tor_history.summary(now),
                &lists,
                now
            )),
            RiskLevel::High
        );
    }

    #[test]
    fn brute_force_and_leaked_passwords_are_user_risk() {
        assert_eq!(brute_force(0), None);
        assert_eq!(brute_force(BRUTE_FORCE_FAILURES - 1), None);
        assert_eq!(
            brute_force(BRUTE_FORCE_FAILURES).unwrap().level,
            RiskLevel::Medium
        );
        let f = brute_force(1_234).unwrap();
        assert_eq!(f.level, RiskLevel::High);
        assert!(f.summary.contains("1,234 wrong"), "{}", f.summary);
        assert!(!f.kind.is_sign_in_risk());
        let leaked = leaked_credentials(3_861_493, "sorted file");
        assert_eq!(leaked.level, RiskLevel::High);
        assert!(leaked.summary.contains("3,861,493 times"));
        for k in DetectionKind::ALL {
            assert_eq!(DetectionKind::parse(k.as_str()), Some(k));
        }
    }
}
