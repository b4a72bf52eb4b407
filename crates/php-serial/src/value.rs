//! The value tree. Scalars keep their original text so that writing a parsed value gives
//! back the very bytes it was parsed from.

use std::borrow::Cow;

/// One PHP value, as `serialize()` writes it. Byte strings throughout: PHP strings are bytes.
///
/// Entries of arrays and objects are `(key, value)` pairs in their written order, duplicates
/// included (PHP keeps the last one). A parsed key is always [`Value::Int`] or [`Value::Str`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `N;`
    Null,
    /// `b:0;`, `b:1;`
    Bool(bool),
    /// `i:-5;`: the text between `i:` and `;`, verbatim (PHP also reads `+5` and `007`).
    Int(Cow<'a, [u8]>),
    /// `d:0.1;`: the text between `d:` and `;`, verbatim (`1.0E+25`, `INF`, `-INF`, `NAN`).
    Float(Cow<'a, [u8]>),
    /// `s:N:"...";` where `N` counts bytes.
    Str(Cow<'a, [u8]>),
    /// `a:N:{key;value...}`
    Array(Vec<(Value<'a>, Value<'a>)>),
    /// `O:len:"Class":N:{name;value...}`. Private and protected property names carry their
    /// NUL-delimited prefixes (`\0Class\0prop`, `\0*\0prop`), as PHP writes them.
    Object {
        class: Cow<'a, [u8]>,
        props: Vec<(Value<'a>, Value<'a>)>,
    },
    /// `C:len:"Class":len:{payload}`: a `Serializable` object, whose payload only the class
    /// itself knows how to read.
    Custom {
        class: Cow<'a, [u8]>,
        payload: Cow<'a, [u8]>,
    },
    /// `E:len:"Enum:Case";`
    Enum(Cow<'a, [u8]>),
    /// `r:N;`: the N-th value read so far again (the same object).
    ObjectRef(u64),
    /// `R:N;`: a PHP reference (`&`) to the N-th value read so far.
    Reference(u64),
}

impl<'a> Value<'a> {
    pub fn int(n: i64) -> Value<'static> {
        Value::Int(Cow::Owned(n.to_string().into_bytes()))
    }

    /// A float in a form PHP reads back to the same number (not always the form PHP writes).
    pub fn float(x: f64) -> Value<'static> {
        let text = if x.is_nan() {
            "NAN".to_owned()
        } else if x.is_infinite() {
            if x > 0.0 { "INF" } else { "-INF" }.to_owned()
        } else {
            format!("{x:?}")
        };
        Value::Float(Cow::Owned(text.into_bytes()))
    }

    pub fn string(bytes: impl Into<Cow<'a, [u8]>>) -> Value<'a> {
        Value::Str(bytes.into())
    }

    /// The integer, when it fits an `i64` (PHP itself clamps bigger ones).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(text) => std::str::from_utf8(text).ok()?.parse().ok(),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn into_owned(self) -> Value<'static> {
        fn owned(c: Cow<'_, [u8]>) -> Cow<'static, [u8]> {
            Cow::Owned(c.into_owned())
        }
        fn entries(e: Vec<(Value<'_>, Value<'_>)>) -> Vec<(Value<'static>, Value<'static>)> {
            e.into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        }
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Int(t) => Value::Int(owned(t)),
            Value::Float(t) => Value::Float(owned(t)),
            Value::Str(s) => Value::Str(owned(s)),
            Value::Array(e) => Value::Array(entries(e)),
            Value::Object { class, props } => Value::Object {
                class: owned(class),
                props: entries(props),
            },
            Value::Custom { class, payload } => Value::Custom {
                class: owned(class),
                payload: owned(payload),
            },
            Value::Enum(name) => Value::Enum(owned(name)),
            Value::ObjectRef(n) => Value::ObjectRef(n),
            Value::Reference(n) => Value::Reference(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_in_a_form_php_reads() {
        let text = |x: f64| match Value::float(x) {
            Value::Float(t) => String::from_utf8(t.into_owned()).unwrap(),
            _ => unreachable!(),
        };
        assert_eq!(text(0.1), "0.1");
        assert_eq!(text(1.0), "1.0");
        assert_eq!(text(1e25), "1e25");
        assert_eq!(text(-0.0), "-0.0");
        assert_eq!(text(f64::NAN), "NAN");
        assert_eq!(text(f64::NEG_INFINITY), "-INF");
    }

    #[test]
    fn integers_read_back_when_they_fit() {
        assert_eq!(Value::int(i64::MIN).as_i64(), Some(i64::MIN));
        assert_eq!(Value::Int(Cow::Borrowed(b"+7")).as_i64(), Some(7));
        assert_eq!(
            Value::Int(Cow::Borrowed(b"99999999999999999999")).as_i64(),
            None
        );
        assert_eq!(Value::Null.as_i64(), None);
    }
}
