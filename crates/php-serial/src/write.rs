//! The writer: every length and count is computed from the value, never copied.

use crate::Value;

impl Value<'_> {
    /// The serialized bytes. For a parsed value, exactly the bytes it was parsed from.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Value::Null => out.extend_from_slice(b"N;"),
            Value::Bool(b) => out.extend_from_slice(if *b { b"b:1;" } else { b"b:0;" }),
            Value::Int(text) => scalar(out, b'i', text),
            Value::Float(text) => scalar(out, b'd', text),
            Value::Str(bytes) => {
                out.extend_from_slice(b"s:");
                quoted(out, bytes);
                out.push(b';');
            }
            Value::Array(entries) => {
                out.extend_from_slice(b"a:");
                self::entries(out, entries);
            }
            Value::Object { class, props } => {
                out.extend_from_slice(b"O:");
                quoted(out, class);
                out.push(b':');
                entries(out, props);
            }
            Value::Custom { class, payload } => {
                out.extend_from_slice(b"C:");
                quoted(out, class);
                out.push(b':');
                decimal(out, payload.len() as u64);
                out.extend_from_slice(b":{");
                out.extend_from_slice(payload);
                out.push(b'}');
            }
            Value::Enum(name) => {
                out.extend_from_slice(b"E:");
                quoted(out, name);
                out.push(b';');
            }
            Value::ObjectRef(n) => reference(out, b'r', *n),
            Value::Reference(n) => reference(out, b'R', *n),
        }
    }
}

fn scalar(out: &mut Vec<u8>, tag: u8, text: &[u8]) {
    out.extend_from_slice(&[tag, b':']);
    out.extend_from_slice(text);
    out.push(b';');
}

fn quoted(out: &mut Vec<u8>, bytes: &[u8]) {
    decimal(out, bytes.len() as u64);
    out.extend_from_slice(b":\"");
    out.extend_from_slice(bytes);
    out.push(b'"');
}

fn entries(out: &mut Vec<u8>, entries: &[(Value<'_>, Value<'_>)]) {
    decimal(out, entries.len() as u64);
    out.extend_from_slice(b":{");
    for (key, value) in entries {
        key.write_to(out);
        value.write_to(out);
    }
    out.push(b'}');
}

fn reference(out: &mut Vec<u8>, tag: u8, n: u64) {
    out.extend_from_slice(&[tag, b':']);
    decimal(out, n);
    out.push(b';');
}

fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use crate::{Value, parse};

    fn round_trip(input: &[u8]) {
        let value = parse(input).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(input));
        });
        assert_eq!(
            value.to_bytes(),
            input,
            "{}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn wordpress_shaped_values_round_trip_byte_for_byte() {
        let cases: &[&[u8]] = &[
            // widget_text
            br#"a:3:{i:2;a:4:{s:5:"title";s:7:"Contact";s:4:"text";s:55:"<a href="http://127.0.0.1:8081/contact">Write to us</a>";s:6:"filter";b:1;s:6:"visual";b:1;}i:3;a:0:{}s:12:"_multiwidget";i:1;}"#,
            // wp_user_roles, shortened
            br#"a:2:{s:13:"administrator";a:2:{s:4:"name";s:13:"Administrator";s:12:"capabilities";a:3:{s:13:"switch_themes";b:1;s:11:"edit_themes";b:1;s:8:"level_10";b:1;}}s:10:"subscriber";a:2:{s:4:"name";s:10:"Subscriber";s:12:"capabilities";a:2:{s:4:"read";b:1;s:7:"level_0";b:1;}}}"#,
            // theme_mods_twentytwentyone
            br#"a:4:{i:0;b:0;s:18:"nav_menu_locations";a:1:{s:7:"primary";i:2;}s:18:"custom_css_post_id";i:-1;s:12:"header_image";s:51:"http://127.0.0.1:8081/wp-content/uploads/header.jpg";}"#,
            // a transient holding an object of a class this code has never seen
            b"O:12:\"WP_Http_Resp\":3:{s:17:\"\0WP_Http_Resp\0url\";s:21:\"http://127.0.0.1:8081\";s:7:\"\0*\0data\";a:1:{s:1:\"k\";d:0.1;}s:6:\"status\";i:200;}",
            // a double-serialized string
            br#"a:1:{s:4:"meta";s:49:"a:1:{s:3:"url";s:25:"http://127.0.0.1:8081/sub";}";}"#,
            // floats as PHP writes them
            br#"a:6:{i:0;d:0.1;i:1;d:1.0E+25;i:2;d:-0;i:3;d:INF;i:4;d:NAN;i:5;d:-INF;}"#,
            "a:2:{s:5:\"title\";s:20:\"Café Zürich 日本\";s:5:\"emoji\";s:4:\"😀\";}".as_bytes(),
            br#"C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}"#,
            br#"a:3:{i:0;O:8:"stdClass":0:{}i:1;r:2;i:2;R:2;}"#,
            br#"a:2:{i:0;E:11:"Suit:Hearts";i:1;E:11:"Suit:Hearts";}"#,
            b"s:3:\"\0\xff\"\";",
        ];
        for case in cases {
            round_trip(case);
        }
    }

    #[test]
    fn constructed_values_are_written_with_computed_lengths() {
        let value = Value::Array(vec![
            (Value::int(0), Value::string("日本".as_bytes())),
            (
                Value::string(&b"k"[..]),
                Value::Object {
                    class: Cow::Borrowed(b"stdClass"),
                    props: vec![(Value::string(&b"f"[..]), Value::float(0.5))],
                },
            ),
            (Value::int(1), Value::Null),
        ]);
        assert_eq!(
            value.to_bytes(),
            "a:3:{i:0;s:6:\"日本\";s:1:\"k\";O:8:\"stdClass\":1:{s:1:\"f\";d:0.5;}i:1;N;}"
                .as_bytes()
        );
        assert_eq!(
            Value::ObjectRef(u64::MAX).to_bytes(),
            b"r:18446744073709551615;"
        );
        assert_eq!(Value::Reference(0).to_bytes(), b"R:0;");
    }

    proptest::proptest! {
        #[test]
        fn any_value_round_trips(value in crate::testgen::any_value()) {
            let bytes = value.to_bytes();
            let parsed = parse(&bytes).map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}")))?;
            proptest::prop_assert_eq!(&parsed, &value);
            proptest::prop_assert_eq!(parsed.to_bytes(), bytes);
        }
    }
}
