//! The replacer that moves a WordPress site from one URL to another.

use std::fmt;

use crate::rewrite::{Replacer, rewrite};

/// Replaces one or more site URLs, in every form WordPress stores them: plain
/// (`http://old.example:8081/path`), JSON-escaped (`http:\/\/old.example:8081\/path`),
/// URL-encoded (`http%3A%2F%2Fold.example%3A8081%2Fpath`, as in `?redirect_to=`), and, for
/// `http` and `https` URLs, protocol-relative (`//old.example:8081/path`, also escaped and
/// encoded). Scheme and host match case-insensitively, the path exactly.
///
/// A match counts only where the URL ends: the byte after it must not carry on its last host
/// label, its port or its last path segment. `http://old.example:8081` is not replaced in
/// `http://old.example:80812`, `http://old.example:8081.evil.example` or
/// `http://old.example:8081@evil.example`; it is in `http://old.example:8081/wp-admin`,
/// `"http://old.example:8081"`, `...:8081?p=1` or at the end of a sentence
/// (`...:8081.`). A from URL without a port does not match the same host with a port.
///
/// Where pairs overlap, the longest match at the leftmost position wins, and each byte is
/// replaced at most once: `to` may contain `from`. Pairs for `http://` and `https://` of one
/// host share their protocol-relative form, which follows the pair added first.
#[derive(Clone)]
pub struct UrlRewrite {
    pairs: Vec<(String, String)>,
    patterns: Vec<Pattern>,
    first_bytes: [bool; 256],
    /// Lowercase runs of the from hosts that every form keeps verbatim.
    needles: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    url: String,
    reason: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

impl fmt::Debug for UrlRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlRewrite")
            .field("pairs", &self.pairs)
            .finish_non_exhaustive()
    }
}

impl UrlRewrite {
    /// `from` and `to` are absolute URLs (`scheme://host[:port][/path]`); a trailing slash
    /// is ignored.
    pub fn new(from: &str, to: &str) -> Result<Self, UrlError> {
        UrlRewrite {
            pairs: Vec::new(),
            patterns: Vec::new(),
            first_bytes: [false; 256],
            needles: Vec::new(),
        }
        .with(from, to)
    }

    /// Adds another pair, e.g. the `https://` variant of the same site.
    pub fn with(mut self, from: &str, to: &str) -> Result<Self, UrlError> {
        let from_url = Url::parse(from)?;
        let to_url = Url::parse(to)?;
        let from_key = from_url.key();
        if self
            .pairs
            .iter()
            .any(|(f, _)| Url::parse(f).is_ok_and(|u| u.key() == from_key))
        {
            return Err(UrlError {
                url: from.to_owned(),
                reason: "this from URL is already replaced",
            });
        }
        for pattern in Pattern::forms(&from_url, &to_url) {
            if self.patterns.iter().any(|p| p.same_from(&pattern)) {
                continue;
            }
            let first = pattern.from[0];
            self.first_bytes[usize::from(first)] = true;
            if pattern.fold[0] {
                self.first_bytes[usize::from(first.to_ascii_lowercase())] = true;
                self.first_bytes[usize::from(first.to_ascii_uppercase())] = true;
            }
            self.patterns.push(pattern);
        }
        // Stable: among equal lengths, the pair added first wins.
        self.patterns
            .sort_by_key(|p| std::cmp::Reverse(p.from.len()));
        self.needles.push(from_url.needle());
        self.pairs.push((from.to_owned(), to.to_owned()));
        Ok(self)
    }

    /// Rewrites one stored value (serialized or not); `None` when nothing changed.
    pub fn apply(&self, value: &[u8]) -> Option<Vec<u8>> {
        rewrite(value, self)
    }

    /// Replaces in plain text only, ignoring any serialization.
    pub fn replace_text(&self, text: &[u8]) -> Option<Vec<u8>> {
        if !self.may_match(text) {
            return None;
        }
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut i = 0;
        while i < text.len() {
            if !self.first_bytes[usize::from(text[i])] {
                i += 1;
                continue;
            }
            let hit = self
                .patterns
                .iter()
                .find(|p| p.matches_at(text, i) && ends_a_url(text, i + p.from.len(), p.encoded));
            match hit {
                Some(p) => {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(text.len() + 64));
                    out.extend_from_slice(&text[copied..i]);
                    out.extend_from_slice(&p.to);
                    i += p.from.len();
                    copied = i;
                }
                None => i += 1,
            }
        }
        let mut out = out?;
        out.extend_from_slice(&text[copied..]);
        (out != text).then_some(out)
    }
}

impl Replacer for UrlRewrite {
    fn replace(&self, text: &[u8]) -> Option<Vec<u8>> {
        self.replace_text(text)
    }

    fn may_match(&self, text: &[u8]) -> bool {
        self.needles.iter().any(|n| contains_ignore_case(text, n))
    }
}

#[derive(Clone, Debug)]
struct Pattern {
    from: Vec<u8>,
    /// Per byte of `from`: compared ignoring ASCII case.
    fold: Vec<bool>,
    to: Vec<u8>,
    /// The URL-encoded forms, after which `%XX` is read as one character.
    encoded: bool,
}

impl Pattern {
    fn forms(from: &Url<'_>, to: &Url<'_>) -> Vec<Pattern> {
        let mut from_chars: Vec<(u8, bool)> = Vec::new();
        from_chars.extend(from.scheme.bytes().map(|b| (b, true)));
        from_chars.extend(b"://".iter().map(|&b| (b, false)));
        from_chars.extend(from.authority.bytes().map(|b| (b, true)));
        from_chars.extend(from.path.bytes().map(|b| (b, false)));
        let to_chars: Vec<(u8, bool)> = to.full().bytes().map(|b| (b, false)).collect();

        let mut bases = vec![(from_chars.clone(), to_chars.clone())];
        if from.scheme.eq_ignore_ascii_case("http") || from.scheme.eq_ignore_ascii_case("https") {
            let from_rel = from_chars[from.scheme.len() + 1..].to_vec();
            let to_rel = to_chars[to.scheme.len() + 1..].to_vec();
            bases.push((from_rel, to_rel));
        }
        let mut forms = Vec::new();
        for (f, t) in bases {
            forms.push(Pattern::new(&f, &t, false));
            forms.push(Pattern::new(&json_escape(&f), &json_escape(&t), false));
            forms.push(Pattern::new(&url_encode(&f), &url_encode(&t), true));
        }
        forms
    }

    fn new(from: &[(u8, bool)], to: &[(u8, bool)], encoded: bool) -> Pattern {
        Pattern {
            from: from.iter().map(|&(b, _)| b).collect(),
            fold: from.iter().map(|&(_, f)| f).collect(),
            to: to.iter().map(|&(b, _)| b).collect(),
            encoded,
        }
    }

    fn matches_at(&self, text: &[u8], at: usize) -> bool {
        let Some(candidate) = text.get(at..at + self.from.len()) else {
            return false;
        };
        candidate
            .iter()
            .zip(&self.from)
            .zip(&self.fold)
            .all(|((&c, &p), &fold)| c == p || (fold && c.eq_ignore_ascii_case(&p)))
    }

    fn same_from(&self, other: &Pattern) -> bool {
        self.fold == other.fold
            && self.from.len() == other.from.len()
            && self.matches_at(&other.from, 0)
    }
}

fn json_escape(chars: &[(u8, bool)]) -> Vec<(u8, bool)> {
    let mut out = Vec::with_capacity(chars.len() + 8);
    for &(b, fold) in chars {
        if b == b'/' {
            out.push((b'\\', false));
        }
        out.push((b, fold));
    }
    out
}

/// As PHP's `rawurlencode()`: all but `A-Za-z0-9-_.~`, upper-case hex (matched either case).
fn url_encode(chars: &[(u8, bool)]) -> Vec<(u8, bool)> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = Vec::with_capacity(chars.len() * 2);
    for &(b, fold) in chars {
        if is_unreserved(b) {
            out.push((b, fold));
        } else {
            out.push((b'%', false));
            out.push((HEX[usize::from(b >> 4)], true));
            out.push((HEX[usize::from(b & 15)], true));
        }
    }
    out
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Whether a URL matched just before `end` ends there (see [`UrlRewrite`]).
fn ends_a_url(text: &[u8], end: usize, encoded: bool) -> bool {
    match next_char(text, end, encoded) {
        None => true,
        Some((c, _)) if carries_on(c) => false,
        Some((b'.' | b':', len)) => {
            !next_char(text, end + len, encoded).is_some_and(|(c, _)| carries_on(c))
        }
        Some(_) => true,
    }
}

/// A byte that, right after a host, port or path segment, would be part of it.
fn carries_on(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'~' | b'@' | b'%') || c >= 0x80
}

/// The character at `at` and its length in bytes. In an encoded form `%XX` is decoded; in
/// the other forms a percent-escape carries a segment on, so it reads as `%`.
fn next_char(text: &[u8], at: usize, encoded: bool) -> Option<(u8, usize)> {
    let b = *text.get(at)?;
    if b == b'%' && encoded {
        let hex = |i: usize| text.get(i).and_then(|&h| char::from(h).to_digit(16));
        if let (Some(hi), Some(lo)) = (hex(at + 1), hex(at + 2)) {
            return Some(((hi * 16 + lo) as u8, 3));
        }
    }
    if b == b'\\' && text.get(at + 1) == Some(&b'/') {
        return Some((b'/', 2));
    }
    Some((b, 1))
}

fn contains_ignore_case(text: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    if text.len() < needle.len() {
        return false;
    }
    let last_start = text.len() - needle.len();
    memchr::memchr2_iter(first, first.to_ascii_uppercase(), &text[..=last_start])
        .any(|i| text[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

struct Url<'a> {
    scheme: &'a str,
    authority: &'a str,
    path: &'a str,
}

impl<'a> Url<'a> {
    fn parse(url: &'a str) -> Result<Self, UrlError> {
        let err = |reason| UrlError {
            url: url.to_owned(),
            reason,
        };
        let (scheme, rest) = url.split_once("://").ok_or(err("expected scheme://host"))?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(err("invalid scheme"));
        }
        let rest = rest.trim_end_matches('/');
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                (&authority[..i], Some(&authority[i + 1..]))
            }
            _ => (authority, None),
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let host_ok = if let Some(ip6) = host.strip_prefix('[') {
            ip6.strip_suffix(']').is_some_and(|ip6| {
                !ip6.is_empty()
                    && ip6
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            })
        } else {
            host.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || b >= 0x80
            })
        };
        if !host_ok {
            return Err(err(
                "invalid host (user info, query and fragment are not allowed)",
            ));
        }
        if port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit())) {
            return Err(err("invalid port"));
        }
        let path_ok = path.bytes().all(|b| {
            b > b' '
                && b != 0x7f
                && !matches!(b, b'?' | b'#' | b'"' | b'\'' | b'<' | b'>' | b'\\' | b'`')
        });
        if !path_ok {
            return Err(err("invalid path (query and fragment are not allowed)"));
        }
        Ok(Url {
            scheme,
            authority,
            path,
        })
    }

    fn full(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }

    /// Equal for URLs that match the same text.
    fn key(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.to_ascii_lowercase(),
            self.authority.to_ascii_lowercase(),
            self.path
        )
    }

    /// The longest run of the host that no form escapes or encodes.
    fn needle(&self) -> Vec<u8> {
        let host = self.authority.as_bytes();
        host.split(|&b| !is_unreserved(b))
            .max_by_key(|run| run.len())
            .unwrap_or_default()
            .to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "http://127.0.0.1:8081";
    const TO: &str = "http://staging.127.0.0.1.nip.io:18082/sub";

    fn site() -> UrlRewrite {
        UrlRewrite::new(FROM, TO).unwrap()
    }

    fn text(rw: &UrlRewrite, input: &str) -> String {
        match rw.replace_text(input.as_bytes()) {
            Some(out) => String::from_utf8(out).unwrap(),
            None => input.to_owned(),
        }
    }

    #[test]
    fn plain_urls_are_replaced_wherever_they_end() {
        let rw = site();
        for (input, want) in [
            ("http://127.0.0.1:8081", TO.to_owned()),
            ("http://127.0.0.1:8081/", format!("{TO}/")),
            (
                "http://127.0.0.1:8081/wp-admin/?a=1",
                format!("{TO}/wp-admin/?a=1"),
            ),
            ("http://127.0.0.1:8081?p=1", format!("{TO}?p=1")),
            ("http://127.0.0.1:8081#top", format!("{TO}#top")),
            (
                r#"<a href="http://127.0.0.1:8081">"#,
                format!(r#"<a href="{TO}">"#),
            ),
            ("see http://127.0.0.1:8081.", format!("see {TO}.")),
            ("(http://127.0.0.1:8081), x", format!("({TO}), x")),
            (
                "go to http://127.0.0.1:8081: now",
                format!("go to {TO}: now"),
            ),
        ] {
            assert_eq!(text(&rw, input), want, "{input}");
        }
    }

    #[test]
    fn a_longer_host_port_or_segment_is_not_the_site() {
        let rw = site();
        for input in [
            "http://127.0.0.1:80812",
            "http://127.0.0.1:8081.evil.example/",
            "http://127.0.0.1:8081@evil.example/",
            "http://127.0.0.1:8081-x",
            "http://127.0.0.1:8081%41",
            "http://127.0.0.1:8081é",
            "http://127.0.0.1:808",
            "https://127.0.0.10:8081",
            "http://127.0.0.1:8081x:1",
        ] {
            assert_eq!(text(&rw, input), input, "{input}");
        }
        let rw = UrlRewrite::new("http://old.example", "https://new.example").unwrap();
        for input in [
            "http://old.example.com/",
            "http://old.examples/",
            "http://old.example:8080/",
            "http://www.old.example/",
            "http://sub.old.example/",
            "http%3A%2F%2Fold.example%3A8080",
            "http%3A%2F%2Fold.example.com",
        ] {
            assert_eq!(text(&rw, input), input, "{input}");
        }
        let rw = UrlRewrite::new("http://old.example/blog", "http://new.example").unwrap();
        assert_eq!(
            text(&rw, "http://old.example/blog/x"),
            "http://new.example/x"
        );
        assert_eq!(
            text(&rw, "http://old.example/blog?p=2"),
            "http://new.example?p=2"
        );
        for input in [
            "http://old.example/blog2",
            "http://old.example/blogs/x",
            "http://old.example/blog.html",
            "http://old.example/blog%20x",
            "http://old.example/",
        ] {
            assert_eq!(text(&rw, input), input, "{input}");
        }
    }

    #[test]
    fn json_escaped_urls_are_replaced_escaped() {
        assert_eq!(
            text(
                &site(),
                r#"{"url":"http:\/\/127.0.0.1:8081\/wp-content\/a.jpg"}"#
            ),
            r#"{"url":"http:\/\/staging.127.0.0.1.nip.io:18082\/sub\/wp-content\/a.jpg"}"#
        );
        assert_eq!(
            text(&site(), r#"["http:\/\/127.0.0.1:80812"]"#),
            r#"["http:\/\/127.0.0.1:80812"]"#
        );
    }

    #[test]
    fn protocol_relative_urls_are_replaced_without_a_scheme() {
        assert_eq!(
            text(&site(), r#"<script src="//127.0.0.1:8081/a.js">"#),
            r#"<script src="//staging.127.0.0.1.nip.io:18082/sub/a.js">"#
        );
        assert_eq!(
            text(&site(), r#"{"u":"\/\/127.0.0.1:8081\/a.js"}"#),
            r#"{"u":"\/\/staging.127.0.0.1.nip.io:18082\/sub\/a.js"}"#
        );
        // another scheme, same host: the host moved, the scheme stays
        assert_eq!(
            text(&site(), "https://127.0.0.1:8081/x"),
            "https://staging.127.0.0.1.nip.io:18082/sub/x"
        );
        assert_eq!(text(&site(), "//127.0.0.1:80812/"), "//127.0.0.1:80812/");
        let ftp = UrlRewrite::new("ftp://old.example", "ftp://new.example").unwrap();
        assert_eq!(text(&ftp, "//old.example/"), "//old.example/");
    }

    #[test]
    fn url_encoded_urls_are_replaced_encoded() {
        assert_eq!(
            text(
                &site(),
                "/wp-login.php?redirect_to=http%3A%2F%2F127.0.0.1%3A8081%2Fwp-admin%2F&x=1"
            ),
            "/wp-login.php?redirect_to=http%3A%2F%2Fstaging.127.0.0.1.nip.io%3A18082%2Fsub%2Fwp-admin%2F&x=1"
        );
        assert_eq!(
            text(&site(), "u=http%3a%2f%2f127.0.0.1%3a8081"),
            "u=http%3A%2F%2Fstaging.127.0.0.1.nip.io%3A18082%2Fsub"
        );
        assert_eq!(
            text(&site(), "u=%2F%2F127.0.0.1%3A8081%2F"),
            "u=%2F%2Fstaging.127.0.0.1.nip.io%3A18082%2Fsub%2F"
        );
        assert_eq!(
            text(&site(), "http%3A%2F%2F127.0.0.1%3A80812"),
            "http%3A%2F%2F127.0.0.1%3A80812"
        );
    }

    #[test]
    fn scheme_and_host_match_in_any_case_the_path_exactly() {
        let rw = UrlRewrite::new("http://Old.Example/Blog", "http://new.example").unwrap();
        assert_eq!(
            text(&rw, "HTTP://OLD.EXAMPLE/Blog/x"),
            "http://new.example/x"
        );
        assert_eq!(
            text(&rw, "http://old.example/blog/x"),
            "http://old.example/blog/x"
        );
    }

    #[test]
    fn several_pairs_longest_match_first() {
        let rw = UrlRewrite::new("http://old.example", "http://new.example")
            .and_then(|rw| rw.with("https://old.example", "https://new.example"))
            .and_then(|rw| rw.with("http://old.example/shop", "https://shop.example"))
            .unwrap();
        assert_eq!(
            text(
                &rw,
                "http://old.example/a https://old.example/b http://old.example/shop/c http://old.example/shopping"
            ),
            "http://new.example/a https://new.example/b https://shop.example/c http://new.example/shopping"
        );
        let err = rw
            .with("HTTP://old.example/", "http://x.example")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid URL "HTTP://old.example/": this from URL is already replaced"#
        );
    }

    #[test]
    fn to_may_contain_from_and_is_not_replaced_again() {
        let rw = UrlRewrite::new("http://old.example", "http://old.example/sub").unwrap();
        assert_eq!(
            text(&rw, "http://old.example/x"),
            "http://old.example/sub/x"
        );
    }

    #[test]
    fn trailing_slashes_are_ignored() {
        let rw = UrlRewrite::new("http://old.example/", "http://new.example/").unwrap();
        assert_eq!(text(&rw, "http://old.example/x"), "http://new.example/x");
        assert_eq!(text(&rw, "http://old.example"), "http://new.example");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "old.example",
            "//old.example",
            "http://",
            "http://:80",
            "http://old.example:",
            "http://old.example:8a",
            "http://user@old.example",
            "http://old.example?x=1",
            "http://old.example/#x",
            "http://old example",
            "1http://old.example",
            "http://[::1",
        ] {
            assert!(UrlRewrite::new(url, "http://new.example").is_err(), "{url}");
            assert!(UrlRewrite::new("http://new.example", url).is_err(), "{url}");
        }
        assert!(UrlRewrite::new("http://[::1]:8080", "http://[fe80::1]").is_ok());
    }

    #[test]
    fn ipv6_hosts_match_in_every_form() {
        let rw = UrlRewrite::new("http://[::1]:8080", "http://new.example").unwrap();
        assert_eq!(text(&rw, "http://[::1]:8080/x"), "http://new.example/x");
        assert_eq!(
            text(&rw, "http%3A%2F%2F%5B%3A%3A1%5D%3A8080"),
            "http%3A%2F%2Fnew.example"
        );
    }

    #[test]
    fn values_are_rewritten_through_serialization() {
        let input = br#"a:2:{s:7:"siteurl";s:21:"http://127.0.0.1:8081";s:4:"json";s:38:"{"u":"http:\/\/127.0.0.1:8081\/x.jpg"}";}"#;
        let out = site().apply(input).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"a:2:{s:7:"siteurl";s:41:"http://staging.127.0.0.1.nip.io:18082/sub";s:4:"json";s:59:"{"u":"http:\/\/staging.127.0.0.1.nip.io:18082\/sub\/x.jpg"}";}"#
        );
        assert_eq!(site().apply(b"no url here"), None);
        assert_eq!(site().apply(br#"s:5:"hello";"#), None);
    }

    #[test]
    fn a_rewrite_can_be_shared_between_threads() {
        fn shared<T: Send + Sync + Clone>(_: &T) {}
        shared(&site());
    }

    #[test]
    fn the_pre_check_finds_the_host_in_any_case() {
        let rw = UrlRewrite::new("http://Old.Example", "http://new.example").unwrap();
        assert!(rw.may_match(b"xx OLD.EXAMPLE"));
        assert!(rw.may_match(b"old.example"));
        assert!(!rw.may_match(b"old.exampl"));
        assert!(!rw.may_match(b""));
    }

    proptest::proptest! {
        #[test]
        fn moved_values_parse_and_hold_exactly_the_replaced_strings(
            site in 0..3usize,
            node in crate::testgen::node(),
        ) {
            let site = &crate::testgen::sites()[site];
            let before = node.value(site, false).to_bytes();
            let want = node.value(site, true).to_bytes();
            let got = site.rewrite().apply(&before).unwrap_or_else(|| before.clone());
            proptest::prop_assert!(crate::parse(&got).is_ok());
            proptest::prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }

        #[test]
        fn moved_plain_text_holds_the_replaced_urls(site in 0..3usize, text in crate::testgen::text()) {
            let site = &crate::testgen::sites()[site];
            let before = text.render(site, false);
            let got = site.rewrite().apply(&before).unwrap_or_else(|| before.clone());
            let want = text.render(site, true);
            proptest::prop_assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
    }
}
