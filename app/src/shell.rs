//! The HTML document around every page: branding variables, the stylesheet, the hydration
//! script for islands (with the request's CSP nonce), the branded header and footer.

use std::sync::Arc;

use leptos::prelude::*;

use crate::branding::Branding;
use crate::i18n::Texts;

/// A sign-in provider offered on the sign-in and sign-up pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderLink {
    pub id: String,
    /// `oidc`, `google`, `microsoft`, `apple`, `facebook` or `github` (the mark shown).
    pub kind: String,
    pub name: String,
}

/// Everything a page render needs that does not come from its own props.
#[derive(Clone)]
pub struct PageContext {
    pub branding: Arc<Branding>,
    pub texts: Texts,
    /// The CSP nonce of this response.
    pub nonce: String,
    /// Where the built wasm and CSS are served from, when the site has been built with them.
    pub leptos_options: Option<leptos::config::LeptosOptions>,
    /// The enabled sign-in providers, in order.
    pub providers: Vec<ProviderLink>,
}

impl PageContext {
    pub fn new(
        branding: Arc<Branding>,
        nonce: String,
        leptos_options: Option<leptos::config::LeptosOptions>,
    ) -> Self {
        let texts = Texts::new(branding.texts.clone(), &branding.product_name);
        PageContext {
            branding,
            texts,
            nonce,
            leptos_options,
            providers: Vec::new(),
        }
    }
}

/// The texts of the current render.
pub fn texts() -> Texts {
    use_context::<PageContext>()
        .map(|p| p.texts)
        .unwrap_or_default()
}

/// The enabled sign-in providers of the current render.
pub fn providers() -> Vec<ProviderLink> {
    use_context::<PageContext>()
        .map(|p| p.providers)
        .unwrap_or_default()
}

#[component]
pub fn Document(title: String, children: Children) -> impl IntoView {
    let page = use_context::<PageContext>();
    let branding = page
        .as_ref()
        .map(|p| p.branding.clone())
        .unwrap_or_default();
    let nonce = page.as_ref().map(|p| p.nonce.clone()).unwrap_or_default();
    let options = page.as_ref().and_then(|p| p.leptos_options.clone());
    let t = texts();
    let product = branding.product_name.clone();
    let css = branding.css_variables();
    let favicon = branding.favicon_url.clone();
    let logo = branding.logo_url.clone();
    let footer_links = branding.footer_links.clone();
    // The hydration script for the islands, when the site's wasm has been built.
    let scripts = options
        .map(|options| view! { <leptos::hydration::HydrationScripts options islands=true/> });
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{format!("{title} · {product}")}</title>
                {favicon.map(|href| view! { <link rel="icon" href=href/> })}
                <link rel="stylesheet" href="/pkg/gatehouse.css"/>
                <style nonce=nonce inner_html=css></style>
                {scripts}
            </head>
            <body>
                <a class="gh-skip" href="#main">{t.get("common.skip_to_content")}</a>
                <main id="main" class="gh-main">
                    <div class="gh-card">
                        <header class="gh-brand">
                            {match logo {
                                Some(src) => view! { <img class="gh-logo" src=src alt=product.clone()/> }.into_any(),
                                None => view! { <span class="gh-wordmark">{product.clone()}</span> }.into_any(),
                            }}
                        </header>
                        {children()}
                    </div>
                </main>
                <footer class="gh-footer">
                    <nav aria-label="Footer">
                        <ul>
                            {footer_links
                                .into_iter()
                                .map(|l| view! { <li><a href=l.url>{l.label}</a></li> })
                                .collect_view()}
                        </ul>
                    </nav>
                    <p>{t.get("common.footer")}</p>
                </footer>
            </body>
        </html>
    }
}

/// Renders a whole page to HTML on the server.
#[cfg(feature = "ssr")]
pub fn render_document<V: IntoView + 'static>(
    page: PageContext,
    title: String,
    body: impl FnOnce() -> V + Send + 'static,
) -> String {
    // Islands mode: the page itself is not hydrated; each island opts into hydration markers.
    let shared = std::sync::Arc::new(hydration_context::SsrSharedContext::new_islands());
    let owner = Owner::new_root(Some(shared));
    owner.with(|| {
        provide_context(leptos::nonce::Nonce::from_value(page.nonce.clone()));
        provide_context(page);
        view! { <Document title=title>{body()}</Document> }.to_html()
    })
}
