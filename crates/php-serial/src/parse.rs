//! The reader: PHP's `unserialize()` grammar, over bytes, without recursion past a limit.

use std::borrow::Cow;
use std::fmt;

use crate::Value;

/// How deeply arrays and objects may nest before [`parse`] gives up with
/// [`ErrorKind::TooDeep`]. PHP allows 4096; WordPress data stays within a dozen levels. The
/// parser itself does not recurse, but writing, dropping and rewriting a value do: this
/// keeps them within a fraction of a 2 MiB thread stack, even in debug builds.
pub const MAX_DEPTH: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that the grammar does not allow here.
    Syntax,
    /// An array or object key that is neither `i:` nor `s:`.
    InvalidKey,
    /// Nesting deeper than the limit.
    TooDeep,
    /// A complete value followed by more bytes: not one serialized value.
    TrailingBytes,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Where in the input the problem was found.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::UnexpectedEnd => "unexpected end of input",
            ErrorKind::Syntax => "not PHP-serialized syntax",
            ErrorKind::InvalidKey => "array key is neither an integer nor a string",
            ErrorKind::TooDeep => "nested too deeply",
            ErrorKind::TrailingBytes => "bytes after the end of the value",
        };
        write!(f, "{what} at byte {}", self.offset)
    }
}

impl std::error::Error for Error {}

/// Parses exactly one serialized value: trailing bytes are an error.
pub fn parse(input: &[u8]) -> Result<Value<'_>, Error> {
    parse_with_max_depth(input, MAX_DEPTH)
}

pub fn parse_with_max_depth(input: &[u8], max_depth: usize) -> Result<Value<'_>, Error> {
    let (value, end) = parse_prefix_with_max_depth(input, max_depth)?;
    if end != input.len() {
        return Err(Error {
            kind: ErrorKind::TrailingBytes,
            offset: end,
        });
    }
    Ok(value)
}

/// Parses the value at the start of `input` and returns it with the length it took.
pub fn parse_prefix(input: &[u8]) -> Result<(Value<'_>, usize), Error> {
    parse_prefix_with_max_depth(input, MAX_DEPTH)
}

pub fn parse_prefix_with_max_depth(
    input: &[u8],
    max_depth: usize,
) -> Result<(Value<'_>, usize), Error> {
    let mut parser = Parser {
        input,
        pos: 0,
        max_depth,
    };
    let value = parser.value()?;
    Ok((value, parser.pos))
}

/// Whether `bytes` is exactly one serialized value.
pub fn is_serialized(bytes: &[u8]) -> bool {
    parse(bytes).is_ok()
}

struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    max_depth: usize,
}

/// An array or object being read: the parser keeps its own stack of these instead of
/// recursing, so that no nesting can overflow the thread's stack.
struct Open<'a> {
    class: Option<Cow<'a, [u8]>>,
    entries: Vec<(Value<'a>, Value<'a>)>,
    left: usize,
    key: Option<Value<'a>>,
}

impl<'a> Parser<'a> {
    fn value(&mut self) -> Result<Value<'a>, Error> {
        let mut open: Vec<Open<'a>> = Vec::new();
        loop {
            let value = match open.last_mut() {
                Some(top) if top.key.is_none() && top.left == 0 => {
                    self.expect(b"}")?;
                    let Some(done) = open.pop() else {
                        unreachable!()
                    };
                    match done.class {
                        None => Value::Array(done.entries),
                        Some(class) => Value::Object {
                            class,
                            props: done.entries,
                        },
                    }
                }
                Some(top) if top.key.is_none() => {
                    top.key = Some(match self.input.get(self.pos) {
                        Some(b'i' | b's') => self.scalar()?,
                        Some(_) => return Err(self.error(ErrorKind::InvalidKey)),
                        None => return Err(self.error(ErrorKind::UnexpectedEnd)),
                    });
                    continue;
                }
                _ => match self.input.get(self.pos) {
                    Some(b'a' | b'O') => {
                        let container = self.open()?;
                        if open.len() == self.max_depth {
                            return Err(self.error(ErrorKind::TooDeep));
                        }
                        open.push(container);
                        continue;
                    }
                    _ => self.scalar()?,
                },
            };
            match open.last_mut() {
                None => return Ok(value),
                Some(top) => {
                    let Some(key) = top.key.take() else {
                        unreachable!()
                    };
                    top.entries.push((key, value));
                    top.left -= 1;
                }
            }
        }
    }

    /// `a:N:{` or `O:len:"Class":N:{`.
    fn open(&mut self) -> Result<Open<'a>, Error> {
        let class = if self.input[self.pos] == b'O' {
            self.expect(b"O:")?;
            let class = self.quoted()?;
            self.expect(b":")?;
            Some(Cow::Borrowed(class))
        } else {
            self.expect(b"a:")?;
            None
        };
        let count = self.length()?;
        self.expect(b":{")?;
        // The smallest pair (`i:0;N;`) takes 6 bytes: a huge count cannot reserve memory.
        let room = (self.input.len() - self.pos) / 6;
        Ok(Open {
            class,
            entries: Vec::with_capacity(count.min(room)),
            left: count,
            key: None,
        })
    }

    /// Any value but an array or object.
    fn scalar(&mut self) -> Result<Value<'a>, Error> {
        let Some(&tag) = self.input.get(self.pos) else {
            return Err(self.error(ErrorKind::UnexpectedEnd));
        };
        if tag == b'N' {
            self.expect(b"N;")?;
            return Ok(Value::Null);
        }
        if !b"bidsCErR".contains(&tag) {
            return Err(self.error(ErrorKind::Syntax));
        }
        self.pos += 1;
        self.expect(b":")?;
        match tag {
            b'b' => {
                let b = match self.byte()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return Err(self.error_before(ErrorKind::Syntax)),
                };
                self.expect(b";")?;
                Ok(Value::Bool(b))
            }
            b'i' => Ok(Value::Int(Cow::Borrowed(self.number(is_int_text)?))),
            b'd' => Ok(Value::Float(Cow::Borrowed(self.number(is_float_text)?))),
            b's' => {
                let bytes = self.quoted()?;
                self.expect(b";")?;
                Ok(Value::Str(Cow::Borrowed(bytes)))
            }
            b'C' => {
                let class = self.quoted()?;
                self.expect(b":")?;
                let len = self.length()?;
                self.expect(b":{")?;
                let payload = self.take(len)?;
                self.expect(b"}")?;
                Ok(Value::Custom {
                    class: Cow::Borrowed(class),
                    payload: Cow::Borrowed(payload),
                })
            }
            b'E' => {
                let name = self.quoted()?;
                self.expect(b";")?;
                Ok(Value::Enum(Cow::Borrowed(name)))
            }
            _ => {
                let start = self.pos;
                let digits = self.digits()?;
                let n = parse_canonical(digits).ok_or(Error {
                    kind: ErrorKind::Syntax,
                    offset: start,
                })?;
                self.expect(b";")?;
                Ok(if tag == b'r' {
                    Value::ObjectRef(n)
                } else {
                    Value::Reference(n)
                })
            }
        }
    }

    /// `len:"bytes"`, the length counting bytes.
    fn quoted(&mut self) -> Result<&'a [u8], Error> {
        let len = self.length()?;
        self.expect(b":\"")?;
        let bytes = self.take(len)?;
        self.expect(b"\"")?;
        Ok(bytes)
    }

    /// A length or count, written as PHP writes it: no sign, no leading zero.
    fn length(&mut self) -> Result<usize, Error> {
        let start = self.pos;
        let digits = self.digits()?;
        parse_canonical(digits)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or(Error {
                kind: ErrorKind::Syntax,
                offset: start,
            })
    }

    fn digits(&mut self) -> Result<&'a [u8], Error> {
        let rest = &self.input[self.pos..];
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err(self.error(if rest.is_empty() {
                ErrorKind::UnexpectedEnd
            } else {
                ErrorKind::Syntax
            }));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    /// The text up to the next `;`, checked by `valid`, and the `;`.
    fn number(&mut self, valid: fn(&[u8]) -> bool) -> Result<&'a [u8], Error> {
        let rest = &self.input[self.pos..];
        let Some(end) = memchr::memchr(b';', rest) else {
            return Err(Error {
                kind: ErrorKind::UnexpectedEnd,
                offset: self.input.len(),
            });
        };
        let text = &rest[..end];
        if !valid(text) {
            return Err(self.error(ErrorKind::Syntax));
        }
        self.pos += end + 1;
        Ok(text)
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        if self.input.len() - self.pos < len {
            return Err(Error {
                kind: ErrorKind::UnexpectedEnd,
                offset: self.input.len(),
            });
        }
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Error> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(self.error(ErrorKind::UnexpectedEnd))?;
        self.pos += 1;
        Ok(b)
    }

    fn expect(&mut self, literal: &[u8]) -> Result<(), Error> {
        for &want in literal {
            match self.input.get(self.pos) {
                Some(&b) if b == want => self.pos += 1,
                Some(_) => return Err(self.error(ErrorKind::Syntax)),
                None => return Err(self.error(ErrorKind::UnexpectedEnd)),
            }
        }
        Ok(())
    }

    fn error(&self, kind: ErrorKind) -> Error {
        Error {
            kind,
            offset: self.pos,
        }
    }

    fn error_before(&self, kind: ErrorKind) -> Error {
        Error {
            kind,
            offset: self.pos - 1,
        }
    }
}

/// `0` or digits without a leading zero, as a `u64`.
fn parse_canonical(digits: &[u8]) -> Option<u64> {
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn skip_sign(text: &[u8]) -> &[u8] {
    match text.first() {
        Some(b'+' | b'-') => &text[1..],
        _ => text,
    }
}

/// PHP's `iv`: `[+-]?[0-9]+`.
fn is_int_text(text: &[u8]) -> bool {
    let digits = skip_sign(text);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// PHP's `d:` grammar: `NAN`, `INF`, `-INF`, or `(iv | nv) ([eE] iv)?` where `nv` is a
/// decimal with a point and at least one digit.
fn is_float_text(text: &[u8]) -> bool {
    if matches!(text, b"NAN" | b"INF" | b"-INF") {
        return true;
    }
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mantissa = skip_sign(mantissa);
    let digits = mantissa.iter().filter(|b| b.is_ascii_digit()).count();
    let points = mantissa.iter().filter(|&&b| b == b'.').count();
    digits > 0
        && digits + points == mantissa.len()
        && points <= 1
        && exponent.is_none_or(is_int_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &[u8]) -> ErrorKind {
        parse(input).unwrap_err().kind()
    }

    #[test]
    fn scalars_parse_with_their_text_kept() {
        assert_eq!(parse(b"N;"), Ok(Value::Null));
        assert_eq!(parse(b"b:1;"), Ok(Value::Bool(true)));
        assert_eq!(parse(b"b:0;"), Ok(Value::Bool(false)));
        assert_eq!(parse(b"i:-5;"), Ok(Value::Int(Cow::Borrowed(b"-5"))));
        assert_eq!(parse(b"i:+05;"), Ok(Value::Int(Cow::Borrowed(b"+05"))));
        for float in [
            "0.1", "-0", "1.0E+25", "1.0E-10", "INF", "-INF", "NAN", ".5", "5.", "+1e5", "7",
        ] {
            let input = format!("d:{float};");
            assert_eq!(
                parse(input.as_bytes()),
                Ok(Value::Float(Cow::Borrowed(float.as_bytes()))),
                "{input}"
            );
        }
        assert_eq!(parse(b"s:0:\"\";"), Ok(Value::Str(Cow::Borrowed(b""))));
        assert_eq!(
            parse(b"E:11:\"Suit:Hearts\";"),
            Ok(Value::Enum(Cow::Borrowed(b"Suit:Hearts")))
        );
        assert_eq!(parse(b"r:1;"), Ok(Value::ObjectRef(1)));
        assert_eq!(parse(b"R:12;"), Ok(Value::Reference(12)));
    }

    #[test]
    fn string_lengths_count_bytes_not_characters() {
        let input = "s:9:\"café 日\";";
        assert_eq!(
            parse(input.as_bytes()),
            Ok(Value::Str(Cow::Borrowed("café 日".as_bytes())))
        );
        assert_eq!(kind("s:6:\"café 日\";".as_bytes()), ErrorKind::Syntax);
    }

    #[test]
    fn strings_may_hold_any_bytes_including_quotes_and_nul() {
        let input = b"s:6:\"a\";\0\"}\";";
        assert_eq!(
            parse(input),
            Ok(Value::Str(Cow::Borrowed(&b"a\";\0\"}"[..])))
        );
    }

    #[test]
    fn objects_keep_class_and_mangled_property_names() {
        let input = b"O:4:\"Acme\":2:{s:9:\"\0Acme\0url\";s:1:\"x\";s:4:\"\0*\0n\";i:1;}";
        let Ok(Value::Object { class, props }) = parse(input) else {
            panic!("not an object");
        };
        assert_eq!(&*class, b"Acme");
        assert_eq!(props[0].0, Value::Str(Cow::Borrowed(b"\0Acme\0url")));
        assert_eq!(props[1].0, Value::Str(Cow::Borrowed(b"\0*\0n")));
    }

    #[test]
    fn custom_payload_is_kept_opaque() {
        let input = b"C:11:\"ArrayObject\":21:{x:i:0;a:0:{};m:a:0:{}}";
        assert_eq!(
            parse(input),
            Ok(Value::Custom {
                class: Cow::Borrowed(b"ArrayObject"),
                payload: Cow::Borrowed(b"x:i:0;a:0:{};m:a:0:{}"),
            })
        );
    }

    #[test]
    fn trailing_bytes_mean_not_serialized() {
        assert_eq!(kind(b"i:5;junk"), ErrorKind::TrailingBytes);
        assert_eq!(kind(b"s:1:\"a\";s:1:\"b\";"), ErrorKind::TrailingBytes);
        assert_eq!(kind(b"N; "), ErrorKind::TrailingBytes);
        assert!(!is_serialized(b"a:0:{}\n"));
        assert!(is_serialized(b"a:0:{}"));
    }

    #[test]
    fn malformed_input_is_refused() {
        for input in [
            &b""[..],
            b"N",
            b"x:1;",
            b"b:2;",
            b"i:;",
            b"i:5",
            b"i:1.5;",
            b"d:.;",
            b"d:+INF;",
            b"d:1e;",
            b"d:1.2.3;",
            b"s:5:\"abc\";",
            b"s:2:\"abc\";",
            b"s:3:\"abc\"",
            b"s:-1:\"\";",
            b"s:01:\"a\";",
            b"a:1:{}",
            b"a:1:{i:0;}",
            b"a:0:{",
            b"a:1:{N;i:1;}",
            b"a:1:{d:1.5;i:1;}",
            b"a:99999999999999999999999:{}",
            b"O:8:\"stdClass\":1:{}",
            b"C:1:\"C\":5:{ab}",
            b"r:01;",
            b"R:;",
            b"S:3:\"\\61bc\";",
        ] {
            assert!(parse(input).is_err(), "{}", String::from_utf8_lossy(input));
        }
        assert_eq!(kind(b"a:1:{a:0:{}i:1;}"), ErrorKind::InvalidKey);
        assert_eq!(kind(b"s:10:\"abc\";"), ErrorKind::UnexpectedEnd);
    }

    #[test]
    fn huge_counts_do_not_reserve_memory() {
        assert_eq!(
            kind(b"a:18446744073709551615:{i:0;i:0;}"),
            ErrorKind::InvalidKey
        );
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_not_a_stack_overflow() {
        let deep = |n: usize| {
            let mut s = "a:1:{i:0;".repeat(n).into_bytes();
            s.extend_from_slice(b"N;");
            s.extend(std::iter::repeat_n(b'}', n));
            s
        };
        assert!(parse(&deep(MAX_DEPTH)).is_ok());
        assert_eq!(kind(&deep(MAX_DEPTH + 1)), ErrorKind::TooDeep);
        assert_eq!(kind(&deep(100_000)), ErrorKind::TooDeep);
        assert_eq!(
            parse_with_max_depth(&deep(3), 2).unwrap_err().kind(),
            ErrorKind::TooDeep
        );
    }

    #[test]
    fn errors_say_where() {
        let err = parse(b"a:1:{i:0;x}").unwrap_err();
        assert_eq!(err.offset(), 9);
        assert_eq!(err.to_string(), "not PHP-serialized syntax at byte 9");
    }

    #[test]
    fn a_prefix_parse_reports_its_length() {
        let (value, len) = parse_prefix(b"i:1;a:0:{}").unwrap();
        assert_eq!(value, Value::Int(Cow::Borrowed(b"1")));
        assert_eq!(len, 4);
    }

    proptest::proptest! {
        #[test]
        fn no_input_makes_the_parser_panic(input in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Ok(value) = parse(&input) {
                proptest::prop_assert_eq!(value.to_bytes(), input);
            }
        }

        #[test]
        fn damaged_serializations_parse_losslessly_or_not_at_all(
            value in crate::testgen::any_value(),
            edits in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>(), 0..3u8), 1..4),
        ) {
            let mut bytes = value.to_bytes();
            for (at, byte, op) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => { bytes.remove(at); }
                    _ if at < bytes.len() => bytes[at] = byte,
                    _ => {}
                }
            }
            if let Ok(value) = parse(&bytes) {
                proptest::prop_assert_eq!(value.to_bytes(), bytes);
            }
        }
    }
}
