//! Cross-site request forgery protection for every form that changes something: a stateless
//! double submit. The token is derived from the session (which is HttpOnly, so another site
//! can neither read it nor compute the token) and sent back in a hidden field named
//! [`FIELD`]; [`check`] compares the two in constant time.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The name of the hidden form field.
pub const FIELD: &str = "csrf";

/// The token a form of this session must send back.
pub fn token_for(session: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"csrf:");
    hash.update(session.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// Whether a submitted token belongs to this session.
pub fn check(session: &str, presented: &str) -> bool {
    let expected = token_for(session);
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_accepts_its_own_token_only() {
        let mine = token_for("session-a");
        assert!(check("session-a", &mine));
        assert!(!check("session-b", &mine));
        assert!(!check("session-a", ""));
        assert!(!check("session-a", &mine[..mine.len() - 1]));
    }

    #[test]
    fn tokens_do_not_reveal_the_session() {
        let token = token_for("eyJhbGciOiJIUzI1NiJ9.secret.sig");
        assert!(!token.contains("secret"));
        assert_eq!(token.len(), 43);
    }
}
