//! The strength of a sign-in: the set of methods it proved, as a type. Sessions, pending
//! sign-ins and grants store it as a short string; `amr`, `acr` and every "is this
//! multifactor?" question are answered here and nowhere else.
//!
//! Two proofs of the same mailbox are one factor; a passkey with user verification (which every
//! ceremony requires) is two factors by itself and the only phishing-resistant method.

/// A way of proving who one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A password the account already had (a password chosen at sign-up or reset proves
    /// nothing and is not recorded).
    Password,
    /// A code sent to the account's email address.
    EmailCode,
    /// A code texted to the account's phone number.
    TextMessage,
    /// A code from an authenticator app (TOTP).
    AuthenticatorApp,
    /// One of the account's recovery codes.
    RecoveryCode,
    /// A passkey bound to one device.
    DeviceBoundPasskey,
    /// A passkey that syncs between devices.
    SyncedPasskey,
    /// An account at another identity provider.
    Provider,
}

/// What each method proves control of; the strength counts kinds, not methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FactorKind {
    Knowledge,
    Mailbox,
    Phone,
    App,
    Recovery,
    Passkey,
    Provider,
}

impl AuthMethod {
    /// The stored name (and, where RFC 8176 has one, the `amr` value).
    fn stored(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::EmailCode => "email",
            AuthMethod::TextMessage => "sms",
            AuthMethod::AuthenticatorApp => "otp",
            AuthMethod::RecoveryCode => "rc",
            AuthMethod::DeviceBoundPasskey => "hwk",
            AuthMethod::SyncedPasskey => "swk",
            AuthMethod::Provider => "fed",
        }
    }

    /// The RFC 8176 `amr` value applications receive (`email` has none there; a recovery code
    /// is a one-time password).
    fn amr(self) -> &'static str {
        match self {
            AuthMethod::RecoveryCode => "otp",
            other => other.stored(),
        }
    }

    fn kind(self) -> FactorKind {
        match self {
            AuthMethod::Password => FactorKind::Knowledge,
            AuthMethod::EmailCode => FactorKind::Mailbox,
            AuthMethod::TextMessage => FactorKind::Phone,
            AuthMethod::AuthenticatorApp => FactorKind::App,
            AuthMethod::RecoveryCode => FactorKind::Recovery,
            AuthMethod::DeviceBoundPasskey | AuthMethod::SyncedPasskey => FactorKind::Passkey,
            AuthMethod::Provider => FactorKind::Provider,
        }
    }

    fn is_passkey(self) -> bool {
        self.kind() == FactorKind::Passkey
    }
}

/// The methods a sign-in proved, in the order they were proven, each once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Strength {
    methods: Vec<AuthMethod>,
}

/// The `acr` of a sign-in that proved two factors.
pub const ACR_MULTIFACTOR: &str = "urn:gatehouse:acr:mfa";
/// The `acr` of a sign-in that proved one.
pub const ACR_SINGLE_FACTOR: &str = "urn:gatehouse:acr:sfa";

impl Strength {
    /// A sign-in proven by one method.
    pub fn of(method: AuthMethod) -> Self {
        Strength {
            methods: vec![method],
        }
    }

    /// This strength with one more method proven.
    pub fn with(mut self, method: AuthMethod) -> Self {
        if !self.methods.contains(&method) {
            self.methods.push(method);
        }
        self
    }

    pub fn methods(&self) -> &[AuthMethod] {
        &self.methods
    }

    /// Two factors of different kinds (the same mailbox twice is one), or a passkey, whose
    /// user verification makes it two by itself.
    pub fn is_multifactor(&self) -> bool {
        if self.methods.iter().any(|m| m.is_passkey()) {
            return true;
        }
        let mut kinds: Vec<FactorKind> = Vec::new();
        for kind in self.methods.iter().map(|m| m.kind()) {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        kinds.len() >= 2
    }

    /// Bound to the origin it was made for, so a look-alike site cannot relay it: a passkey.
    pub fn is_phishing_resistant(&self) -> bool {
        self.methods.iter().any(|m| m.is_passkey())
    }

    /// No password was part of it.
    pub fn is_passwordless(&self) -> bool {
        !self.methods.is_empty() && !self.methods.contains(&AuthMethod::Password)
    }

    /// Whether the mailbox was the first thing proven.
    pub fn started_with_mailbox(&self) -> bool {
        self.methods.first() == Some(&AuthMethod::EmailCode)
    }

    /// The `amr` values applications receive: the methods, then `mfa` when multifactor.
    pub fn amr(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for value in self.methods.iter().map(|m| m.amr()) {
            if !out.contains(&value) {
                out.push(value);
            }
        }
        if self.is_multifactor() {
            out.push("mfa");
        }
        out
    }

    pub fn acr(&self) -> &'static str {
        if self.is_multifactor() {
            ACR_MULTIFACTOR
        } else {
            ACR_SINGLE_FACTOR
        }
    }

    /// The stored form: the methods' names, then `mfa` when multifactor (so the stored value
    /// reads like an `amr` list and older rows parse the same way).
    pub fn stored(&self) -> String {
        let mut out: Vec<&'static str> = self.methods.iter().map(|m| m.stored()).collect();
        if self.is_multifactor() {
            out.push("mfa");
        }
        out.join(" ")
    }

    /// Reads a stored strength. Rows written before emailed codes had their own name used
    /// `otp` for them too; a row without `mfa` can only have meant the mailbox then. A row
    /// without `mfa` is single-factor whatever it lists (older sign-up rows listed the chosen
    /// password beside the proven mailbox): only its first method is kept.
    pub fn parse(stored: &str) -> Self {
        let tokens: Vec<&str> = stored.split_whitespace().collect();
        let multifactor = tokens.contains(&"mfa");
        let mut strength = Strength::default();
        for token in tokens {
            let method = match token {
                "pwd" => AuthMethod::Password,
                "email" => AuthMethod::EmailCode,
                "sms" => AuthMethod::TextMessage,
                "otp" if multifactor => AuthMethod::AuthenticatorApp,
                "otp" => AuthMethod::EmailCode,
                "rc" => AuthMethod::RecoveryCode,
                "hwk" => AuthMethod::DeviceBoundPasskey,
                "swk" => AuthMethod::SyncedPasskey,
                "fed" => AuthMethod::Provider,
                _ => continue,
            };
            strength = strength.with(method);
        }
        if !multifactor && strength.is_multifactor() {
            strength.methods.truncate(1);
        }
        strength
    }
}

#[cfg(test)]
mod tests {
    use super::AuthMethod::*;
    use super::*;

    #[test]
    fn two_factors_of_different_kinds_are_multifactor_and_the_mailbox_counts_once() {
        let pwd = Strength::of(Password);
        assert!(!pwd.is_multifactor());
        assert_eq!(pwd.amr(), vec!["pwd"]);
        assert_eq!(pwd.acr(), ACR_SINGLE_FACTOR);
        let app = pwd.clone().with(AuthenticatorApp);
        assert!(app.is_multifactor());
        assert_eq!(app.amr(), vec!["pwd", "otp", "mfa"]);
        assert_eq!(app.stored(), "pwd otp mfa");
        assert_eq!(app.acr(), ACR_MULTIFACTOR);
        assert_eq!(
            pwd.clone().with(EmailCode).amr(),
            vec!["pwd", "email", "mfa"]
        );
        let mailbox_twice = Strength::of(EmailCode).with(EmailCode);
        assert!(!mailbox_twice.is_multifactor());
        assert_eq!(mailbox_twice.amr(), vec!["email"]);
        assert!(Strength::of(EmailCode)
            .with(AuthenticatorApp)
            .is_multifactor());
        assert_eq!(
            Strength::of(Password).with(RecoveryCode).amr(),
            vec!["pwd", "otp", "mfa"]
        );
    }

    #[test]
    fn a_passkey_is_multifactor_phishing_resistant_and_passwordless() {
        let passkey = Strength::of(DeviceBoundPasskey);
        assert!(passkey.is_multifactor());
        assert!(passkey.is_phishing_resistant());
        assert!(passkey.is_passwordless());
        assert_eq!(passkey.amr(), vec!["hwk", "mfa"]);
        assert_eq!(Strength::of(SyncedPasskey).stored(), "swk mfa");
        let pwd = Strength::of(Password).with(TextMessage);
        assert!(!pwd.is_phishing_resistant());
        assert!(!pwd.is_passwordless());
        assert!(Strength::of(Provider).is_passwordless());
    }

    #[test]
    fn stored_strengths_read_back_including_rows_from_before_emailed_codes_had_a_name() {
        for s in [
            Strength::of(Password).with(AuthenticatorApp),
            Strength::of(EmailCode),
            Strength::of(Provider).with(TextMessage),
            Strength::of(Password).with(RecoveryCode),
            Strength::of(SyncedPasskey),
            Strength::of(EmailCode).with(AuthenticatorApp),
        ] {
            assert_eq!(Strength::parse(&s.stored()), s, "{}", s.stored());
        }
        // Older rows: `otp` alone was the mailbox; with `mfa` it was the app.
        assert_eq!(Strength::parse("otp"), Strength::of(EmailCode));
        assert_eq!(Strength::parse("pwd otp"), Strength::of(Password));
        assert!(!Strength::parse("fed otp").is_multifactor());
        assert_eq!(
            Strength::parse("pwd otp mfa"),
            Strength::of(Password).with(AuthenticatorApp)
        );
        assert_eq!(Strength::parse("fed weird"), Strength::of(Provider));
        assert_eq!(Strength::parse(""), Strength::default());
    }
}
