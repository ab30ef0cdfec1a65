//! Identity Protection's plain data and pure rules: the kinds of risk detection, their states,
//! and how detection levels aggregate into an account's user risk.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::conditional_access::RiskLevel;

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionKind {
    /// An administrator confirmed the account compromised.
    AdminConfirmedCompromised,
    /// A sign-in from a Tor exit node or an anonymizing VPN or hosting range.
    AnonymousIp,
    /// A sign-in from a known-bad address.
    MaliciousIp,
}

impl DetectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "admin-confirmed-compromised",
            DetectionKind::AnonymousIp => "anonymous-ip",
            DetectionKind::MaliciousIp => "malicious-ip",
        }
    }

    /// The kind named `s` (see [`DetectionKind::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin-confirmed-compromised" => DetectionKind::AdminConfirmedCompromised,
            "anonymous-ip" => DetectionKind::AnonymousIp,
            "malicious-ip" => DetectionKind::MaliciousIp,
            _ => return None,
        })
    }

    /// Its name in the console.
    pub fn label(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "Admin confirmed user compromised",
            DetectionKind::AnonymousIp => "Anonymous IP address",
            DetectionKind::MaliciousIp => "Malicious IP address",
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
        let k = DetectionKind::AdminConfirmedCompromised;
        assert_eq!(DetectionKind::parse(k.as_str()), Some(k));
    }
}
