//! The branding record: product name, logo, colours, background, corner radius, fonts, footer
//! links and text overrides. Every value is validated before it is stored, and the server
//! renders it into CSS custom properties on every page so the first paint is branded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FooterLink {
    pub label: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Branding {
    pub product_name: String,
    /// Path on this site (`/logo.svg`) or an `https://` URL.
    pub logo_url: Option<String>,
    pub favicon_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub primary_color: String,
    pub background_color: String,
    pub background_image_url: Option<String>,
    /// 0 to 32 pixels.
    pub corner_radius_px: u8,
    pub font_stack: String,
    pub footer_links: Vec<FooterLink>,
    /// Message-catalogue overrides by key (see `i18n`).
    pub texts: BTreeMap<String, String>,
}

impl Default for Branding {
    fn default() -> Self {
        Branding {
            product_name: "Gatehouse".into(),
            logo_url: Some("/logo.svg".into()),
            favicon_url: Some("/favicon.svg".into()),
            primary_color: "#3147d6".into(),
            background_color: "#f3f5fb".into(),
            background_image_url: None,
            corner_radius_px: 10,
            font_stack:
                "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
                    .into(),
            footer_links: vec![],
            texts: BTreeMap::new(),
        }
    }
}

/// What is wrong with a branding record (field name and reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandingProblem {
    pub field: &'static str,
    pub reason: &'static str,
}

fn problem(field: &'static str, reason: &'static str) -> BrandingProblem {
    BrandingProblem { field, reason }
}

/// A colour in `#rgb` or `#rrggbb` form.
pub fn valid_color(c: &str) -> bool {
    let hex = c.strip_prefix('#').unwrap_or("");
    (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A URL that can go into an attribute and a CSS `url()` without escaping: a site path or an
/// `https://` URL, with no quotes, spaces, parentheses, backslashes or angle brackets.
pub fn valid_asset_url(u: &str) -> bool {
    let scheme_ok = (u.starts_with('/') && !u.starts_with("//")) || u.starts_with("https://");
    scheme_ok
        && u.len() <= 2048
        && u.chars()
            .all(|c| c.is_ascii_graphic() && !"\"'()\\<>`{};".contains(c))
}

fn valid_link_url(u: &str) -> bool {
    valid_asset_url(u)
        || (u.starts_with("mailto:")
            && u[7..]
                .chars()
                .all(|c| c.is_ascii_graphic() && !"\"'<>".contains(c)))
}

fn valid_font_stack(f: &str) -> bool {
    !f.trim().is_empty()
        && f.len() <= 300
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || " ,'-_".contains(c))
}

impl Branding {
    pub fn validate(&self) -> Result<(), BrandingProblem> {
        let name_len = self.product_name.trim().chars().count();
        if name_len == 0 || name_len > 60 || self.product_name.chars().any(char::is_control) {
            return Err(problem("product_name", "must be 1 to 60 characters"));
        }
        for (field, url) in [
            ("logo_url", &self.logo_url),
            ("favicon_url", &self.favicon_url),
            ("background_image_url", &self.background_image_url),
        ] {
            if let Some(u) = url {
                if !valid_asset_url(u) {
                    return Err(problem(
                        field,
                        "must be a path on this site or an https:// URL",
                    ));
                }
            }
        }
        if !valid_color(&self.primary_color) {
            return Err(problem("primary_color", "must be #rgb or #rrggbb"));
        }
        if !valid_color(&self.background_color) {
            return Err(problem("background_color", "must be #rgb or #rrggbb"));
        }
        if self.corner_radius_px > 32 {
            return Err(problem("corner_radius_px", "must be between 0 and 32"));
        }
        if !valid_font_stack(&self.font_stack) {
            return Err(problem(
                "font_stack",
                "may hold letters, digits, spaces, commas, hyphens and single quotes",
            ));
        }
        if self.footer_links.len() > 10 {
            return Err(problem("footer_links", "at most 10 links"));
        }
        for link in &self.footer_links {
            let len = link.label.trim().chars().count();
            if len == 0 || len > 60 || !valid_link_url(&link.url) {
                return Err(problem("footer_links", "each link needs a label (1 to 60 characters) and a site path, https:// or mailto: URL"));
            }
        }
        for (key, value) in &self.texts {
            if !crate::i18n::is_known_key(key) {
                return Err(problem("texts", "unknown text key"));
            }
            if value.chars().count() > 500 {
                return Err(problem("texts", "texts are at most 500 characters"));
            }
        }
        Ok(())
    }

    /// The CSS custom properties for this branding. Only validated values reach it.
    pub fn css_variables(&self) -> String {
        let defaults = Branding::default();
        let pick = |v: &str, ok: bool, d: &str| if ok { v.to_string() } else { d.to_string() };
        let primary = pick(
            &self.primary_color,
            valid_color(&self.primary_color),
            &defaults.primary_color,
        );
        let background = pick(
            &self.background_color,
            valid_color(&self.background_color),
            &defaults.background_color,
        );
        let font = pick(
            &self.font_stack,
            valid_font_stack(&self.font_stack),
            &defaults.font_stack,
        );
        let image = match &self.background_image_url {
            Some(u) if valid_asset_url(u) => format!("url({u})"),
            _ => "none".into(),
        };
        format!(
            ":root{{--gh-primary:{primary};--gh-on-primary:{on};--gh-bg:{background};--gh-bg-image:{image};\
             --gh-radius:{radius}px;--gh-font:{font};}}",
            on = on_color(&primary),
            radius = self.corner_radius_px.min(32),
        )
    }
}

fn channel(hex: &str) -> f64 {
    let v = f64::from(u8::from_str_radix(hex, 16).unwrap_or(0)) / 255.0;
    if v <= 0.04045 {
        v / 12.92
    } else {
        ((v + 0.055) / 1.055).powf(2.4)
    }
}

/// Relative luminance (WCAG 2) of a valid colour.
pub fn luminance(color: &str) -> f64 {
    let hex = color.trim_start_matches('#');
    let full: String = if hex.len() == 3 {
        hex.chars().flat_map(|c| [c, c]).collect()
    } else {
        hex.to_string()
    };
    if full.len() != 6 {
        return 0.0;
    }
    0.2126 * channel(&full[0..2]) + 0.7152 * channel(&full[2..4]) + 0.0722 * channel(&full[4..6])
}

/// WCAG contrast ratio between two colours.
pub fn contrast(a: &str, b: &str) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// Text colour on the primary colour: whichever of white and near-black contrasts more.
pub fn on_color(primary: &str) -> &'static str {
    if contrast(primary, "#ffffff") >= contrast(primary, "#111111") {
        "#ffffff"
    } else {
        "#111111"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_readable() {
        let b = Branding::default();
        assert_eq!(b.validate(), Ok(()));
        assert!(contrast(&b.primary_color, on_color(&b.primary_color)) >= 4.5);
        let css = b.css_variables();
        assert!(css.starts_with(":root{--gh-primary:#3147d6;--gh-on-primary:#ffffff;"));
    }

    #[test]
    fn refuses_values_that_could_escape_css_or_html() {
        let base = Branding::default();
        let cases: Vec<Branding> = vec![
            Branding {
                primary_color: "red;}body{display:none".into(),
                ..base.clone()
            },
            Branding {
                primary_color: "#12345".into(),
                ..base.clone()
            },
            Branding {
                background_image_url: Some("javascript:alert(1)".into()),
                ..base.clone()
            },
            Branding {
                background_image_url: Some("/x.png);background:url(//evil".into()),
                ..base.clone()
            },
            Branding {
                logo_url: Some("//evil.test/logo.svg".into()),
                ..base.clone()
            },
            Branding {
                font_stack: "x</style><script>".into(),
                ..base.clone()
            },
            Branding {
                corner_radius_px: 33,
                ..base.clone()
            },
            Branding {
                product_name: "".into(),
                ..base.clone()
            },
            Branding {
                footer_links: vec![FooterLink {
                    label: "x".into(),
                    url: "javascript:alert(1)".into(),
                }],
                ..base.clone()
            },
            Branding {
                texts: [("no.such.key".to_string(), "x".to_string())].into(),
                ..base.clone()
            },
        ];
        for case in cases {
            assert!(case.validate().is_err(), "{case:?}");
        }
    }

    #[test]
    fn light_primary_gets_dark_text() {
        assert_eq!(on_color("#ffd400"), "#111111");
        assert_eq!(on_color("#123"), "#ffffff");
    }
}
