//! Who is calling: publishers with API keys, viewers with signed, expiring tokens.

use std::path::Path;

use anyhow::Context;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sitetrail_core::{AccountId, Actor, ActorKind, Audience, Email, SiteId, Timestamp, Viewer};
use sitetrail_store::KeyCheck;

use crate::AppState;
use crate::error::ApiError;
use crate::opaque::Opaque;

/// The dashboard's session cookie holds the same signed token.
pub const SESSION_COOKIE: &str = "sitetrail_session";
const ALGORITHM: Algorithm = Algorithm::HS256;
const KEY_FILE: &str = "token-signing.key";
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// Signs and checks viewer tokens with the key kept in the data dir.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    opaque: Opaque,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(<redacted>)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActorClaim {
    pub kind: ActorKind,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub account: AccountId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<SiteId>,
    pub audience: Audience,
    pub actor: ActorClaim,
    pub exp: u64,
    pub iat: u64,
}

impl TokenKeys {
    /// Reads the key from the data dir, making it on first start.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        let secret = match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= 32 => bytes,
            Ok(_) => anyhow::bail!("{} is too short to be a signing key", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = vec![0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                write_private(&path, &bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
                bytes
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self::from_secret(&secret))
    }

    pub fn from_secret(secret: &[u8]) -> Self {
        TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            opaque: Opaque::from_secret(secret),
        }
    }

    /// The cipher of the numbers viewers are handed but must not read.
    pub fn opaque(&self) -> &Opaque {
        &self.opaque
    }

    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.encoding)
            .context("signing a viewer token")
    }

    /// Mints a token for a viewer, valid for `ttl_seconds`.
    pub fn mint(&self, viewer: &Viewer, ttl_seconds: u64) -> anyhow::Result<String> {
        anyhow::ensure!(
            (1..=MAX_TTL_SECONDS).contains(&ttl_seconds),
            "the lifetime must be 1 to {MAX_TTL_SECONDS} seconds"
        );
        let email = viewer
            .actor
            .email
            .as_ref()
            .context("a viewer is a person with an email")?;
        let now = (Timestamp::now().millis() / 1000) as u64;
        self.sign(&Claims {
            account: viewer.account.clone(),
            site: viewer.site.clone(),
            audience: viewer.audience,
            actor: ActorClaim {
                kind: viewer.actor.kind,
                email: email.expose().to_owned(),
                name: viewer.actor.name.clone(),
            },
            iat: now,
            exp: now + ttl_seconds,
        })
    }

    /// A viewer from a token, or why not. Only HS256 is accepted; `exp` is required.
    pub fn verify(&self, token: &str) -> Result<Viewer, ApiError> {
        let mut validation = Validation::new(ALGORITHM);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    ApiError::Unauthorized("the viewer token has expired")
                }
                _ => ApiError::Unauthorized("the viewer token is not valid"),
            },
        )?;
        let c = data.claims;
        if c.actor.kind == ActorKind::System {
            return Err(ApiError::Unauthorized("the viewer token is not valid"));
        }
        let email = Email::parse(&c.actor.email)
            .map_err(|_| ApiError::Unauthorized("the viewer token is not valid"))?;
        let actor = Actor::person(c.actor.kind, email, c.actor.name);
        actor
            .validate()
            .map_err(|_| ApiError::Unauthorized("the viewer token is not valid"))?;
        Ok(Viewer {
            account: c.account,
            site: c.site,
            audience: c.audience,
            actor,
        })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn bearer(parts: &Parts) -> Option<&str> {
    bearer_in(&parts.headers)
}

fn bearer_in(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The viewer a request's headers prove, if any (bearer token first, then the cookie).
pub fn viewer_of(headers: &HeaderMap, tokens: &TokenKeys) -> Option<Viewer> {
    tokens.verify(presented_token(headers)?).ok()
}

/// The token a request signs in with: bearer first, then the cookie (as [`ViewerAuth`]).
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    bearer_in(headers).or_else(|| session_cookie_in(headers))
}

/// The `exp` claim (seconds since the epoch) of a token that was already verified.
pub fn expiry(token: &str) -> Option<u64> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_u64()
}

pub fn session_cookie(parts: &Parts) -> Option<&str> {
    session_cookie_in(&parts.headers)
}

fn session_cookie_in(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v)
}

/// A signed-in viewer, from `Authorization: Bearer` or the session cookie.
pub struct ViewerAuth(pub Viewer);

impl FromRequestParts<AppState> for ViewerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)
            .or_else(|| session_cookie(parts))
            .ok_or(ApiError::Unauthorized("sign in with a viewer token"))?;
        let viewer = state.tokens.verify(token)?;
        state.limits.viewer(&viewer)?;
        Ok(ViewerAuth(viewer))
    }
}

/// A viewer who sent `Authorization: Bearer`: what state-changing API calls require, so
/// that a page of another site cannot ride on the dashboard's cookie (forms in the
/// dashboard carry a CSRF token instead).
pub struct BearerViewer(pub Viewer);

impl FromRequestParts<AppState> for BearerViewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized(
            "send the viewer token as Authorization: Bearer",
        ))?;
        let viewer = state.tokens.verify(token)?;
        state.limits.viewer(&viewer)?;
        Ok(BearerViewer(viewer))
    }
}

/// A platform service holding a publisher API key.
#[derive(Debug, Clone)]
pub struct Publisher {
    pub key_id: String,
    pub name: String,
}

impl FromRequestParts<AppState> for Publisher {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = bearer(parts).ok_or(ApiError::Unauthorized("send a publisher API key"))?;
        match state.store.check_api_key(key).await? {
            KeyCheck::Valid { id, name } => {
                state.limits.publisher(&id)?;
                Ok(Publisher { key_id: id, name })
            }
            KeyCheck::Invalid => Err(ApiError::Unauthorized("the API key is not valid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Viewer {
        Viewer {
            account: AccountId::parse("acme").unwrap(),
            site: None,
            audience: Audience::Client,
            actor: Actor::person(
                ActorKind::User,
                Email::parse("o@acme.example").unwrap(),
                None,
            ),
        }
    }

    #[test]
    fn a_minted_token_verifies_and_a_foreign_key_does_not() {
        let keys = TokenKeys::from_secret(&[7; 32]);
        let token = keys.mint(&viewer(), 60).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), viewer());
        let other = TokenKeys::from_secret(&[8; 32]);
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(
            r#"{"account":"acme","audience":"internal","actor":{"kind":"support","email":"a@b.c"},"exp":99999999999,"iat":0}"#,
        );
        let keys = TokenKeys::from_secret(&[7; 32]);
        assert!(keys.verify(&format!("{header}.{body}.")).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = TokenKeys::from_secret(&[7; 32]);
        let token = keys
            .sign(&Claims {
                account: AccountId::parse("acme").unwrap(),
                site: None,
                audience: Audience::Client,
                actor: ActorClaim {
                    kind: ActorKind::User,
                    email: "o@acme.example".into(),
                    name: None,
                },
                iat: 0,
                exp: 1_000,
            })
            .unwrap();
        assert!(
            matches!(keys.verify(&token), Err(ApiError::Unauthorized(m)) if m.contains("expired"))
        );
    }
}
