//! PostgreSQL's binary `COPY` format: rows for `COPY ... FROM STDIN (FORMAT binary)`, the
//! fastest way to hand PostgreSQL a group's new rows (BENCHMARKS.md, batch ingest).
//!
//! The binary format: a signature, flags and header extension; then each row as its number of
//! fields (16 bits) and each field as its length in bytes (32 bits, -1 for NULL) and its
//! bytes, in the type's binary form (`bigint`: 8 bytes; `text`: UTF-8; `bytea`: the bytes);
//! then -1 (16 bits) to end the data. All integers are big-endian. Nothing is escaped, so no
//! value can end a field, a row or the data early, and PostgreSQL parses nothing.

/// The binary `COPY` signature, then the flags and the header extension's length (both 0).
const HEADER: &[u8; 19] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The data of one binary `COPY` of many rows, built field by field. Every integer column it
/// fills must be a `bigint`.
pub(crate) struct CopyRows {
    buf: Vec<u8>,
    /// Where the current row's field count goes, once a field of it is written.
    row_at: Option<usize>,
    fields: i16,
}

impl CopyRows {
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER.len()));
        buf.extend_from_slice(HEADER);
        CopyRows {
            buf,
            row_at: None,
            fields: 0,
        }
    }

    fn field(&mut self, len: i32) {
        if self.row_at.is_none() {
            self.row_at = Some(self.buf.len());
            self.buf.extend_from_slice(&[0, 0]);
            self.fields = 0;
        }
        self.fields += 1;
        self.buf.extend_from_slice(&len.to_be_bytes());
    }

    fn bytes(&mut self, value: &[u8]) -> &mut Self {
        let len = i32::try_from(value.len()).expect("a field under 2 GiB");
        self.field(len);
        self.buf.extend_from_slice(value);
        self
    }

    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub fn null(&mut self) -> &mut Self {
        self.field(-1);
        self
    }

    pub fn opt_text(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.text(v),
            None => self.null(),
        }
    }

    /// A `bigint`.
    pub fn int(&mut self, value: i64) -> &mut Self {
        self.field(8);
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub fn opt_int(&mut self, value: Option<i64>) -> &mut Self {
        match value {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    pub fn bytea(&mut self, value: &[u8]) -> &mut Self {
        self.bytes(value)
    }

    pub fn end_row(&mut self) {
        let at = self.row_at.take().expect("a row has fields");
        self.buf[at..at + 2].copy_from_slice(&self.fields.to_be_bytes());
    }

    /// Bytes held so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Hands over the rows written so far (the header with the first) and starts afresh: for
    /// sending a long `COPY` in pieces. Call it between rows.
    pub fn take(&mut self) -> Vec<u8> {
        debug_assert!(self.row_at.is_none(), "a row was left unfinished");
        let capacity = self.buf.capacity();
        std::mem::replace(&mut self.buf, Vec::with_capacity(capacity))
    }

    /// The rest of the data, with the end mark.
    pub fn into_bytes(mut self) -> Vec<u8> {
        debug_assert!(self.row_at.is_none(), "a row was left unfinished");
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Reads binary `COPY` data back: its rows, each field as its bytes or NULL.
    fn read_rows(data: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        assert_eq!(&data[..HEADER.len()], HEADER);
        let mut at = HEADER.len();
        let mut take = |n: usize| {
            let piece = &data[at..at + n];
            at += n;
            piece
        };
        let mut rows = Vec::new();
        loop {
            let count = i16::from_be_bytes(take(2).try_into().unwrap());
            if count == -1 {
                break;
            }
            let row = (0..count)
                .map(|_| {
                    let len = i32::from_be_bytes(take(4).try_into().unwrap());
                    (len >= 0).then(|| take(len as usize).to_vec())
                })
                .collect();
            rows.push(row);
        }
        assert_eq!(at, data.len(), "nothing after the end mark");
        rows
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
        let data = rows.into_bytes();
        // The first row's count and first field, byte for byte.
        assert_eq!(&data[19..25], &[0, 7, 0, 0, 0, 9]);
        assert_eq!(&data[data.len() - 2..], &[0xff, 0xff], "the end mark");
        assert_eq!(
            read_rows(&data),
            vec![
                vec![
                    Some(b"a\tb\nc\\d\re".to_vec()),
                    None,
                    Some((-42i64).to_be_bytes().to_vec()),
                    None,
                    Some(vec![0, 0xab, 0xff]),
                    Some(b"\\N".to_vec()),
                    Some(Vec::new()),
                ],
                vec![Some(b"second".to_vec()), Some(7i64.to_be_bytes().to_vec())],
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
            let back = read_rows(&rows.into_bytes());
            prop_assert_eq!(back.len(), 1, "one row");
            let texts: Vec<Option<String>> = back[0]
                .iter()
                .map(|f| f.clone().map(|b| String::from_utf8(b).unwrap()))
                .collect();
            prop_assert_eq!(texts, fields);
        }
    }
}
