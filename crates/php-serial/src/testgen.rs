//! Generators for the property tests, shared by the unit tests and `tests/php.rs` (which
//! includes this file): it names only the crate's public API, through `crate::`.
#![allow(dead_code)]

use std::borrow::Cow;

use proptest::prelude::*;

use crate::{UrlRewrite, Value};

/// Any value the parser accepts, including texts PHP reads but never writes (`i:+05;`).
pub fn any_value() -> impl Strategy<Value = Value<'static>> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        int_text().prop_map(|t| Value::Int(Cow::Owned(t.into_bytes()))),
        float_text().prop_map(|t| Value::Float(Cow::Owned(t.into_bytes()))),
        any_bytes().prop_map(|b| Value::Str(Cow::Owned(b))),
        any_bytes().prop_map(|b| Value::Enum(Cow::Owned(b))),
        (any_bytes(), any_bytes()).prop_map(|(class, payload)| Value::Custom {
            class: Cow::Owned(class),
            payload: Cow::Owned(payload),
        }),
        any::<u64>().prop_map(Value::ObjectRef),
        any::<u64>().prop_map(Value::Reference),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        let entries = move || prop::collection::vec((any_key(), inner.clone()), 0..6);
        prop_oneof![
            entries().prop_map(Value::Array),
            (any_bytes(), entries()).prop_map(|(class, props)| Value::Object {
                class: Cow::Owned(class),
                props,
            }),
        ]
    })
}

fn any_key() -> impl Strategy<Value = Value<'static>> {
    prop_oneof![
        int_text().prop_map(|t| Value::Int(Cow::Owned(t.into_bytes()))),
        any_bytes().prop_map(|b| Value::Str(Cow::Owned(b))),
        Just(Value::Str(Cow::Borrowed(b"\0*\0protected"))),
        Just(Value::Str(Cow::Borrowed(b"\0Acme_Widget\0private"))),
    ]
}

/// Bytes that stress the format: quotes, semicolons, braces, NUL, multibyte UTF-8, and
/// serialized-looking text.
pub fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..24),
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(
            prop::sample::select(&b"\";:{}s0123456789aOCN\0 "[..]),
            0..24
        ),
        Just("Café Zürich 日本語 😀".as_bytes().to_vec()),
    ]
}

fn int_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<i64>().prop_map(|n| n.to_string()),
        1 => "[+-]?[0-9]{1,25}",
    ]
}

fn float_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<f64>().prop_filter("17 digits", |x| !needs_17_digits(*x)).prop_map(php_float_text),
        1 => r"[+-]?([0-9]{1,4}(\.[0-9]{0,4})?|\.[0-9]{1,4})([eE][+-]?[0-9]{1,3})?",
        1 => prop::sample::select(vec!["INF", "-INF", "NAN"]).prop_map(str::to_owned),
    ]
}

/// Whether a float's shortest text takes all 17 significant digits. There the last digit
/// is not unique (several texts read back to the same float), and PHP's `zend_dtoa` and
/// Rust's formatter may pick different ones: generators leave such floats out.
pub fn needs_17_digits(x: f64) -> bool {
    x.is_finite()
        && format!("{:e}", x.abs())
            .split('e')
            .next()
            .unwrap_or("")
            .replace('.', "")
            .len()
            >= 17
}

/// The text PHP's `serialize()` writes for a float (`serialize_precision = -1`): the
/// shortest digits that read back, in PHP's `%G`-like layout.
pub fn php_float_text(x: f64) -> String {
    if x.is_nan() {
        return "NAN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "INF" } else { "-INF" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0");
    }
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap();
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let decpt = exp.parse::<i32>().unwrap() + 1;
    let body = if !(-3..=17).contains(&decpt) {
        let rest = if digits.len() == 1 { "0" } else { &digits[1..] };
        let e = decpt - 1;
        let esign = if e < 0 { '-' } else { '+' };
        format!("{}.{rest}E{esign}{}", &digits[..1], e.abs())
    } else if decpt <= 0 {
        format!("0.{}{digits}", "0".repeat((-decpt) as usize))
    } else {
        let d = decpt as usize;
        if digits.len() <= d {
            format!("{digits}{}", "0".repeat(d - digits.len()))
        } else {
            format!("{}.{}", &digits[..d], &digits[d..])
        }
    };
    format!("{sign}{body}")
}

/// A site move used by the URL property tests: the pairs given to [`UrlRewrite`], and,
/// computed here independently of `url.rs`, every (from, to) form and some near misses
/// that must stay as they are.
#[derive(Debug, Clone)]
pub struct Site {
    pub pairs: Vec<(&'static str, &'static str)>,
    /// (from, to, kind) for every form of every pair.
    pub forms: Vec<(Vec<u8>, Vec<u8>, FormKind)>,
    pub near_misses: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Plain,
    Json,
    Encoded,
}

pub fn sites() -> Vec<Site> {
    vec![
        Site::new(
            &[(
                "http://127.0.0.1:8081",
                "http://staging.127.0.0.1.nip.io:18082/sub",
            )],
            &["http://127.0.0.1:80812", "http://127.0.0.1:8081.nip.io"],
        ),
        Site::new(
            &[
                ("https://www.example-shop.com/store", "http://s.io"),
                ("http://www.example-shop.com/store", "http://s.io"),
            ],
            &[
                "https://www.example-shop.com/store2",
                "http://www.example-shop.com/stores",
                "https://www.example-shop.com/store-x",
                "https://www.example-shop.com.evil/store",
            ],
        ),
        Site::new(
            &[("http://old.example", "https://old.example/sub")],
            &[
                "http://old.example.org",
                "http://old.example:8080",
                "http://old.example@x",
            ],
        ),
    ]
}

impl Site {
    fn new(pairs: &[(&'static str, &'static str)], near_misses: &[&str]) -> Site {
        let mut forms: Vec<(Vec<u8>, Vec<u8>, FormKind)> = Vec::new();
        for (from, to) in pairs {
            let mut bases = vec![(from.to_string(), to.to_string())];
            if from.starts_with("http") {
                let rel = |u: &str| u[u.find("//").unwrap()..].to_owned();
                bases.push((rel(from), rel(to)));
            }
            for (f, t) in bases {
                let json = |s: &str| s.replace('/', "\\/");
                for form in [
                    (f.clone(), t.clone(), FormKind::Plain),
                    (json(&f), json(&t), FormKind::Json),
                    (url_encode(&f), url_encode(&t), FormKind::Encoded),
                ] {
                    let form = (form.0.into_bytes(), form.1.into_bytes(), form.2);
                    if !forms.iter().any(|f| f.0 == form.0) {
                        forms.push(form);
                    }
                }
            }
        }
        let near_misses = near_misses
            .iter()
            .flat_map(|n| [n.as_bytes().to_vec(), url_encode(n).into_bytes()])
            .collect();
        Site {
            pairs: pairs.to_vec(),
            forms,
            near_misses,
        }
    }

    pub fn rewrite(&self) -> UrlRewrite {
        let (from, to) = self.pairs[0];
        let mut rw = UrlRewrite::new(from, to).unwrap();
        for (from, to) in &self.pairs[1..] {
            rw = rw.with(from, to).unwrap();
        }
        rw
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One piece of a generated string.
#[derive(Debug, Clone)]
pub enum Seg {
    /// Text that cannot form or touch a URL: no `:`, `/`, `\`, `%`.
    Text(String),
    /// The `form`-th form of the site (modulo), followed by the `suffix`-th way to end a URL.
    Url {
        form: usize,
        suffix: usize,
    },
    NearMiss(usize),
}

#[derive(Debug, Clone)]
pub struct Text(pub Vec<Seg>);

impl Text {
    pub fn render(&self, site: &Site, replaced: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, seg) in self.0.iter().enumerate() {
            let last = i + 1 == self.0.len();
            match seg {
                Seg::Text(t) => out.extend_from_slice(t.as_bytes()),
                Seg::Url { form, suffix } => {
                    let (from, to, kind) = &site.forms[form % site.forms.len()];
                    out.extend_from_slice(if replaced { to } else { from });
                    let suffixes: &[&str] = match kind {
                        FormKind::Plain => {
                            &["", "/", "/wp-admin/", "?p=1", "#top", "\"", " ", ". ", ")"]
                        }
                        FormKind::Json => &["", "\\/", "\\/x.jpg", "\"", " "],
                        FormKind::Encoded => &["", "%2F", "%3Fp%3D1", "&x=1", "%22"],
                    };
                    let suffix = suffixes[suffix % suffixes.len()];
                    out.extend_from_slice(
                        if suffix.is_empty() && !last {
                            " "
                        } else {
                            suffix
                        }
                        .as_bytes(),
                    );
                }
                Seg::NearMiss(n) => {
                    out.extend_from_slice(&site.near_misses[n % site.near_misses.len()]);
                    out.push(b' ');
                }
            }
        }
        out
    }
}

pub fn text() -> impl Strategy<Value = Text> {
    let seg = prop_oneof![
        3 => "[a-zA-Z0-9 .,;!?\"'<>={}()é日😀\n-]{0,12}".prop_map(Seg::Text),
        3 => (any::<usize>(), any::<usize>()).prop_map(|(form, suffix)| Seg::Url { form, suffix }),
        1 => any::<usize>().prop_map(Seg::NearMiss),
    ];
    prop::collection::vec(seg, 0..5).prop_map(Text)
}

/// A PHP value whose strings may hold URLs of a [`Site`], shaped so that PHP's
/// `unserialize()` accepts its serialization and `serialize()` writes it back identically.
#[derive(Debug, Clone)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Text),
    /// A string holding the serialization of another value.
    Serialized(Box<Node>),
    Array(Vec<(Key, Node)>),
    /// `stdClass` when `class` is `None`; else a class PHP does not know, with public,
    /// protected and private properties.
    Object {
        class: Option<&'static str>,
        props: Vec<(Text, Node)>,
    },
    /// `C:6:"Legacy":N:{...}`, a `Serializable` whose payload serializes its one property.
    Legacy(Box<Node>),
    /// A case of the `Suit` enum that the PHP side declares, each case once per value:
    /// PHP writes a case met again as `r:N;`.
    Enum,
}

/// How many cases (`C0`, `C1`, ...) the PHP side declares on `Suit`.
pub const ENUM_CASES: usize = 256;

#[derive(Debug, Clone)]
pub enum Key {
    Int(i64),
    Str(Text),
}

pub fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        1 => Just(Node::Null),
        1 => any::<bool>().prop_map(Node::Bool),
        1 => any::<i64>().prop_map(Node::Int),
        1 => any::<f64>().prop_filter("17 digits", |x| !needs_17_digits(*x)).prop_map(Node::Float),
        6 => text().prop_map(Node::Str),
        1 => Just(Node::Enum),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            inner.clone().prop_map(|n| Node::Serialized(Box::new(n))),
            inner.clone().prop_map(|n| Node::Legacy(Box::new(n))),
            prop::collection::vec(
                (
                    prop_oneof![any::<i64>().prop_map(Key::Int), text().prop_map(Key::Str)],
                    inner.clone()
                ),
                0..5
            )
            .prop_map(Node::Array),
            (
                prop::option::of(prop::sample::select(vec![
                    "Acme_Widget",
                    "Vendor\\Plugin\\Settings"
                ])),
                prop::collection::vec((text(), inner), 0..4)
            )
                .prop_map(|(class, props)| Node::Object { class, props }),
        ]
    })
}

impl Node {
    /// The value as stored before (`replaced == false`) or as it must be after the move.
    pub fn value(&self, site: &Site, replaced: bool) -> Value<'static> {
        self.render(site, replaced, &mut 0)
    }

    fn render(&self, site: &Site, replaced: bool, cases: &mut usize) -> Value<'static> {
        let owned = |b: Vec<u8>| Cow::Owned(b);
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(n) => Value::int(*n),
            Node::Float(x) => Value::Float(owned(php_float_text(*x).into_bytes())),
            Node::Str(t) => Value::Str(owned(t.render(site, replaced))),
            Node::Serialized(inner) => {
                Value::Str(owned(inner.render(site, replaced, cases).to_bytes()))
            }
            Node::Array(entries) => {
                let mut keys = Keys::default();
                let mut out = Vec::new();
                for (key, value) in entries {
                    let key = match key {
                        Key::Int(n) if keys.ints.contains(n) => continue,
                        Key::Int(n) => {
                            keys.ints.push(*n);
                            Value::int(*n)
                        }
                        // PHP turns "5" into 5: leave such keys out.
                        Key::Str(t) => match keys.string(t, site, replaced, is_php_int_key) {
                            Some(k) => Value::Str(owned(k)),
                            None => continue,
                        },
                    };
                    out.push((key, value.render(site, replaced, cases)));
                }
                Value::Array(out)
            }
            Node::Object { class, props } => {
                let mut keys = Keys::default();
                let mut out = Vec::new();
                for (i, (name, value)) in props.iter().enumerate() {
                    let name = match class {
                        // Names of a declared class are identifiers, mangled when not public.
                        Some(class) => match i % 3 {
                            0 => format!("p{i}").into_bytes(),
                            1 => format!("\0*\0p{i}").into_bytes(),
                            _ => format!("\0{class}\0p{i}").into_bytes(),
                        },
                        None => match keys.string(name, site, replaced, |_| false) {
                            Some(k) => k,
                            None => continue,
                        },
                    };
                    out.push((Value::Str(owned(name)), value.render(site, replaced, cases)));
                }
                Value::Object {
                    class: Cow::Borrowed(class.unwrap_or("stdClass").as_bytes()),
                    props: out,
                }
            }
            Node::Legacy(inner) => Value::Custom {
                class: Cow::Borrowed(b"Legacy"),
                payload: owned(inner.render(site, replaced, cases).to_bytes()),
            },
            Node::Enum => {
                *cases += 1;
                Value::Enum(Cow::Owned(
                    format!("Suit:C{}", *cases % ENUM_CASES).into_bytes(),
                ))
            }
        }
    }
}

/// Keys seen so far, before and after the move: PHP keeps only one of equal keys, so a
/// key is left out (in both renderings alike) when either of its forms was seen.
#[derive(Default)]
struct Keys {
    ints: Vec<i64>,
    before: Vec<Vec<u8>>,
    after: Vec<Vec<u8>>,
}

impl Keys {
    fn string(
        &mut self,
        text: &Text,
        site: &Site,
        replaced: bool,
        refuse: fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let (before, after) = (text.render(site, false), text.render(site, true));
        if refuse(&before)
            || refuse(&after)
            || self.before.contains(&before)
            || self.after.contains(&after)
        {
            return None;
        }
        self.before.push(before.clone());
        self.after.push(after.clone());
        Some(if replaced { after } else { before })
    }
}

/// Whether PHP stores this string key as an integer (`"5"`, `"-3"`, not `"05"`).
fn is_php_int_key(key: &[u8]) -> bool {
    let digits = key.strip_prefix(b"-").unwrap_or(key);
    !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.parse::<i64>().ok())
            .is_some()
        && key != b"-0"
}
