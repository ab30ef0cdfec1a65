//! Building blocks of the forms: labelled fields, the password field island, alerts.

use leptos::prelude::*;

/// The `aria-describedby` of an input: its hint and, when invalid, the form's error.
fn described_by(hint_id: &str, has_hint: bool, invalid: bool) -> Option<String> {
    match (has_hint, invalid) {
        (true, true) => Some(format!("{hint_id} form-error")),
        (true, false) => Some(hint_id.to_string()),
        (false, true) => Some("form-error".to_string()),
        (false, false) => None,
    }
}

/// A labelled input. Errors are announced by the form's alert, which the input points to.
#[component]
pub fn Field(
    id: &'static str,
    label: String,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional, into)] value: String,
    #[prop(optional)] autocomplete: &'static str,
    #[prop(optional)] inputmode: &'static str,
    #[prop(optional)] invalid: bool,
    #[prop(optional)] hint: Option<String>,
    #[prop(default = 320)] maxlength: usize,
) -> impl IntoView {
    let hint_id = format!("{id}-hint");
    let described = described_by(&hint_id, hint.is_some(), invalid);
    view! {
        <div class="gh-field">
            <label for=id>{label}</label>
            <input
                id=id
                name=id
                type=kind
                value=value
                required
                maxlength=maxlength
                autocomplete=(!autocomplete.is_empty()).then_some(autocomplete)
                inputmode=(!inputmode.is_empty()).then_some(inputmode)
                aria-invalid=invalid.then_some("true")
                aria-describedby=described
            />
            {hint.map(|h| view! { <p class="gh-hint" id=hint_id>{h}</p> })}
        </div>
    }
}

/// A password input with a "Show password" toggle button (its state in `aria-pressed`, as
/// WAI-ARIA recommends for toggles) once the page is interactive. Without script it is a plain
/// password field and the button stays hidden.
#[island]
pub fn PasswordField(
    id: String,
    label: String,
    autocomplete: String,
    show_label: String,
    hint: Option<String>,
    invalid: bool,
) -> impl IntoView {
    let (visible, set_visible) = signal(false);
    let (ready, set_ready) = signal(false);
    Effect::new(move |_| set_ready.set(true));
    let hint_id = format!("{id}-hint");
    let described = described_by(&hint_id, hint.is_some(), invalid);
    view! {
        <div class="gh-field">
            <label for=id.clone()>{label}</label>
            <div class="gh-password">
                <input
                    id=id.clone()
                    name=id
                    type=move || if visible.get() { "text" } else { "password" }
                    required
                    maxlength="4096"
                    autocomplete=autocomplete
                    aria-invalid=invalid.then_some("true")
                    aria-describedby=described
                />
                <button
                    type="button"
                    class="gh-reveal"
                    hidden=move || !ready.get()
                    aria-pressed=move || if visible.get() { "true" } else { "false" }
                    on:click=move |_| set_visible.update(|v| *v = !*v)
                >
                    {show_label}
                </button>
            </div>
            {hint.map(|h| view! { <p class="gh-hint" id=hint_id>{h}</p> })}
        </div>
    }
}

/// The form-level error, announced to screen readers.
#[component]
pub fn FormError(message: Option<String>) -> impl IntoView {
    message.map(|m| view! { <p class="gh-alert" role="alert" id="form-error">{m}</p> })
}

/// A success notice.
#[component]
pub fn Notice(message: Option<String>) -> impl IntoView {
    message.map(|m| view! { <p class="gh-notice" role="status">{m}</p> })
}
