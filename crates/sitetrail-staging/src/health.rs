//! The health check after a switch: live's home page and `/wp-login.php` are fetched from its
//! URL. A 5xx, a PHP fatal error in the body or an empty 200 (a white screen) fails it; a
//! push that fails it is switched back (`undo.rs`).
//!
//! Only `http://` URLs are fetched: sitetrail carries no TLS stack (reqwest without default
//! features), so an `https://` live is recorded as not checked. A live sitetrail cannot reach
//! (refused, timed out) is recorded as not reachable, never switched back for it: the site may
//! only be reachable from outside this host.

use std::time::Duration;

use serde::Serialize;

/// How long each page may take.
pub const FETCH_LIMIT: Duration = Duration::from_secs(10);

/// What PHP and WordPress print when a page dies.
const FATAL_SIGNS: [&str; 3] = [
    "Fatal error",
    "There has been a critical error on this website",
    "Parse error",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum PageHealth {
    Ok {
        status: u16,
    },
    /// Fails the check, with the reason for people.
    Broken {
        status: u16,
        reason: String,
    },
    NotChecked {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub pages: Vec<(String, PageHealth)>,
}

impl Health {
    /// The first broken page's reason, if any page is broken.
    pub fn broken(&self) -> Option<String> {
        self.pages.iter().find_map(|(page, h)| match h {
            PageHealth::Broken { reason, .. } => Some(format!("{page} {reason}")),
            _ => None,
        })
    }
}

/// What one page's answer says about the site.
pub fn judge(status: u16, body: &str) -> PageHealth {
    if status >= 500 {
        return PageHealth::Broken {
            status,
            reason: format!("answered with a server error ({status})"),
        };
    }
    if FATAL_SIGNS.iter().any(|s| body.contains(s)) {
        return PageHealth::Broken {
            status,
            reason: "shows a PHP fatal error".into(),
        };
    }
    if status == 200 && body.trim().is_empty() {
        return PageHealth::Broken {
            status,
            reason: "is an empty page (a white screen)".into(),
        };
    }
    PageHealth::Ok { status }
}

/// Fetches live's home page and login page.
pub async fn check(url: &str) -> Health {
    let base = url.trim_end_matches('/');
    let pages = [
        ("The home page", format!("{base}/")),
        ("The login page", format!("{base}/wp-login.php")),
    ];
    let mut out = Vec::new();
    if !base.starts_with("http://") {
        for (name, _) in pages {
            out.push((
                name.to_owned(),
                PageHealth::NotChecked {
                    reason: "only http URLs are checked".into(),
                },
            ));
        }
        return Health { pages: out };
    }
    let client = match reqwest::Client::builder()
        .timeout(FETCH_LIMIT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "building the health check's client failed");
            return Health { pages: out };
        }
    };
    for (name, page) in pages {
        let health = match client.get(&page).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.text().await {
                    Ok(body) => judge(status, &body),
                    Err(_) => PageHealth::NotChecked {
                        reason: "its answer could not be read".into(),
                    },
                }
            }
            Err(_) => PageHealth::NotChecked {
                reason: "live could not be reached from sitetrail".into(),
            },
        };
        out.push((name.to_owned(), health));
    }
    Health { pages: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_error_a_fatal_error_and_a_white_screen_fail_and_a_page_passes() {
        assert!(matches!(judge(500, "x"), PageHealth::Broken { .. }));
        assert!(matches!(judge(503, ""), PageHealth::Broken { .. }));
        assert!(matches!(
            judge(
                200,
                "<b>Fatal error</b>: Uncaught Error: Call to undefined function"
            ),
            PageHealth::Broken { .. }
        ));
        assert!(matches!(
            judge(200, "There has been a critical error on this website."),
            PageHealth::Broken { .. }
        ));
        assert!(matches!(judge(200, " \n"), PageHealth::Broken { .. }));
        assert_eq!(
            judge(200, "<html>Acme</html>"),
            PageHealth::Ok { status: 200 }
        );
        assert_eq!(judge(302, ""), PageHealth::Ok { status: 302 });
        let h = Health {
            pages: vec![
                ("The home page".into(), PageHealth::Ok { status: 200 }),
                ("The login page".into(), judge(500, "")),
            ],
        };
        assert_eq!(
            h.broken().unwrap(),
            "The login page answered with a server error (500)"
        );
    }
}
