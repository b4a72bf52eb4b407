//! One-time tokens of the action forms, so that a double click, a resent form or a reload of
//! a POST never starts (nor logs) a second operation. Every page rendered with an action
//! form carries a fresh random token in the hidden field [`FIELD`]; the first POST of a
//! token starts the operation, and every later POST of the same token (same session, same
//! site, same action) waits for the first and answers with its outcome: the activity it
//! started, or the reason it was refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sitetrail_core::ActivityId;

use crate::memo::Memo;
use crate::pages::PageError;
use crate::pages::operations::Refusal;

/// The name of the hidden form field.
pub const FIELD: &str = "once";
/// How long a sent form is remembered: longer than anyone keeps a page open to send it again.
const REMEMBERED_FOR: Duration = Duration::from_secs(12 * 3600);
const REMEMBERED: usize = 100_000;

/// What the first POST of a form came to.
pub type Outcome = Result<ActivityId, Refusal>;

type Slot = Arc<tokio::sync::Mutex<Option<Outcome>>>;

/// The forms sent lately, by a key of session, token and action.
pub struct SentForms {
    sent: Mutex<Memo<Slot>>,
}

impl Default for SentForms {
    fn default() -> Self {
        SentForms {
            sent: Mutex::new(Memo::new(REMEMBERED_FOR, REMEMBERED)),
        }
    }
}

/// A fresh token for the forms of one rendered page.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness the form still works; only its repeats are not recognised.
        return String::new();
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SentForms {
    /// Runs `start` for the first form sent under `key`; a repeat of it gets the first one's
    /// outcome (waiting while the first is still starting). No key (a form without a token):
    /// `start` runs. An error page is no outcome: the form may be sent again.
    pub async fn once<F>(&self, key: Option<u64>, start: F) -> Result<Outcome, PageError>
    where
        F: Future<Output = Result<Outcome, PageError>>,
    {
        let Some(key) = key else {
            return start.await;
        };
        let slot = {
            let now = Instant::now();
            let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            match sent.get(key, now) {
                Some(slot) => slot.clone(),
                None => {
                    let slot = Slot::default();
                    sent.insert(key, slot.clone(), now);
                    slot
                }
            }
        };
        let mut outcome = slot.lock().await;
        if let Some(first) = &*outcome {
            return Ok(first.clone());
        }
        let first = start.await?;
        *outcome = Some(first.clone());
        Ok(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memo::key;
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_form_sent_twice_starts_once_and_both_answers_name_the_first() {
        let forms = Arc::new(SentForms::default());
        let started = Arc::new(AtomicUsize::new(0));
        let send = |k: Option<u64>| {
            let (forms, started) = (forms.clone(), started.clone());
            async move {
                forms
                    .once(k, async {
                        let n = started.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok(Ok(ActivityId::parse(&format!("act-{n}")).unwrap()))
                    })
                    .await
                    .unwrap()
            }
        };
        let same = Some(key(&["session", "token", "backup live"]));
        let (a, b) = tokio::join!(send(same), send(same));
        assert_eq!(started.load(Ordering::SeqCst), 1);
        assert_eq!(a.unwrap(), b.unwrap());
        let other = send(Some(key(&["session", "token2", "backup live"]))).await;
        assert_eq!(other.unwrap().as_str(), "act-1");
        send(None).await.unwrap();
        send(None).await.unwrap();
        assert_eq!(started.load(Ordering::SeqCst), 4, "no token: no memory");
    }

    #[tokio::test]
    async fn a_refusal_is_the_answer_to_its_repeat_and_an_error_page_is_not() {
        let forms = SentForms::default();
        let k = Some(key(&["s", "t", "push"]));
        let refusal = Refusal {
            status: StatusCode::CONFLICT,
            message: "Another operation is running.".into(),
        };
        let first = forms.once(k, async { Ok(Err(refusal.clone())) }).await;
        let again = forms
            .once(k, async { panic!("a repeat does not start") })
            .await;
        assert_eq!(
            first.unwrap().unwrap_err().message,
            again.unwrap().unwrap_err().message
        );

        let k = Some(key(&["s", "t", "create"]));
        let failed = forms
            .once(k, async { Err(PageError::site_not_found()) })
            .await;
        assert!(failed.is_err());
        let retried = forms
            .once(k, async { Ok(Ok(ActivityId::parse("act-9").unwrap())) })
            .await;
        assert_eq!(retried.unwrap().unwrap().as_str(), "act-9");
    }

    #[test]
    fn tokens_are_fresh_and_fit_a_form_field() {
        let (a, b) = (token(), token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 22);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }
}
