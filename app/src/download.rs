//! The download island: a report's download link that, once the wasm has loaded, fetches the
//! streamed export itself and shows how many of the report's rows have arrived, then saves the
//! file. Before (or without) the wasm it is a plain link and the browser downloads as usual.

use leptos::prelude::*;

/// Rows counted so far and whether the download ended (with a message when it failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Progress {
    #[default]
    Idle,
    Running(u64),
    Done(u64),
    Failed,
}

/// The status line of a download of a report with `total` rows.
pub fn progress_text(p: Progress, total: u64) -> String {
    let total_text = group(total);
    match p {
        Progress::Idle => String::new(),
        Progress::Running(n) => {
            format!("Downloading: {} of {total_text} rows", group(n.min(total)))
        }
        Progress::Done(n) => format!("Downloaded {} rows", group(n)),
        Progress::Failed => {
            "The download stopped. Try again, or use the link without script.".into()
        }
    }
}

/// A number with thousands separators (1,203).
fn group(n: u64) -> String {
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

/// Records in a chunk of a download: its line ends (a CSV row, a JSON object or an OCSF
/// record ends a line; a line break inside a quoted CSV field makes the count run ahead a
/// little, so the progress is capped at the total).
pub fn records_in(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|b| **b == b'\n').count() as u64
}

#[island]
pub fn ExportLink(
    label: String,
    href: String,
    /// The name the file is saved under.
    filename: String,
    /// The report's rows with the page's filters.
    total: u64,
) -> impl IntoView {
    let (progress, set_progress) = signal(Progress::Idle);
    // Set once the island runs in the browser: the link then downloads with progress.
    let (enhanced, set_enhanced) = signal(false);
    Effect::new(move |_| set_enhanced.set(true));
    let busy = move || matches!(progress.get(), Progress::Running(_));
    let job = client::Job {
        href: href.clone(),
        filename: filename.clone(),
        set_progress,
    };
    view! {
        <span class="gh-export" data-enhanced=move || enhanced.get().then_some("true")>
            <a
                href=href
                download=filename
                aria-busy=move || busy().then_some("true")
                on:click=move |ev: leptos::ev::MouseEvent| {
                    if ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key() || busy() {
                        return;
                    }
                    if client::start(job.clone()) {
                        ev.prevent_default();
                    }
                }
            >
                {label.clone()}
            </a>
            {move || busy().then(|| {
                let value = match progress.get() {
                    Progress::Running(n) => n.min(total),
                    _ => 0,
                };
                view! {
                    " "
                    <progress max=total.max(1).to_string() value=value.to_string() aria-label=format!("{label} progress")></progress>
                }
            })}
            <span role="status" class="gh-hint">{move || progress_text(progress.get(), total)}</span>
        </span>
    }
}

#[cfg(not(feature = "hydrate"))]
mod client {
    use super::Progress;
    use leptos::prelude::WriteSignal;

    /// On the server the island only renders; nothing runs.
    #[derive(Clone)]
    #[allow(dead_code)]
    pub struct Job {
        pub href: String,
        pub filename: String,
        pub set_progress: WriteSignal<Progress>,
    }

    pub fn start(_job: Job) -> bool {
        false
    }
}

#[cfg(feature = "hydrate")]
mod client {
    use super::{records_in, Progress};
    use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
    use leptos::prelude::{Set, WriteSignal};
    use leptos::task::spawn_local;
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    #[derive(Clone)]
    pub struct Job {
        pub href: String,
        pub filename: String,
        pub set_progress: WriteSignal<Progress>,
    }

    fn get(target: &JsValue, key: &str) -> Result<JsValue, JsValue> {
        Reflect::get(target, &JsValue::from_str(key))
    }

    fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
        let f: Function = get(target, method)?.dyn_into()?;
        f.apply(target, &args.iter().cloned().collect::<Array>())
    }

    async fn wait(promise: JsValue) -> Result<JsValue, JsValue> {
        JsFuture::from(promise.dyn_into::<Promise>()?).await
    }

    /// Whether this browser can stream a download (fetch with a body reader, Blob, object
    /// URLs); when it cannot, the link downloads as usual.
    fn supported() -> bool {
        let global = js_sys::global();
        ["fetch", "Blob", "URL", "ReadableStream"]
            .iter()
            .all(|name| get(&global, name).is_ok_and(|v| !v.is_undefined()))
    }

    /// Starts the download; false when the browser should follow the link instead.
    pub fn start(job: Job) -> bool {
        if !supported() {
            return false;
        }
        job.set_progress.set(Progress::Running(0));
        spawn_local(async move {
            let set = job.set_progress;
            match download(&job).await {
                Ok(rows) => set.set(Progress::Done(rows)),
                Err(_) => set.set(Progress::Failed),
            }
        });
        true
    }

    async fn download(job: &Job) -> Result<u64, JsValue> {
        let global = js_sys::global();
        let init = Object::new();
        Reflect::set(&init, &"credentials".into(), &"same-origin".into())?;
        let response = wait(call(
            &global,
            "fetch",
            &[job.href.as_str().into(), init.into()],
        )?)
        .await?;
        if !get(&response, "ok")?.as_bool().unwrap_or(false) {
            return Err(JsValue::from_str("refused"));
        }
        let content_type = call(&get(&response, "headers")?, "get", &["content-type".into()])?;
        let reader = call(&get(&response, "body")?, "getReader", &[])?;
        let chunks = Array::new();
        // A CSV file's first line is its header, not a row.
        let header = u64::from(job.filename.ends_with(".csv"));
        let mut rows = 0u64;
        loop {
            let step = wait(call(&reader, "read", &[])?).await?;
            if get(&step, "done")?.as_bool().unwrap_or(true) {
                break;
            }
            let value = get(&step, "value")?;
            let bytes: Uint8Array = value.clone().dyn_into()?;
            rows += records_in(&bytes.to_vec());
            chunks.push(&value);
            job.set_progress
                .set(Progress::Running(rows.saturating_sub(header)));
        }
        let options = Object::new();
        if let Some(t) = content_type.as_string() {
            Reflect::set(&options, &"type".into(), &t.into())?;
        }
        let blob_class: Function = get(&global, "Blob")?.dyn_into()?;
        let blob = Reflect::construct(&blob_class, &Array::of2(&chunks, &options))?;
        let url_class = get(&global, "URL")?;
        let url = call(&url_class, "createObjectURL", &[blob])?;
        let document = get(&global, "document")?;
        let a = call(&document, "createElement", &["a".into()])?;
        Reflect::set(&a, &"href".into(), &url)?;
        Reflect::set(&a, &"download".into(), &job.filename.as_str().into())?;
        let body = get(&document, "body")?;
        call(&body, "appendChild", &[a.clone()])?;
        call(&a, "click", &[])?;
        call(&a, "remove", &[])?;
        // The browser has taken the file; the object URL can go after this turn.
        let revoke = wasm_bindgen::closure::Closure::once_into_js(move || {
            let _ = call(&url_class, "revokeObjectURL", &[url]);
        });
        call(&global, "setTimeout", &[revoke, JsValue::from_f64(0.0)])?;
        Ok(rows.saturating_sub(header))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_counts_rows_against_the_total() {
        assert_eq!(progress_text(Progress::Idle, 10), "");
        assert_eq!(
            progress_text(Progress::Running(1_204), 1_203),
            "Downloading: 1,203 of 1,203 rows"
        );
        assert_eq!(
            progress_text(Progress::Running(7), 1_000_000),
            "Downloading: 7 of 1,000,000 rows"
        );
        assert_eq!(
            progress_text(Progress::Done(999), 999),
            "Downloaded 999 rows"
        );
        assert_eq!(records_in(b"a,b\n1,2\n3,4"), 2);
    }
}
