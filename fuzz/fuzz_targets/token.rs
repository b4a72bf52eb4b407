//! Any bytes as a viewer token: verifying never panics; nothing is accepted but an HS256
//! token signed with the server's key whose claims make a valid viewer; an accepted viewer
//! minted again verifies to the same viewer.
//!
//! The first byte picks how the rest is used: as the token text; as the claims of a token
//! signed with the right key; or as a header and claims (split at the first newline),
//! signed with the right key, so that the claims and header checks are reached too.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use sha2::Sha256;
use sitetrail_core::ActorKind;
use sitetrail_server::TokenKeys;
use sitetrail_server::error::ApiError;

const SECRET: [u8; 32] = [7; 32];
const HS256_HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

fn keys() -> &'static TokenKeys {
    static KEYS: OnceLock<TokenKeys> = OnceLock::new();
    KEYS.get_or_init(|| TokenKeys::from_secret(&SECRET))
}

fn signature(signed_part: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&SECRET).expect("any key length");
    mac.update(signed_part.as_bytes());
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn signed(header: &[u8], claims: &[u8]) -> String {
    let part = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = signature(&part);
    format!("{part}.{sig}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let token = match mode % 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(t) => t.to_owned(),
            Err(_) => return,
        },
        1 => signed(HS256_HEADER, rest),
        _ => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => signed(&rest[..i], &rest[i + 1..]),
            None => signed(rest, b"{}"),
        },
    };
    let viewer = match keys().verify(&token) {
        Ok(v) => v,
        Err(ApiError::Unauthorized(_)) => return,
        Err(other) => panic!("a bad token is a 401, not {other:?}"),
    };

    // Accepted: the token is three parts, signed with our key, with an HS256 header.
    let mut parts = token.trim().split('.');
    let (Some(head), Some(claims), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("accepted a token that is not three parts: {token:?}");
    };
    assert_eq!(
        signature(&format!("{head}.{claims}")),
        sig,
        "accepted a token not signed with the key"
    );
    let header: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(head)
            .expect("an accepted header is base64"),
    )
    .expect("an accepted header is JSON");
    assert_eq!(header["alg"], "HS256", "accepted another algorithm");

    // A valid viewer: a person with a valid email.
    assert_ne!(viewer.actor.kind, ActorKind::System, "a system viewer");
    assert!(viewer.actor.email.is_some(), "a viewer without an email");
    assert!(viewer.actor.validate().is_ok(), "an invalid actor");
    let again = keys()
        .mint(&viewer, 60)
        .expect("an accepted viewer can be minted");
    assert_eq!(
        keys().verify(&again).expect("a minted token verifies"),
        viewer
    );
});
