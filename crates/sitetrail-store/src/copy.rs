//! PostgreSQL's `COPY` text format: rows for `COPY ... FROM STDIN`, the fastest way to hand
//! PostgreSQL a group's new rows (BENCHMARKS.md, batch ingest), and the reading of the
//! fields `COPY ... TO STDOUT` sends an export.
//!
//! Fields are separated by tabs and rows end in a newline; NULL is `\N`; in a text field a
//! backslash, newline, carriage return and tab are written as `\\`, `\n`, `\r` and `\t`, so
//! no value can end a field, a row or the data early. A `bytea` is `\x` and its hex digits,
//! with the backslash itself escaped.

use std::fmt::Write as _;

/// The text of one `COPY` of many rows, built field by field.
pub(crate) struct CopyRows {
    buf: String,
    /// No field of the current row written yet.
    at_row_start: bool,
}

impl CopyRows {
    pub fn with_capacity(bytes: usize) -> Self {
        CopyRows {
            buf: String::with_capacity(bytes),
            at_row_start: true,
        }
    }

    fn separate(&mut self) {
        if !self.at_row_start {
            self.buf.push('\t');
        }
        self.at_row_start = false;
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.separate();
        // Most values escape nothing: two vectorized searches tell, and the value is copied
        // whole.
        let bytes = value.as_bytes();
        let escapes = memchr::memchr3(b'\\', b'\n', b'\t', bytes).is_some()
            || memchr::memchr(b'\r', bytes).is_some();
        if !escapes {
            self.buf.push_str(value);
            return self;
        }
        // The four escaped characters are ASCII, so every cut falls between characters.
        let mut from = 0;
        for (at, b) in value.bytes().enumerate() {
            let escaped = match b {
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                _ => continue,
            };
            self.buf.push_str(&value[from..at]);
            self.buf.push_str(escaped);
            from = at + 1;
        }
        self.buf.push_str(&value[from..]);
        self
    }

    pub fn null(&mut self) -> &mut Self {
        self.separate();
        self.buf.push_str("\\N");
        self
    }

    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.separate();
        write!(self.buf, "{value}").expect("writing to a String never fails");
        self
    }

    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub fn bytea(&mut self, value: &[u8]) -> &mut Self {
        self.separate();
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.buf.push_str("\\\\x");
        for b in value {
            self.buf.push(char::from(HEX[usize::from(b >> 4)]));
            self.buf.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        self
    }

    pub fn end_row(&mut self) {
        self.buf.push('\n');
        self.at_row_start = true;
    }

    /// Bytes of whole rows (and of the row begun, if any) held so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Hands over the rows written so far and starts afresh: for sending a long `COPY` in
    /// pieces. Call it between rows.
    pub fn take(&mut self) -> Vec<u8> {
        debug_assert!(self.at_row_start, "a row was left unfinished");
        let capacity = self.buf.capacity();
        std::mem::replace(&mut self.buf, String::with_capacity(capacity)).into_bytes()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        debug_assert!(self.at_row_start, "a row was left unfinished");
        self.buf.into_bytes()
    }
}

/// A text field as `COPY ... TO STDOUT` writes it, its escapes undone, appended to `out`:
/// the escapes above and `\b`, `\f`, `\v`, which PostgreSQL also writes; a backslash
/// before any other character stands for that character.
pub(crate) fn read_text(field: &[u8], out: &mut Vec<u8>) {
    let mut rest = field;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        let Some(&escaped) = rest.get(at + 1) else {
            // A lone backslash at the end: PostgreSQL never writes one; keep it.
            out.push(b'\\');
            return;
        };
        out.push(match escaped {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'v' => 0x0b,
            other => other,
        });
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read_row(line: &str) -> Vec<Option<String>> {
        line.split('\t')
            .map(|field| {
                if field == "\\N" {
                    return None;
                }
                let mut out = Vec::new();
                read_text(field.as_bytes(), &mut out);
                Some(String::from_utf8(out).unwrap())
            })
            .collect()
    }

    #[test]
    fn the_escapes_postgresql_writes_are_undone() {
        let mut out = Vec::new();
        read_text(br"a\\b\nc\rd\te\bf\fg\vh\.i", &mut out);
        assert_eq!(out, b"a\\b\nc\rd\te\x08f\x0cg\x0bh.i");
        out.clear();
        read_text(b"plain", &mut out);
        assert_eq!(out, b"plain");
        out.clear();
        read_text(b"ends in \\", &mut out);
        assert_eq!(out, b"ends in \\", "a lone backslash is kept");
    }

    #[test]
    fn fields_rows_nulls_and_bytes_are_written_as_postgresql_reads_them() {
        let mut rows = CopyRows::with_capacity(0);
        rows.text("a\tb\nc\\d\re")
            .opt_text(None)
            .int(-42)
            .opt_int(None)
            .bytea(&[0, 0xab, 0xff])
            .text("\\N")
            .text("");
        rows.end_row();
        rows.text("second").int(7);
        rows.end_row();
        let text = String::from_utf8(rows.into_bytes()).unwrap();
        assert_eq!(
            text,
            "a\\tb\\nc\\\\d\\re\t\\N\t-42\t\\N\t\\\\x00abff\t\\\\N\t\nsecond\t7\n"
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            read_row(lines[0]),
            vec![
                Some("a\tb\nc\\d\re".to_owned()),
                None,
                Some("-42".to_owned()),
                None,
                Some("\\x00abff".to_owned()),
                Some("\\N".to_owned()),
                Some(String::new()),
            ]
        );
    }

    #[test]
    fn rows_taken_in_pieces_join_up_to_the_whole() {
        let mut whole = CopyRows::with_capacity(0);
        let mut pieces = CopyRows::with_capacity(0);
        let mut sent = Vec::new();
        for i in 0..10 {
            for rows in [&mut whole, &mut pieces] {
                rows.int(i).text("a\tb");
                rows.end_row();
            }
            if i % 3 == 0 {
                sent.extend(pieces.take());
                assert_eq!(pieces.len(), 0);
            }
        }
        sent.extend(pieces.into_bytes());
        assert_eq!(sent, whole.into_bytes());
    }

    proptest! {
        #[test]
        fn any_text_comes_back_whole(fields in prop::collection::vec(
            prop::option::of("(?s).{0,40}"), 1..6)
        ) {
            let mut rows = CopyRows::with_capacity(0);
            for f in &fields {
                rows.opt_text(f.as_deref());
            }
            rows.end_row();
            let text = String::from_utf8(rows.into_bytes()).unwrap();
            prop_assert_eq!(text.matches('\n').count(), 1, "one row, one newline");
            prop_assert_eq!(read_row(text.strip_suffix('\n').unwrap()), fields);
        }
    }
}
