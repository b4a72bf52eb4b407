//! The stylesheet and the one script, embedded in the binary, and the partner's colours as
//! a small generated stylesheet (the CSP allows no inline style).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;
use crate::pages::{PageError, Session};

const APP_CSS: &str = include_str!("../../static/app.css");
const ACTIVITY_LOGS_JS: &str = include_str!("../../static/activity-logs.js");
/// A neutral colour for accounts whose partner has none.
const DEFAULT_BRAND: &str = "#334155";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/app.css", get(app_css))
        .route("/static/activity-logs.js", get(activity_logs_js))
        .route("/theme.css", get(theme_css))
}

const CSS: &str = "text/css; charset=utf-8";
const STATIC_CACHE: &str = "public, max-age=300";

async fn app_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, CSS),
            (header::CACHE_CONTROL, STATIC_CACHE),
        ],
        APP_CSS,
    )
}

async fn activity_logs_js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, STATIC_CACHE),
        ],
        ACTIVITY_LOGS_JS,
    )
}

/// The signed-in account's partner colour as CSS variables.
async fn theme_css(
    State(state): State<AppState>,
    session: Result<Session, PageError>,
) -> impl IntoResponse {
    let colour = match session {
        Ok(s) => state
            .store
            .account(&s.viewer.account)
            .await
            .ok()
            .flatten()
            .and_then(|a| a.partner_colour)
            .map(|c| c.as_str().to_owned()),
        Err(_) => None,
    };
    let brand = colour.as_deref().unwrap_or(DEFAULT_BRAND);
    (
        [
            (header::CONTENT_TYPE, CSS),
            (header::CACHE_CONTROL, "private, no-cache"),
        ],
        theme(brand),
    )
}

/// `brand` is a checked `#rrggbb`; the text on it is white or ink, whichever reads better.
fn theme(brand: &str) -> String {
    format!(":root {{ --brand: {brand}; --on-brand: {}; }}\n", on(brand))
}

fn on(brand: &str) -> &'static str {
    let channel = |i: usize| {
        let v = u8::from_str_radix(brand.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0);
        let c = f64::from(v) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // Contrast against white vs against near-black (#111827, luminance ≈ 0.0116).
    if 1.05 / (luminance + 0.05) >= (luminance + 0.05) / 0.0616 {
        "#ffffff"
    } else {
        "#111827"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_on_the_brand_colour_stays_readable() {
        assert_eq!(on("#0f766e"), "#ffffff");
        assert_eq!(on("#334155"), "#ffffff");
        assert_eq!(on("#fde047"), "#111827");
        assert_eq!(on("#ffffff"), "#111827");
    }
}
