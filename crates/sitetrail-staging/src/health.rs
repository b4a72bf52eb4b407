//! The health check after a switch: live's home page and `/wp-login.php` are fetched from its
//! URL. A 5xx, a PHP fatal error in the body or an empty 200 (a white screen) fails it; a
//! push that fails it is switched back (`undo.rs`).
//!
//! `https://` lives are fetched with rustls on the ring provider, given to this client alone
//! (no process-wide default, and not through reqwest, whose TLS features every reqwest client
//! of the process would share). Certificates are verified against the system's roots by the
//! platform verifier (on Linux, the system's bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` when
//! set). A live whose certificate cannot be verified (untrusted, expired, wrong name) or whose
//! TLS handshake fails is recorded as not checked, never switched back for it: that is how
//! the site is served, not what the push changed. Likewise a live sitetrail cannot reach
//! (refused, timed out) is recorded as not reachable: the site may only be reachable from
//! outside this host.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use serde::Serialize;

/// How long each page may take.
pub const FETCH_LIMIT: Duration = Duration::from_secs(10);

/// How much of each page is read.
pub const BODY_LIMIT: usize = 1 << 20;

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
    if !base.starts_with("http://") && !base.starts_with("https://") {
        for (name, _) in pages {
            out.push((
                name.to_owned(),
                PageHealth::NotChecked {
                    reason: "only http and https URLs are checked".into(),
                },
            ));
        }
        return Health { pages: out };
    }
    let client = match client() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "building the health check's client failed");
            for (name, _) in pages {
                out.push((
                    name.to_owned(),
                    PageHealth::NotChecked {
                        reason: "sitetrail could not prepare its check".into(),
                    },
                ));
            }
            return Health { pages: out };
        }
    };
    for (name, page) in pages {
        let health = page_health(&client, &page).await;
        out.push((name.to_owned(), health));
    }
    Health { pages: out }
}

type Client = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<hyper::body::Bytes>,
>;

/// The check's client, for http and https: rustls on ring, given to this client alone (no
/// process-wide default), and the platform verifier on the system's roots.
fn client() -> anyhow::Result<Client> {
    // rustls 0.23.48 deprecates ring's provider for its lack of post-quantum key exchange,
    // which guards secrets against later decryption: the check sends none and reads public
    // pages, and ring spares the build aws-lc-rs's cmake and long C compile.
    #[expect(
        deprecated,
        reason = "ring's provider, chosen above; no post-quantum needed"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    // `dangerous()` is only rustls's name for giving a verifier of one's own: this one verifies.
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector),
    )
}

fn not_checked(reason: &str) -> PageHealth {
    PageHealth::NotChecked {
        reason: reason.into(),
    }
}

/// One page's health; a redirect is an answer, not followed.
async fn page_health(client: &Client, page: &str) -> PageHealth {
    let Ok(uri) = page.parse::<hyper::Uri>() else {
        return not_checked("its URL could not be read");
    };
    let fetch = async {
        let answer = client.get(uri).await?;
        let status = answer.status().as_u16();
        let body = first_bytes(answer.into_body()).await;
        Ok::<_, hyper_util::client::legacy::Error>((status, body))
    };
    match tokio::time::timeout(FETCH_LIMIT, fetch).await {
        Ok(Ok((status, Ok(body)))) => judge(status, &String::from_utf8_lossy(&body)),
        Ok(Ok((_, Err(_)))) => not_checked("its answer could not be read"),
        Ok(Err(e)) => match tls_error(&e) {
            Some(tls) => {
                tracing::info!(error = %tls, page, "live's TLS failed: not checked");
                not_checked(match tls {
                    rustls::Error::InvalidCertificate(_) => {
                        "live's certificate could not be verified, so its pages were not checked"
                    }
                    _ => {
                        "live's secure connection (TLS) could not be made, so its pages were \
                         not checked"
                    }
                })
            }
            None => not_checked("live could not be reached from sitetrail"),
        },
        Err(_) => not_checked("live could not be reached from sitetrail"),
    }
}

/// The first [`BODY_LIMIT`] bytes of an answer: a site's pages are its owner's to make as
/// long as they like, and judging needs only where a page starts.
async fn first_bytes(mut body: hyper::body::Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while out.len() < BODY_LIMIT {
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            let room = BODY_LIMIT - out.len();
            out.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(out)
}

/// The TLS error (a certificate, a handshake) a request failed with, found down its chain.
/// An `io::Error` hides the error it wraps from `source()` (and the connector wraps the TLS
/// error in two of them), so each one met is opened.
fn tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(e);
    while let Some(mut err) = next {
        while let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = err.source();
    }
    None
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
