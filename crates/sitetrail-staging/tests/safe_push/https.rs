//! The health check on an `https://` live: a TLS-terminating proxy (tokio-rustls, a certificate
//! for 127.0.0.1 signed by a CA made here with the `openssl` CLI) in front of WordPress served
//! by `php -S`. The check trusts the system's roots only; to trust the test CA it runs in a
//! child process of this binary (`safe_push_https::child`) with `SSL_CERT_FILE` set, which
//! the platform verifier reads on Linux, so no test sets an environment variable in-process.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sitetrail_staging::health::{self, PageHealth};
use sitetrail_staging::wordpress::{self, Service, WpSite};

/// A CA and a server certificate for IP 127.0.0.1 that it signed.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server: PathBuf,
    server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    openssl(
        d,
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sitetrail test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
    );
    openssl(
        d,
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
    Certs {
        ca: d.join("ca.pem"),
        server: d.join("server.pem"),
        server_key: d.join("server.key"),
        _dir: dir,
    }
}

/// Serves TLS on 127.0.0.1 with `certs`' server certificate and passes each connection on to
/// `backend` (a port of `php -S`), for as long as the test's runtime lives. Returns its URL.
async fn tls_proxy(certs: &Certs, backend: u16) -> String {
    let chain = CertificateDer::pem_file_iter(&certs.server)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    #[expect(
        deprecated,
        reason = "the health check's provider (ring), on the other end"
    )]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut php) = tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut php).await;
            });
        }
    });
    format!("https://127.0.0.1:{port}")
}

/// Run by the tests below in a child process whose `SSL_CERT_FILE` is the test CA: checks
/// `SITETRAIL_HEALTH_URL` and prints the result as JSON on a line of its own.
#[tokio::test]
#[ignore = "run as a child process by the https health tests"]
async fn child() {
    let Ok(url) = std::env::var("SITETRAIL_HEALTH_URL") else {
        return;
    };
    let health = health::check(&url).await;
    println!(
        "HEALTH {} BROKEN {:?}",
        serde_json::to_string(&health).unwrap(),
        health.broken()
    );
}

/// The health check of `url` by a sitetrail that trusts `certs`' CA: each page's result
/// (`ok`, `broken`, `not_checked`) with its JSON, and the reason the check fails, if it does.
async fn check_trusting(certs: &Certs, url: &str) -> (Vec<(String, serde_json::Value)>, String) {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "safe_push_https::child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SSL_CERT_FILE", &certs.ca)
        .env("SITETRAIL_HEALTH_URL", url)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("HEALTH ").map(|(_, health)| health))
        .unwrap_or_else(|| panic!("the child printed its result: {stdout}"));
    let (json, broken) = line.split_once(" BROKEN ").unwrap();
    let health: serde_json::Value = serde_json::from_str(json).unwrap();
    let pages = health["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[1]["result"].as_str().unwrap().to_owned(), p[1].clone()))
        .collect();
    (pages, broken.to_owned())
}

async fn live_behind_tls(root: &Path) -> (WpSite, Certs, String) {
    let mut live =
        WpSite::install(root, "live", wordpress::free_port(4), "wp_", "Acme Bakery").unwrap();
    live.serve().unwrap();
    let certs = certs();
    let url = tls_proxy(&certs, live.port).await;
    (live, certs, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_live_that_serves_wordpress_is_checked_and_passes() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_live, certs, url) = live_behind_tls(dir.path()).await;

    let (pages, broken) = check_trusting(&certs, &url).await;
    assert_eq!(pages.len(), 2);
    for (result, page) in &pages {
        assert_eq!(result, "ok", "{page}");
    }
    assert_eq!(pages[1].1["status"], 200, "the login page answers");
    assert_eq!(broken, "None");
}

#[ignore = "the long suite: scripts/long.sh runs it"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_live_whose_theme_has_a_php_fatal_is_judged_broken() {
    if !wordpress::services(&[Service::MariaDb, Service::WordPress]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (live, certs, url) = live_behind_tls(dir.path()).await;
    let theme = live.docroot.join("wp-content/themes/broken");
    std::fs::create_dir_all(&theme).unwrap();
    std::fs::write(
        theme.join("style.css"),
        "/*\nTheme Name: Broken\nVersion: 1.0\n*/\n",
    )
    .unwrap();
    std::fs::write(theme.join("index.php"), "<?php echo 'broken theme';\n").unwrap();
    live.php("switch_theme('broken'); echo get_option('stylesheet');")
        .map(|s| assert_eq!(s, "broken"))
        .unwrap();
    // Written last: from now on live's WordPress dies on every request.
    std::fs::write(
        theme.join("functions.php"),
        "<?php\nsitetrail_this_function_does_not_exist();\n",
    )
    .unwrap();

    let (pages, broken) = check_trusting(&certs, &url).await;
    assert_eq!(pages[0].0, "broken", "the home page: {}", pages[0].1);
    assert!(
        broken.contains("The home page"),
        "the check fails with the home page's reason: {broken}"
    );
}

#[tokio::test]
async fn an_https_live_whose_certificate_is_not_trusted_is_not_checked_and_not_broken() {
    let certs = certs();
    // The handshake fails before the proxy connects on: nothing needs to listen behind it.
    let url = tls_proxy(&certs, wordpress::free_port(4)).await;

    let health = health::check(&url).await;
    assert_eq!(health.pages.len(), 2);
    for (page, result) in &health.pages {
        let PageHealth::NotChecked { reason } = result else {
            panic!("{page}: {result:?}");
        };
        assert_eq!(
            reason,
            "live's certificate could not be verified, so its pages were not checked"
        );
    }
    assert_eq!(health.broken(), None, "a push is never undone for it");
}

#[tokio::test]
async fn an_https_live_that_does_not_speak_tls_is_not_checked_and_not_broken() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = tcp
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\n\r\nFatal error")
                .await;
        }
    });

    let health = health::check(&format!("https://127.0.0.1:{port}")).await;
    for (page, result) in &health.pages {
        let PageHealth::NotChecked { reason } = result else {
            panic!("{page}: {result:?}");
        };
        assert!(reason.contains("(TLS) could not be made"), "{reason}");
    }
    assert_eq!(health.broken(), None);
}
