//! A partner's roster of support identities, and what hides each of them from clients.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::OnceLock;

use aho_corasick::AhoCorasick;

use crate::Email;
use crate::redact::SUPPORT_USER;

/// A partner's roster: every support identity recorded for one of its accounts. Clients of
/// any of the partner's accounts never see one of them in an activity's text or id, whoever
/// its actor. Each person is hidden by their email (also URL-encoded), their full name, and
/// as whole words the email's local part and each part of the name or of the local part
/// (split at anything not a letter or digit) of at least [`ROSTER_MIN_PART`] characters.
#[derive(Clone, Default)]
pub struct Roster {
    emails: HashSet<String>,
    /// Longest first, so that an email is replaced whole before a part of it.
    pub(crate) needles: Vec<(String, bool)>,
    /// The needles in lower case, for [`Roster::candidates`].
    lowered: HashSet<String>,
    /// Finds which needles occur in a lower-cased text, in one pass: made on first use.
    finder: OnceLock<AhoCorasick>,
}

/// The shortest part of a roster identity hidden on its own: two-letter parts ("Al", "Jo")
/// would hide ordinary words from every client of a partner.
pub const ROSTER_MIN_PART: usize = 3;

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Roster(<{} people>)", self.emails.len())
    }
}

impl Roster {
    pub fn empty() -> Self {
        Roster::default()
    }

    pub fn new<'p>(people: impl IntoIterator<Item = (&'p Email, Option<&'p str>)>) -> Self {
        let mut r = Roster::empty();
        for (email, name) in people {
            r.push(email, name);
        }
        r.sort();
        r
    }

    /// Adds a person (a no-op for one already on it).
    pub fn add(&mut self, email: &Email, name: Option<&str>) {
        if self.push(email, name) {
            self.sort();
        }
    }

    /// Adds a person's needles, unsorted; whether any was new.
    fn push(&mut self, email: &Email, name: Option<&str>) -> bool {
        self.emails.insert(email.expose().to_lowercase());
        let mut added = false;
        for needle in identity_needles(email.expose(), name, ROSTER_MIN_PART) {
            if self.lowered.insert(lower(&needle.0)) {
                self.needles.push(needle);
                added = true;
            }
        }
        added
    }

    /// Whether everything that hides this person is on the roster already.
    pub fn holds(&self, email: &Email, name: Option<&str>) -> bool {
        self.emails.contains(&email.expose().to_lowercase())
            && identity_needles(email.expose(), name, ROSTER_MIN_PART)
                .iter()
                .all(|(n, _)| self.lowered.contains(&lower(n)))
    }

    fn sort(&mut self) {
        self.needles
            .sort_by_cached_key(|(n, _)| std::cmp::Reverse(n.chars().count()));
        self.finder = OnceLock::new();
    }

    pub fn is_empty(&self) -> bool {
        self.emails.is_empty()
    }

    pub fn len(&self) -> usize {
        self.emails.len()
    }

    /// Whether `email` is on the roster, ignoring case.
    pub fn has_email(&self, email: &str) -> bool {
        self.emails.contains(&email.to_lowercase())
    }

    /// The needles that occur in `text`, longest first: the only ones that can match it
    /// ignoring case. One pass over the text, whatever the roster's size.
    pub(crate) fn candidates(&self, text: &str) -> Vec<&(String, bool)> {
        if self.needles.is_empty() {
            return Vec::new();
        }
        let finder = self.finder.get_or_init(|| {
            AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                .build(self.needles.iter().map(|(n, _)| lower(n)))
                .expect("a roster's needles make an automaton")
        });
        // Lower-casing char by char changes only the ASCII letters of an ASCII text.
        let hay = if !text.is_ascii() {
            Cow::Owned(lower(text))
        } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(text.to_ascii_lowercase())
        } else {
            Cow::Borrowed(text)
        };
        let hay = hay.as_ref();
        if !finder.is_match(hay) {
            return Vec::new();
        }
        let mut found = vec![false; self.needles.len()];
        for m in finder.find_overlapping_iter(hay) {
            found[m.pattern().as_usize()] = true;
        }
        self.needles
            .iter()
            .zip(found)
            .filter_map(|(n, f)| f.then_some(n))
            .collect()
    }
}

/// `text` lower-cased char by char, as matching ignoring case compares it.
pub(crate) fn lower(text: &str) -> String {
    text.chars().flat_map(char::to_lowercase).collect()
}

/// What hides one identity, each with whether only a whole word matches: the email and its
/// URL-encoded form anywhere; as words the full name, the email's local part, and the parts
/// of the name and of the local part of at least `min_part` characters.
pub(crate) fn identity_needles(
    email: &str,
    name: Option<&str>,
    min_part: usize,
) -> Vec<(String, bool)> {
    let mut out = vec![
        (email.to_owned(), false),
        (email.replace('@', "%40"), false),
    ];
    let long = |p: &&str| p.chars().count() >= min_part && !is_support_user_word(p);
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        out.push((name.to_owned(), true));
        for part in name.split_whitespace().filter(long) {
            out.push((part.to_owned(), true));
        }
    }
    if let Some((local, _)) = email.split_once('@') {
        if local.chars().count() >= min_part {
            out.push((local.to_owned(), true));
        }
        for part in local.split(|c: char| !c.is_alphanumeric()).filter(long) {
            out.push((part.to_owned(), true));
        }
    }
    let mut seen = Vec::new();
    out.retain(|(n, _)| {
        let lower = n.to_lowercase();
        let fresh = !seen.contains(&lower);
        seen.push(lower);
        fresh
    });
    out
}

/// Replacing "Support" or "User" with [`SUPPORT_USER`] would only stutter.
fn is_support_user_word(part: &str) -> bool {
    SUPPORT_USER
        .split(' ')
        .any(|w| w.eq_ignore_ascii_case(part))
}
