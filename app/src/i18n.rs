//! The message catalogue: every string a customer reads, looked up by key and locale, with the
//! designer's overrides from the branding record applied on top. English is the first locale.

use std::collections::BTreeMap;
use std::sync::Arc;

/// (key, English text). `{product}` is replaced with the branded product name.
const EN: &[(&str, &str)] = &[
    ("common.email", "Email"),
    ("common.password", "Password"),
    ("common.name", "Name"),
    ("common.show_password", "Show password"),
    ("common.error_reference", "Something went wrong on our side. Please try again. Reference:"),
    ("common.overloaded", "We are busy right now. Please try again in a moment."),
    ("common.too_many_requests", "Too many requests from your network. Please try again later."),
    ("common.throttled", "Too many attempts. Please wait {seconds} seconds and try again."),
    ("common.skip_to_content", "Skip to content"),
    ("common.footer", "Secured by {product}"),
    ("sign_in.title", "Sign in"),
    ("sign_in.lead", "Sign in to your {product} account."),
    ("sign_in.submit", "Sign in"),
    ("sign_in.invalid", "The email or password is incorrect."),
    ("sign_in.closed", "Password sign-in is paused for this account after too many failed attempts. Sign in with an email code instead."),
    ("sign_in.disabled", "This account is disabled."),
    ("sign_in.forgot", "Forgot your password?"),
    ("sign_in.use_code", "Email me a sign-in code"),
    ("sign_in.no_account", "New here?"),
    ("sign_in.create", "Create an account"),
    ("sign_in_code.title", "Sign in with a code"),
    ("sign_in_code.lead", "We will email you a 6-digit code."),
    ("sign_in_code.submit", "Send code"),
    ("sign_in_code.use_password", "Sign in with a password instead"),
    ("sign_up.title", "Create your account"),
    ("sign_up.lead", "Create a {product} account."),
    ("sign_up.password_hint", "At least 8 characters; 15 or more is better. Avoid common passwords and your email address."),
    ("sign_up.submit", "Create account"),
    ("sign_up.use_code", "Sign up with an email code instead"),
    ("sign_up.have_account", "Already have an account?"),
    ("sign_up.sign_in", "Sign in"),
    ("sign_up_code.title", "Create your account with a code"),
    ("sign_up_code.lead", "No password needed: we will email you a 6-digit code each time you sign in."),
    ("sign_up_code.submit", "Send code"),
    ("sign_up_code.use_password", "Sign up with a password instead"),
    ("code.title", "Check your email"),
    ("code.lead", "If {email} can receive mail from us, a 6-digit code is on its way. It expires in 10 minutes."),
    ("code.label", "Code"),
    ("code.submit", "Verify"),
    ("code.resend", "Send a new code"),
    ("code.resent", "We sent a new code."),
    ("code.resend_too_soon", "Please wait a minute before asking for another code."),
    ("code.wrong", "That code is not right. Attempts left: {n}."),
    ("code.invalid_format", "Enter the 6 digits from the email."),
    ("code.dead", "This code has expired or can no longer be used. Please start again."),
    ("code.start_again", "Start again"),
    ("code.account_exists", "You already have an account with this email. Sign in instead."),
    ("reset.title", "Reset your password"),
    ("reset.lead", "We will email you a code to reset your password."),
    ("reset.submit", "Send code"),
    ("reset.back", "Back to sign in"),
    ("new_password.title", "Choose a new password"),
    ("new_password.label", "New password"),
    ("new_password.submit", "Save password"),
    ("account.title", "Your account"),
    ("account.signed_in_as", "Signed in as"),
    ("account.sign_out", "Sign out"),
    ("account.profile", "Profile"),
    ("account.save_profile", "Save profile"),
    ("account.profile_saved", "Profile saved."),
    ("account.change_password", "Change password"),
    ("account.current_password", "Current password"),
    ("account.new_password", "New password"),
    ("account.no_password", "Your account has no password yet: you sign in with email codes. Set one with a password reset."),
    ("account.password_changed", "Password changed. Your other sessions were signed out."),
    ("account.current_password_wrong", "The current password is incorrect."),
    ("account.sessions", "Sessions"),
    ("account.sessions_lead", "Where your account is signed in. Sign out of any session you do not recognise."),
    ("account.this_device", "This device"),
    ("account.device", "Device"),
    ("account.ip", "IP address"),
    ("account.signed_in", "Signed in"),
    ("account.last_active", "Last active"),
    ("account.sign_out_session", "Sign out"),
    ("account.sign_out_everywhere", "Sign out everywhere"),
    ("account.session_revoked", "The session was signed out."),
    ("second_factor.title", "Two-step verification"),
    ("second_factor.lead", "Confirm it is you: enter the 6-digit code from your authenticator app, a texted or emailed code, or a recovery code."),
    ("second_factor.label", "Authentication code"),
    ("second_factor.submit", "Verify"),
    ("second_factor.email", "Email me a code instead"),
    ("second_factor.email_sent", "We emailed you a code. Enter it above."),
    ("second_factor.recovery_hint", "Lost your device? Enter one of your recovery codes instead."),
    ("recovery.title", "Recovery codes"),
    ("recovery.count", "Unused recovery codes: {n}."),
    ("recovery.none", "You have no recovery codes. Create some so you can still sign in if you lose your device."),
    ("recovery.create", "Create new recovery codes"),
    ("recovery.new_title", "Your new recovery codes"),
    ("recovery.new_lead", "Each code works once, in place of a code from your app. Save them somewhere safe now: they will not be shown again, and your earlier codes no longer work."),
    ("second_factor.wrong", "That code is not right. Enter the newest code from your app."),
    ("second_factor.dead", "This sign-in has expired or was already completed. Please sign in again."),
    ("second_factor.lead_passkey", "Confirm it is you with your passkey, or enter a code below."),
    ("security.title", "Security info"),
    ("security.add_title", "Add a sign-in method"),
    ("security.back_to_security", "Back to security info"),
    ("security.phone", "Text messages to {number}"),
    ("second_factor.sms", "Text a code to {number}"),
    ("second_factor.sms_sent", "We texted you a code. Enter it above."),
    ("sms.weakest", "Text messages are the least secure way to prove it is you: numbers can be taken over and texts intercepted. Use a passkey or an authenticator app if you can."),
    ("sms.weakest_short", "Texts are the least secure option; a passkey or an authenticator app is safer."),
    ("sms.add_title", "Text messages"),
    ("sms.number", "Mobile phone number"),
    ("sms.number_hint", "In international format with the country code, such as +1 415 555 0100."),
    ("sms.send", "Text me a code"),
    ("sms.verify_title", "Check your phone"),
    ("sms.verify_lead", "We texted a 6-digit code to {number}. Enter it to add this number."),
    ("sms.verify_submit", "Add phone number"),
    ("sms.added_notice", "Phone number added. You can get sign-in codes by text message."),
    ("sms.removed_notice", "Phone number removed."),
    ("phone.invalid", "Enter a mobile number in international format, starting with + and the country code."),
    ("phone.country_not_allowed", "Text messages cannot be sent to numbers in that country. Use a passkey or an authenticator app instead."),
    ("email.text_code.subject", "Your code"),
    ("email.text_code.body", "{code} is your {product} code. Do not share it with anyone."),
    ("security.mfa_required", "Your organization requires two-step verification. Add a passkey or an authenticator app to continue."),
    ("security.last_method", "Your organization requires two-step verification, and this is your only method. Add another one before removing this."),
    ("passkey.sign_in", "Sign in with a passkey"),
    ("passkey.use", "Use a passkey"),
    ("passkey.add", "Add a passkey"),
    ("passkey.working", "Waiting for your passkey…"),
    ("passkey.cancelled", "The passkey request was cancelled or timed out. Try again, or use another way."),
    ("passkey.unsupported", "This browser cannot use passkeys here. Use another way to sign in."),
    ("passkey.failed", "Something went wrong with the passkey. Try again."),
    ("passkey.invalid", "That passkey was not accepted. Try again, or use another way to sign in."),
    ("passkey.suspicious", "That passkey was refused because it looks copied or altered. Use another way to sign in, then check your security info."),
    ("passkey.name", "Passkey name"),
    ("passkey.name_hint", "A name that tells you where the passkey lives, such as “Work laptop” or “Phone”."),
    ("passkey.name_invalid", "Give the passkey a name of 1 to 64 characters."),
    ("passkey.limit", "You have as many passkeys as an account can have. Remove one first."),
    ("passkey.default_name", "Passkey {n}"),
    ("passkey.added_notice", "Passkey added. You can now sign in with it, without a password."),
    ("passkey.removed_notice", "Passkey removed."),
    ("passkey.renamed_notice", "Passkey renamed."),
    ("passkey.rename", "Rename"),
    ("passkey.new_name", "New name for {name}"),
    ("passkey.synced", "Passkey, synced between your devices"),
    ("passkey.device", "Passkey on one device or security key"),
    ("security.lead", "The ways you prove it is you when you sign in."),
    ("security.methods", "Sign-in methods"),
    ("security.authenticator", "Authenticator app"),
    ("security.added", "Added"),
    ("security.last_used", "Last used"),
    ("security.never", "Never"),
    ("security.remove", "Remove"),
    ("security.add_authenticator", "Add an authenticator app"),
    ("security.none", "You have not added a second way to sign in yet. Add an authenticator app so that a stolen password alone cannot open your account."),
    ("security.added_notice", "Authenticator app added. You will be asked for a code when you sign in."),
    ("security.removed_notice", "Authenticator app removed."),
    ("security.reauthenticated", "Thanks. You can change your security info for the next 10 minutes."),
    ("security.reauth_title", "Confirm it is you"),
    ("security.reauth_lead", "To change your security info, enter your password again."),
    ("security.reauth_submit", "Continue"),
    ("security.reauth_with_code", "No password? Sign in again with an email code, then come back here."),
    ("security.reauth_required", "For your security, confirm it is you before changing your security info."),
    ("security.back", "Back to your account"),
    ("account.security_link", "Security info"),
    ("enroll.title", "Add an authenticator app"),
    ("enroll.scan", "Scan this QR code with your authenticator app (for example Microsoft Authenticator, Google Authenticator or 1Password)."),
    ("enroll.qr_label", "QR code for your authenticator app"),
    ("enroll.manual", "Cannot scan it? Enter this key in the app instead:"),
    ("enroll.key", "Setup key"),
    ("enroll.uri", "Setup link"),
    ("enroll.enter_code", "Then enter the 6-digit code the app shows."),
    ("enroll.label", "Code from the app"),
    ("enroll.submit", "Add authenticator app"),
    ("enroll.expired", "This setup has expired. Start again from your security info."),
    ("error.title", "Something went wrong"),
    ("error.not_found", "Page not found"),
    ("error.not_found_lead", "There is nothing at this address."),
    ("error.forbidden", "This request was refused."),
    ("error.go_home", "Go to the start page"),
    ("federation.or", "Or"),
    ("federation.continue_with", "Continue with {provider}"),
    ("federation.link_with", "Link {provider}"),
    ("federation.redirect_title", "Continuing to {provider}"),
    ("federation.redirect_lead", "Taking you to {provider} to sign in. If nothing happens, use the button below."),
    ("federation.error_title", "Sign-in did not complete"),
    ("federation.back_to_sign_in", "Back to sign in"),
    ("federation.cancelled", "You cancelled signing in with {provider}. Choose another way to sign in, or try again."),
    ("federation.unavailable", "{provider} is not answering right now. Try again in a moment, or choose another way to sign in."),
    ("federation.failed", "{provider} could not sign you in. Try again, or choose another way to sign in."),
    ("federation.provider_failed", "The sign-in provider could not sign you in. Try again, or choose another way to sign in."),
    ("federation.link_required", "An account with this email already exists. Sign in to it first to link this provider."),
    ("federation.expired", "This sign-in attempt expired or was already used. Start again from the sign-in page."),
    ("federation.unknown_provider", "This sign-in option is not available."),
    ("federation.already_linked", "That account is already linked to a different account here."),
    ("federation.finish_title", "Finish creating your account"),
    ("federation.finish_lead", "{provider} confirmed who you are. We need a little more to create your account."),
    ("federation.finish_lead_verified", "{provider} confirmed your email {email}. Tell us your name to create your account."),
    ("federation.email_hint", "We will email you a code to confirm this address."),
    ("federation.finish_submit", "Continue"),
    ("federation.link_title", "Link {provider} to your account"),
    ("federation.link_lead", "An account with {email} already exists. To use {provider} to sign in to it, first sign in to that account in the usual way: with its password, a code or a passkey."),
    ("federation.link_sign_in", "Sign in to link"),
    ("federation.link_confirm_lead", "You proved that {email} is yours. Link {provider} so you can sign in with it next time?"),
    ("federation.link_confirm", "Link {provider}"),
    ("federation.link_cancel", "Do not link"),
    ("federation.link_other_session", "You are signed in with another account, or signed in before this link was started. Sign out, then sign in to {email} to link it."),
    ("federation.linked_notice", "The account is linked. You can sign in with it from now on."),
    ("federation.link_cancelled", "Nothing was linked."),
    ("federation.unlinked_notice", "The account was unlinked."),
    ("federation.linked_title", "Linked accounts"),
    ("federation.linked_none", "No accounts from other providers are linked."),
    ("federation.linked_on", "Linked"),
    ("federation.unlink", "Unlink"),
    ("federation.link_more", "Link another account"),
    ("federation.email_always", "You can always sign in with a code sent to your email address, whatever is linked."),
    ("email.sign_up_code.subject", "{code} is your {product} verification code"),
    ("email.sign_up_code.body", "Your {product} verification code is {code}.\n\nEnter it on the page where you started creating your account. It expires in 10 minutes.\n\nIf you did not ask for this, you can ignore this email."),
    ("email.sign_up_existing_account.subject", "You already have a {product} account"),
    ("email.sign_up_existing_account.body", "Someone, probably you, tried to create a {product} account with this email address, but an account already exists.\n\nSign in instead, or reset your password if you have forgotten it.\n\nIf this was not you, you can ignore this email."),
    ("email.sign_in_code.subject", "{code} is your {product} sign-in code"),
    ("email.sign_in_code.body", "Your {product} sign-in code is {code}.\n\nIt expires in 10 minutes. Never share it: {product} will never ask you for it.\n\nIf you did not try to sign in, you can ignore this email."),
    ("email.no_account.subject", "No {product} account for this address"),
    ("email.no_account.body", "Someone, probably you, asked to sign in to {product} or reset a password with this email address, but there is no account for it.\n\nYou can create one on the sign-up page.\n\nIf this was not you, you can ignore this email."),
    ("email.reset_code.subject", "{code} is your {product} password reset code"),
    ("email.reset_code.body", "Your {product} password reset code is {code}.\n\nIt expires in 10 minutes. If you did not ask to reset your password, you can ignore this email: your password stays as it is."),
    ("email.password_changed.subject", "Your {product} password was changed"),
    ("email.password_changed.body", "The password of your {product} account was just changed and your other sessions were signed out.\n\nIf this was not you, reset your password now."),
    ("name.invalid", "Enter your name (up to 100 characters)."),
    ("email.missing", "Enter your email address."),
    ("email.invalid", "Enter a valid email address, like name@example.com."),
    ("password.too_short", "Use at least 8 characters."),
    ("password.too_long", "Use at most 1024 characters."),
    ("password.common", "This password is too common. Choose something harder to guess."),
    ("password.contains_email", "Your password must not contain your email address."),
    ("password.contains_product_name", "Your password must not contain the name of this service."),
];

pub fn is_known_key(key: &str) -> bool {
    EN.iter().any(|(k, _)| *k == key)
}

/// The texts for one page render: the catalogue for the locale plus branding overrides.
#[derive(Debug, Clone, Default)]
pub struct Texts {
    overrides: Arc<BTreeMap<String, String>>,
    product: Arc<str>,
}

impl Texts {
    pub fn new(overrides: BTreeMap<String, String>, product: &str) -> Self {
        Texts {
            overrides: Arc::new(overrides),
            product: product.into(),
        }
    }

    /// The text for `key`; an unknown key renders as the key itself so it is noticed.
    pub fn get(&self, key: &str) -> String {
        let raw = self
            .overrides
            .get(key)
            .map(String::as_str)
            .or_else(|| EN.iter().find(|(k, _)| *k == key).map(|(_, v)| *v))
            .unwrap_or(key);
        raw.replace("{product}", &self.product)
    }

    /// The text with one `{name}` placeholder filled.
    pub fn fill(&self, key: &str, name: &str, value: &str) -> String {
        self.get(key).replace(&format!("{{{name}}}"), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_overrides_apply() {
        let mut keys: Vec<_> = EN.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(before, keys.len());
        let t = Texts::new(
            [("sign_in.title".to_string(), "Welcome back".to_string())].into(),
            "Acme",
        );
        assert_eq!(t.get("sign_in.title"), "Welcome back");
        assert_eq!(t.get("sign_in.lead"), "Sign in to your Acme account.");
        assert_eq!(
            t.fill("code.wrong", "n", "3"),
            "That code is not right. Attempts left: 3."
        );
    }
}
