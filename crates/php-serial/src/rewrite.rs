//! Search-replace through serialized values, as WordPress tools do it, but lossless.

use std::borrow::Cow;

use crate::Value;
use crate::parse::{ErrorKind, MAX_DEPTH, parse_prefix_with_max_depth, parse_with_max_depth};

/// What to replace inside one string's bytes.
pub trait Replacer {
    /// The replaced bytes, or `None` when nothing in `text` is replaced.
    fn replace(&self, text: &[u8]) -> Option<Vec<u8>>;

    /// A cheap pre-check: `false` promises that `replace` changes neither `text` nor any
    /// part of it, so the value need not be parsed at all.
    fn may_match(&self, _text: &[u8]) -> bool {
        true
    }
}

impl<F: Fn(&[u8]) -> Option<Vec<u8>>> Replacer for F {
    fn replace(&self, text: &[u8]) -> Option<Vec<u8>> {
        self(text)
    }
}

/// Rewrites one stored value: a serialized value is rewritten string by string (lengths
/// recomputed), anything else as plain text. `None` when nothing changed.
///
/// As WordPress's `maybe_unserialize()` does, whitespace around a serialized value is
/// tolerated and kept.
pub fn rewrite<R: Replacer + ?Sized>(bytes: &[u8], replacer: &R) -> Option<Vec<u8>> {
    rewrite_bytes(bytes, replacer, BUDGET).filter(|out| out != bytes)
}

/// Rewrites the strings of a parsed value in place; whether anything changed.
pub fn rewrite_value<R: Replacer + ?Sized>(value: &mut Value<'_>, replacer: &R) -> bool {
    rewrite_tree(value, replacer, BUDGET)
}

/// Bounds the recursion through containers and through serialized strings within strings
/// together. Twice the parser's limit: every string of a value that [`crate::parse`]
/// accepts is still reached with budget to spare.
const BUDGET: usize = 2 * MAX_DEPTH;

fn rewrite_bytes<R: Replacer + ?Sized>(bytes: &[u8], r: &R, budget: usize) -> Option<Vec<u8>> {
    if !r.may_match(bytes) {
        return None;
    }
    let budget = budget.checked_sub(1)?;
    let (lead, core, trail) = trim_php_whitespace(bytes);
    match parse_with_max_depth(core, budget.min(MAX_DEPTH)) {
        Ok(mut value) => {
            if !rewrite_tree(&mut value, r, budget) {
                return None;
            }
            let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 4);
            out.extend_from_slice(lead);
            value.write_to(&mut out);
            out.extend_from_slice(trail);
            Some(out)
        }
        // Too deep to be sure: leave it as it is rather than break it.
        Err(e) if e.kind() == ErrorKind::TooDeep => None,
        Err(_) => r.replace(bytes),
    }
}

fn rewrite_tree<R: Replacer + ?Sized>(value: &mut Value<'_>, r: &R, budget: usize) -> bool {
    match value {
        Value::Str(s) => replace_cow(s, |s| rewrite_bytes(s, r, budget)),
        Value::Array(entries) => {
            let mut changed = false;
            for (key, value) in entries {
                if let Value::Str(k) = key {
                    changed |= replace_cow(k, |k| r.replace(k));
                }
                changed |= rewrite_tree(value, r, budget.saturating_sub(1));
            }
            changed
        }
        Value::Object { class, props } => {
            let dynamic = class.eq_ignore_ascii_case(b"stdClass");
            let mut changed = false;
            for (name, value) in props {
                if let (true, Value::Str(n)) = (dynamic, name) {
                    changed |= replace_cow(n, |n| r.replace(n));
                }
                changed |= rewrite_tree(value, r, budget.saturating_sub(1));
            }
            changed
        }
        Value::Custom { payload, .. } => replace_cow(payload, |p| rewrite_payload(p, r, budget)),
        _ => false,
    }
}

fn replace_cow(bytes: &mut Cow<'_, [u8]>, f: impl FnOnce(&[u8]) -> Option<Vec<u8>>) -> bool {
    match f(bytes) {
        Some(new) => {
            *bytes = Cow::Owned(new);
            true
        }
        None => false,
    }
}

/// A `C:` payload is rewritten only when it is made of serialized values and the
/// punctuation PHP's own `Serializable` classes put between them (`ArrayObject`:
/// `x:i:0;a:1:{...};m:a:0:{}`, `SplObjectStorage`, `SplDoublyLinkedList`). Any other
/// payload is a format only its class knows, and stays as it is.
fn rewrite_payload<R: Replacer + ?Sized>(payload: &[u8], r: &R, budget: usize) -> Option<Vec<u8>> {
    if !r.may_match(payload) {
        return None;
    }
    let budget = budget.checked_sub(1)?;
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 4);
    let mut changed = false;
    let mut pos = 0;
    while pos < payload.len() {
        let rest = &payload[pos..];
        match parse_prefix_with_max_depth(rest, budget.min(MAX_DEPTH)) {
            Ok((mut value, len)) => {
                changed |= rewrite_tree(&mut value, r, budget);
                value.write_to(&mut out);
                pos += len;
            }
            Err(e) if e.kind() == ErrorKind::TooDeep => return None,
            Err(_) => {
                let sep = [&b"x:"[..], b"m:", b";", b",", b":"]
                    .into_iter()
                    .find(|sep| rest.starts_with(sep))?;
                out.extend_from_slice(sep);
                pos += sep.len();
            }
        }
    }
    changed.then_some(out)
}

/// PHP's `trim()` set, which `maybe_unserialize()` strips before unserializing.
fn trim_php_whitespace(bytes: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\0' | b'\x0b');
    let start = bytes.iter().position(|b| !ws(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    (&bytes[..start], &bytes[start..end], &bytes[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    /// A blind replacer for these tests: every `old` becomes `newer`.
    fn old_to_newer(text: &[u8]) -> Option<Vec<u8>> {
        let hits = memchr::memmem::find_iter(text, b"old").count();
        (hits > 0).then(|| {
            let mut out = Vec::new();
            let mut last = 0;
            for i in memchr::memmem::find_iter(text, b"old") {
                out.extend_from_slice(&text[last..i]);
                out.extend_from_slice(b"newer");
                last = i + 3;
            }
            out.extend_from_slice(&text[last..]);
            out
        })
    }

    fn rw(input: &[u8]) -> Option<String> {
        rewrite(input, &old_to_newer).map(|out| String::from_utf8(out).unwrap())
    }

    #[test]
    fn strings_are_rewritten_with_their_lengths_recomputed() {
        assert_eq!(
            rw(br#"s:6:"my old";"#).as_deref(),
            Some(r#"s:8:"my newer";"#)
        );
        assert_eq!(
            rw(br#"a:2:{i:0;s:3:"old";i:1;s:1:"x";}"#).as_deref(),
            Some(r#"a:2:{i:0;s:5:"newer";i:1;s:1:"x";}"#)
        );
    }

    #[test]
    fn unchanged_values_give_none() {
        assert_eq!(rw(br#"a:1:{i:0;s:3:"new";}"#), None);
        assert_eq!(rw(b"plain text"), None);
        assert_eq!(rw(b""), None);
    }

    #[test]
    fn plain_text_is_replaced_as_text() {
        assert_eq!(rw(b"an old house").as_deref(), Some("an newer house"));
        // Looks serialized, is not: a blind replace is all that is left.
        assert_eq!(
            rw(br#"s:3:"old";junk"#).as_deref(),
            Some(r#"s:3:"newer";junk"#)
        );
    }

    #[test]
    fn array_keys_are_rewritten_too() {
        assert_eq!(
            rw(br#"a:1:{s:3:"old";i:1;}"#).as_deref(),
            Some(r#"a:1:{s:5:"newer";i:1;}"#)
        );
    }

    #[test]
    fn double_serialized_strings_are_rewritten_inside() {
        let inner = br#"a:1:{s:1:"u";s:3:"old";}"#;
        let outer = format!(
            "a:1:{{i:0;s:{}:\"{}\";}}",
            inner.len(),
            std::str::from_utf8(inner).unwrap()
        );
        let new_inner = r#"a:1:{s:1:"u";s:5:"newer";}"#;
        assert_eq!(
            rw(outer.as_bytes()).unwrap(),
            format!("a:1:{{i:0;s:{}:\"{new_inner}\";}}", new_inner.len())
        );
        // three levels: a string holding a string holding a string
        let l1 = r#"s:3:"old";"#;
        let l2 = format!("s:{}:\"{l1}\";", l1.len());
        let l3 = format!("s:{}:\"{l2}\";", l2.len());
        assert_eq!(
            rw(l3.as_bytes()).as_deref(),
            Some(r#"s:20:"s:12:"s:5:"newer";";";"#)
        );
    }

    #[test]
    fn objects_of_unknown_classes_are_rewritten_but_names_are_not() {
        let input =
            b"O:3:\"old\":2:{s:8:\"\0old\0old\";s:3:\"old\";s:3:\"old\";a:1:{i:0;s:3:\"old\";}}";
        let want =
            "O:3:\"old\":2:{s:8:\"\0old\0old\";s:5:\"newer\";s:3:\"old\";a:1:{i:0;s:5:\"newer\";}}";
        assert_eq!(rw(input).as_deref(), Some(want));
    }

    #[test]
    fn std_class_property_names_are_data_and_are_rewritten() {
        assert_eq!(
            rw(br#"O:8:"stdClass":1:{s:3:"old";s:3:"old";}"#).as_deref(),
            Some(r#"O:8:"stdClass":1:{s:5:"newer";s:5:"newer";}"#)
        );
    }

    #[test]
    fn enums_and_references_are_left_alone() {
        let input = br#"a:3:{i:0;E:8:"old:Case";i:1;R:1;i:2;s:3:"old";}"#;
        assert_eq!(
            rw(input).as_deref(),
            Some(r#"a:3:{i:0;E:8:"old:Case";i:1;R:1;i:2;s:5:"newer";}"#)
        );
    }

    #[test]
    fn custom_payloads_made_of_serialized_values_are_rewritten() {
        // ArrayObject before PHP 7.4
        assert_eq!(
            rw(br#"C:11:"ArrayObject":35:{x:i:0;a:1:{i:0;s:3:"old";};m:a:0:{}}"#).as_deref(),
            Some(r#"C:11:"ArrayObject":37:{x:i:0;a:1:{i:0;s:5:"newer";};m:a:0:{}}"#)
        );
        // a Serializable class that serializes an array
        assert_eq!(
            rw(br#"C:3:"Foo":13:{s:6:"my old";}"#).as_deref(),
            Some(r#"C:3:"Foo":15:{s:8:"my newer";}"#)
        );
        // SplDoublyLinkedList
        assert_eq!(
            rw(br#"C:19:"SplDoublyLinkedList":18:{i:0;:s:3:"old";:N;}"#).as_deref(),
            Some(r#"C:19:"SplDoublyLinkedList":20:{i:0;:s:5:"newer";:N;}"#)
        );
    }

    #[test]
    fn opaque_custom_payloads_are_kept_verbatim() {
        assert_eq!(rw(br#"C:3:"Foo":11:{{"u":"old"}}"#), None);
        assert_eq!(rw(br#"C:3:"Foo":3:{old}"#), None);
    }

    #[test]
    fn whitespace_around_a_serialized_value_is_kept() {
        assert_eq!(
            rw(b"\n s:3:\"old\";\r\n").as_deref(),
            Some("\n s:5:\"newer\";\r\n")
        );
    }

    #[test]
    fn multibyte_text_is_counted_in_bytes() {
        assert_eq!(
            rw("s:10:\"日本 old\";".as_bytes()).as_deref(),
            Some("s:12:\"日本 newer\";")
        );
    }

    fn nested(depth: usize, inner: &[u8]) -> Vec<u8> {
        let mut out = "a:1:{i:0;".repeat(depth).into_bytes();
        out.extend_from_slice(inner);
        out.extend(std::iter::repeat_n(b'}', depth));
        out
    }

    #[test]
    fn every_string_of_a_value_at_the_depth_limit_is_rewritten() {
        let input = nested(MAX_DEPTH, br#"s:3:"old";"#);
        assert!(parse(&input).is_ok());
        assert_eq!(
            rw(&input),
            Some(String::from_utf8(nested(MAX_DEPTH, br#"s:5:"newer";"#)).unwrap())
        );
        // and inside it, a serialization half as deep
        let string = |inner: Vec<u8>| Value::string(inner).to_bytes();
        let input = nested(MAX_DEPTH, &string(nested(MAX_DEPTH / 2, br#"s:3:"old";"#)));
        let want = nested(
            MAX_DEPTH,
            &string(nested(MAX_DEPTH / 2, br#"s:5:"newer";"#)),
        );
        assert_eq!(rewrite(&input, &old_to_newer), Some(want));
    }

    #[test]
    fn arrays_in_strings_in_arrays_do_not_overflow_the_stack() {
        let mut value = br#"s:3:"old";"#.to_vec();
        for _ in 0..2 * MAX_DEPTH {
            let mut outer = br#"a:2:{i:0;s:3:"old";i:1;"#.to_vec();
            outer.extend(Value::string(value).to_bytes());
            outer.push(b'}');
            value = outer;
        }
        let out = rewrite(&value, &old_to_newer).unwrap();
        assert!(parse(&out).is_ok());
        assert!(out.starts_with(br#"a:2:{i:0;s:5:"newer";"#));
    }

    #[test]
    fn too_deep_values_are_left_alone_not_broken() {
        assert_eq!(rw(&nested(MAX_DEPTH + 1, br#"s:3:"old";"#)), None);
    }

    #[test]
    fn rewriting_a_parsed_value_in_place() {
        let mut value = parse(br#"a:1:{i:0;s:3:"old";}"#).unwrap();
        assert!(rewrite_value(&mut value, &old_to_newer));
        assert_eq!(value.to_bytes(), br#"a:1:{i:0;s:5:"newer";}"#);
        assert!(!rewrite_value(&mut value, &old_to_newer));
    }

    #[test]
    fn the_pre_check_skips_parsing() {
        struct Never;
        impl Replacer for Never {
            fn replace(&self, _: &[u8]) -> Option<Vec<u8>> {
                panic!("replace called although may_match said no");
            }
            fn may_match(&self, _: &[u8]) -> bool {
                false
            }
        }
        assert_eq!(rewrite(br#"s:3:"old";"#, &Never), None);
        assert_eq!(rewrite(b"old", &Never), None);
    }
}
