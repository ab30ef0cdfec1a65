//! Identity Protection's plain data and pure rules: the kinds of risk detection, their states,
//! and how detection levels aggregate into an account's user risk.

use crate::conditional_access::RiskLevel;

/// What was detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectionKind {
    /// An administrator confirmed the account compromised.
    AdminConfirmedCompromised,
}

impl DetectionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "admin-confirmed-compromised",
        }
    }

    /// The kind named `s` (see [`DetectionKind::as_str`]).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "admin-confirmed-compromised" => DetectionKind::AdminConfirmedCompromised,
            _ => return None,
        })
    }

    /// Its name in the console.
    pub fn label(self) -> &'static str {
        match self {
            DetectionKind::AdminConfirmedCompromised => "Admin confirmed user compromised",
        }
    }
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
