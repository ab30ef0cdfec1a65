//! The passkey island: one button that runs a WebAuthn ceremony with the server (register a
//! passkey, or sign in with one), and optionally a waiting autofill request so the browser offers
//! passkeys in the email field (conditional mediation).
//!
//! The server hands out the ceremony's options as WebAuthn JSON; the browser's
//! `PublicKeyCredential.parse*OptionsFromJSON` and `toJSON` convert both ways, so no binary
//! juggling happens here. Without script the island stays hidden: passkeys need JavaScript,
//! every other way in works without it.

use leptos::prelude::*;

/// What the island asks the browser for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ceremony {
    /// `navigator.credentials.create`: register a passkey.
    Create,
    /// `navigator.credentials.get`: sign in with a passkey.
    Get,
}

/// The island's texts, resolved on the server in the page's language.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasskeyTexts {
    pub button: String,
    pub working: String,
    pub cancelled: String,
    pub unsupported: String,
    pub failed: String,
}

#[island]
pub fn PasskeyButton(
    /// `create` or `get`.
    mode: String,
    /// Where the ceremony's options come from (POST).
    options_url: String,
    /// Where the browser's answer goes (POST, JSON); the reply names the next page.
    finish_url: String,
    texts: PasskeyTexts,
    /// Also wait for a passkey picked from the email field's autofill.
    autofill: bool,
    /// The id of the input holding the new passkey's name (registration).
    name_input: Option<String>,
    /// The button's classes.
    class: String,
) -> impl IntoView {
    let ceremony = if mode == "create" {
        Ceremony::Create
    } else {
        Ceremony::Get
    };
    let (ready, set_ready) = signal(false);
    let (busy, set_busy) = signal(false);
    let (error, set_error) = signal(None::<String>);
    let job = client::Job {
        ceremony,
        options_url,
        finish_url,
        name_input,
        texts: texts.clone(),
        set_busy,
        set_error,
    };
    let start = job.clone();
    Effect::new(move |_| {
        set_ready.set(true);
        if autofill {
            client::autofill(start.clone());
        }
    });
    view! {
        <div class="gh-passkey" hidden=move || !ready.get()>
            <button
                type="button"
                class=class
                aria-busy=move || busy.get().then_some("true")
                disabled=move || busy.get()
                on:click=move |_| client::run(job.clone())
            >
                {move || if busy.get() { texts.working.clone() } else { texts.button.clone() }}
            </button>
            {move || error.get().map(|m| view! { <p class="gh-alert" role="alert">{m}</p> })}
        </div>
    }
}

#[cfg(not(feature = "hydrate"))]
mod client {
    use super::{Ceremony, PasskeyTexts};
    use leptos::prelude::WriteSignal;

    /// On the server the island only renders; nothing runs.
    #[derive(Clone)]
    #[allow(dead_code)]
    pub struct Job {
        pub ceremony: Ceremony,
        pub options_url: String,
        pub finish_url: String,
        pub name_input: Option<String>,
        pub texts: PasskeyTexts,
        pub set_busy: WriteSignal<bool>,
        pub set_error: WriteSignal<Option<String>>,
    }

    pub fn run(_job: Job) {}
    pub fn autofill(_job: Job) {}
}

#[cfg(feature = "hydrate")]
mod client {
    use super::b64::{b64url_decode, b64url_encode};
    use super::{Ceremony, PasskeyTexts};
    use js_sys::{Function, Object, Promise, Reflect, JSON};
    use leptos::prelude::{Set, WriteSignal};
    use leptos::task::spawn_local;
    use std::cell::RefCell;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    #[derive(Clone)]
    pub struct Job {
        pub ceremony: Ceremony,
        pub options_url: String,
        pub finish_url: String,
        pub name_input: Option<String>,
        pub texts: PasskeyTexts,
        pub set_busy: WriteSignal<bool>,
        pub set_error: WriteSignal<Option<String>>,
    }

    thread_local! {
        /// The waiting autofill request, aborted before a button starts its own.
        static WAITING: RefCell<Option<JsValue>> = const { RefCell::new(None) };
    }

    /// Why a ceremony ended without a sign-in.
    enum Failure {
        /// The person closed the dialog, or it timed out.
        Cancelled,
        /// The autofill request was replaced by a button press.
        Aborted,
        Unsupported,
        /// The server's message, to show as it is.
        Server(String),
        Other,
    }

    fn get(target: &JsValue, key: &str) -> Result<JsValue, Failure> {
        Reflect::get(target, &JsValue::from_str(key)).map_err(|_| Failure::Unsupported)
    }

    fn call(target: &JsValue, method: &str, arg: &JsValue) -> Result<JsValue, Failure> {
        let f: Function = get(target, method)?
            .dyn_into()
            .map_err(|_| Failure::Unsupported)?;
        f.call1(target, arg).map_err(|_| Failure::Unsupported)
    }

    fn classify(err: JsValue) -> Failure {
        let name = Reflect::get(&err, &JsValue::from_str("name"))
            .ok()
            .and_then(|n| n.as_string())
            .unwrap_or_default();
        match name.as_str() {
            "NotAllowedError" => Failure::Cancelled,
            "AbortError" => Failure::Aborted,
            "NotSupportedError" | "SecurityError" => Failure::Unsupported,
            _ => Failure::Other,
        }
    }

    async fn post(url: &str, body: String) -> Result<JsValue, Failure> {
        let response = gloo_net::http::Request::post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body)
            .map_err(|_| Failure::Other)?
            .send()
            .await
            .map_err(|_| Failure::Other)?;
        let text = response.text().await.map_err(|_| Failure::Other)?;
        let value = JSON::parse(&text).map_err(|_| Failure::Other)?;
        if response.ok() {
            Ok(value)
        } else {
            match get(&value, "error")?.as_string() {
                Some(message) => Err(Failure::Server(message)),
                None => Err(Failure::Other),
            }
        }
    }

    fn input_value(id: &str) -> String {
        let global = js_sys::global();
        get(&global, "document")
            .and_then(|d| call(&d, "getElementById", &JsValue::from_str(id)))
            .and_then(|input| get(&input, "value"))
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    }

    /// One ceremony: options from the server, the browser's credential, the answer back.
    /// Returns the page to go to.
    async fn ceremony(job: &Job, conditional: bool) -> Result<String, Failure> {
        let global = js_sys::global();
        let pkc = get(&global, "PublicKeyCredential")?;
        if pkc.is_undefined() {
            return Err(Failure::Unsupported);
        }
        if conditional {
            let available = call(&pkc, "isConditionalMediationAvailable", &JsValue::UNDEFINED)?;
            let available = JsFuture::from(Promise::from(available))
                .await
                .map_err(|_| Failure::Unsupported)?;
            if available.as_bool() != Some(true) {
                return Err(Failure::Unsupported);
            }
        }
        let started = post(&job.options_url, "{}".into()).await?;
        let ceremony_id = get(&started, "ceremony")?;
        let options = get(&get(&started, "options")?, "publicKey")?;
        let (parse, method) = match job.ceremony {
            Ceremony::Create => ("parseCreationOptionsFromJSON", "create"),
            Ceremony::Get => ("parseRequestOptionsFromJSON", "get"),
        };
        // Browsers with WebAuthn's JSON helpers convert the options themselves; for older ones
        // the binary members are decoded here.
        let public_key = if get(&pkc, parse)?.is_function() {
            call(&pkc, parse, &options)?
        } else {
            binary_options(&options, job.ceremony)?
        };
        let request = Object::new();
        let set = |k: &str, v: &JsValue| Reflect::set(&request, &JsValue::from_str(k), v);
        set("publicKey", &public_key).map_err(|_| Failure::Other)?;
        if conditional {
            let constructor: Function = get(&global, "AbortController")?
                .dyn_into()
                .map_err(|_| Failure::Unsupported)?;
            let controller = Reflect::construct(&constructor, &js_sys::Array::new())
                .map_err(|_| Failure::Unsupported)?;
            set("mediation", &JsValue::from_str("conditional")).map_err(|_| Failure::Other)?;
            set("signal", &get(&controller, "signal")?).map_err(|_| Failure::Other)?;
            WAITING.with(|w| *w.borrow_mut() = Some(controller));
        }
        let credentials = get(&get(&global, "navigator")?, "credentials")?;
        let pending = call(&credentials, method, &request)?;
        let credential = JsFuture::from(Promise::from(pending))
            .await
            .map_err(classify)?;
        if conditional {
            WAITING.with(|w| *w.borrow_mut() = None);
        }
        let answer = Object::new();
        let put = |k: &str, v: &JsValue| Reflect::set(&answer, &JsValue::from_str(k), v);
        put("ceremony", &ceremony_id).map_err(|_| Failure::Other)?;
        let as_json = if get(&credential, "toJSON")?.is_function() {
            call(&credential, "toJSON", &JsValue::UNDEFINED)?
        } else {
            credential_json(&credential)?
        };
        put("credential", &as_json).map_err(|_| Failure::Other)?;
        if let Some(id) = &job.name_input {
            put("name", &JsValue::from_str(&input_value(id))).map_err(|_| Failure::Other)?;
        }
        let body = JSON::stringify(&answer)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or(Failure::Other)?;
        let done = post(&job.finish_url, body).await?;
        get(&done, "redirect")?.as_string().ok_or(Failure::Other)
    }

    /// Replaces the base64url string at `key` of `target` by its bytes.
    fn decode_member(target: &JsValue, key: &str) -> Result<(), Failure> {
        let text = get(target, key)?.as_string().ok_or(Failure::Other)?;
        let bytes = b64url_decode(&text).ok_or(Failure::Other)?;
        Reflect::set(
            target,
            &JsValue::from_str(key),
            &js_sys::Uint8Array::from(bytes.as_slice()),
        )
        .map(|_| ())
        .map_err(|_| Failure::Other)
    }

    /// WebAuthn's JSON options with their binary members decoded, for browsers without
    /// `parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON`.
    fn binary_options(options: &JsValue, ceremony: Ceremony) -> Result<JsValue, Failure> {
        decode_member(options, "challenge")?;
        let list = match ceremony {
            Ceremony::Create => {
                decode_member(&get(options, "user")?, "id")?;
                "excludeCredentials"
            }
            Ceremony::Get => "allowCredentials",
        };
        let credentials = get(options, list)?;
        if js_sys::Array::is_array(&credentials) {
            for descriptor in js_sys::Array::from(&credentials).iter() {
                decode_member(&descriptor, "id")?;
            }
        }
        Ok(options.clone())
    }

    fn buffer_text(source: &JsValue, key: &str) -> Result<JsValue, Failure> {
        let value = get(source, key)?;
        if value.is_null() || value.is_undefined() {
            return Ok(JsValue::NULL);
        }
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        Ok(JsValue::from_str(&b64url_encode(&bytes)))
    }

    /// A credential as WebAuthn's JSON, for browsers without `PublicKeyCredential.toJSON`.
    fn credential_json(credential: &JsValue) -> Result<JsValue, Failure> {
        let out = Object::new();
        let set = |target: &Object, k: &str, v: &JsValue| {
            Reflect::set(target, &JsValue::from_str(k), v).map_err(|_| Failure::Other)
        };
        set(&out, "id", &get(credential, "id")?)?;
        set(&out, "type", &get(credential, "type")?)?;
        set(&out, "rawId", &buffer_text(credential, "rawId")?)?;
        let response = get(credential, "response")?;
        let response_json = Object::new();
        for key in [
            "clientDataJSON",
            "attestationObject",
            "authenticatorData",
            "signature",
            "userHandle",
        ] {
            if Reflect::has(&response, &JsValue::from_str(key)).unwrap_or(false) {
                set(&response_json, key, &buffer_text(&response, key)?)?;
            }
        }
        if get(&response, "getTransports")?.is_function() {
            set(
                &response_json,
                "transports",
                &call(&response, "getTransports", &JsValue::UNDEFINED)?,
            )?;
        }
        set(&out, "response", &response_json)?;
        set(
            &out,
            "clientExtensionResults",
            &call(credential, "getClientExtensionResults", &JsValue::UNDEFINED)?,
        )?;
        Ok(out.into())
    }

    fn go(url: &str) {
        let global = js_sys::global();
        if let Ok(location) = get(&global, "location") {
            let _ = call(&location, "assign", &JsValue::from_str(url));
        }
    }

    fn message(job: &Job, failure: Failure) -> Option<String> {
        match failure {
            Failure::Aborted => None,
            Failure::Cancelled => Some(job.texts.cancelled.clone()),
            Failure::Unsupported => Some(job.texts.unsupported.clone()),
            Failure::Server(m) => Some(m),
            Failure::Other => Some(job.texts.failed.clone()),
        }
    }

    /// The button: aborts a waiting autofill request, then runs a ceremony of its own.
    pub fn run(job: Job) {
        if let Some(controller) = WAITING.with(|w| w.borrow_mut().take()) {
            let _ = call(&controller, "abort", &JsValue::UNDEFINED);
        }
        job.set_busy.set(true);
        job.set_error.set(None);
        spawn_local(async move {
            match ceremony(&job, false).await {
                Ok(next) => go(&next),
                Err(failure) => {
                    job.set_busy.set(false);
                    job.set_error.set(message(&job, failure));
                }
            }
        });
    }

    /// Waits for a passkey chosen from autofill. Errors of the waiting request itself stay
    /// quiet (the button remains); a refused answer is shown and the wait starts again.
    pub fn autofill(job: Job) {
        spawn_local(async move {
            for _ in 0..3 {
                match ceremony(&job, true).await {
                    Ok(next) => return go(&next),
                    Err(Failure::Server(m)) => job.set_error.set(Some(m)),
                    Err(_) => return,
                }
            }
        });
    }
}

/// Base64url (RFC 4648 §5) for the WebAuthn members of browsers without the JSON helpers.
#[cfg(any(feature = "hydrate", test))]
mod b64 {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(text.len() * 3 / 4);
        let (mut acc, mut bits) = (0u32, 0u32);
        for c in text.bytes().filter(|c| *c != b'=') {
            let v = match c {
                b'+' => 62,
                b'/' => 63,
                _ => B64.iter().position(|b| *b == c)? as u32,
            };
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
                acc &= (1 << bits) - 1;
            }
        }
        Some(out)
    }

    pub fn b64url_encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len() * 4 / 3 + 3);
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, b| (a << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trips_every_length_and_reads_padding_and_the_standard_alphabet() {
            for len in 0..40u8 {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| i.wrapping_mul(37).wrapping_add(250))
                    .collect();
                assert_eq!(b64url_decode(&b64url_encode(&bytes)), Some(bytes));
            }
            assert_eq!(b64url_encode(b"\xfb\xff"), "-_8");
            assert_eq!(b64url_decode("-_8="), Some(b"\xfb\xff".to_vec()));
            assert_eq!(b64url_decode("+/8"), Some(b"\xfb\xff".to_vec()));
            assert_eq!(b64url_decode("a b"), None);
        }
    }
}
