//! Time: UTC, millisecond precision, RFC 3339 on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time with a time zone, such as 2026-11-25T09:30:00Z")]
pub struct TimestampError;

/// The range the log accepts: years 1970 to 9999.
const MAX_MS: i64 = 253_402_300_799_999;

impl Timestamp {
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        Self((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn from_millis(ms: i64) -> Option<Self> {
        (0..=MAX_MS).contains(&ms).then_some(Self(ms))
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn parse_rfc3339(s: &str) -> Result<Self, TimestampError> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| TimestampError)?;
        Self::from_millis((t.unix_timestamp_nanos() / 1_000_000) as i64).ok_or(TimestampError)
    }

    pub fn to_offset_date_time(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .expect("timestamps are kept in range")
    }

    /// `2026-11-25T09:30:00.123Z`
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().as_str().to_owned()
    }

    /// The RFC 3339 text on the stack: every activity written is hashed and sent with its
    /// times, and the general formatter was a twentieth of a batch's handling.
    pub fn rfc3339(self) -> Rfc3339Text {
        let days = self.0.div_euclid(86_400_000);
        let ms_of_day = self.0.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, ms_of_day / 3_600_000);
        put(14, 2, ms_of_day / 60_000 % 60);
        put(17, 2, ms_of_day / 1_000 % 60);
        put(20, 3, ms_of_day % 1_000);
        Rfc3339Text(b)
    }
}

/// A timestamp's RFC 3339 text, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
#[derive(Clone, Copy)]
pub struct Rfc3339Text([u8; 24]);

impl Rfc3339Text {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("written from ASCII digits and separators")
    }
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.rfc3339().as_str())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339().as_str())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read from the text the parser holds, borrowed or unescaped: nothing is allocated.
        struct Text;
        impl serde::de::Visitor<'_> for Text {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 date-time")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s).map_err(E::custom)
            }
        }
        d.deserialize_str(Text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_into_utc_milliseconds() {
        let t = Timestamp::parse_rfc3339("2026-11-25T10:30:00.1234+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-25T09:30:00.123Z");
    }

    #[test]
    fn refuses_dates_without_zone_or_out_of_range() {
        for bad in [
            "2026-11-25",
            "2026-11-25T09:30:00",
            "yesterday",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    /// The first formatter: the `time` crate's fields, printed.
    fn rfc3339_as_first_written(t: Timestamp) -> String {
        let t = t.to_offset_date_time();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }

    #[test]
    fn the_ends_of_the_range_and_leap_days_are_written_as_ever() {
        for ms in [
            0,
            MAX_MS,
            951_782_400_000,
            4_107_542_399_999,
            1_764_063_000_007,
        ] {
            let t = Timestamp::from_millis(ms).unwrap();
            assert_eq!(t.to_rfc3339(), rfc3339_as_first_written(t));
        }
    }

    proptest::proptest! {
        #[test]
        fn rfc3339_text_is_what_it_always_was(ms in 0..=MAX_MS) {
            let t = Timestamp::from_millis(ms).unwrap();
            proptest::prop_assert_eq!(t.to_rfc3339(), rfc3339_as_first_written(t));
        }

        #[test]
        fn a_timestamp_reads_back_from_json(ms in 0..=MAX_MS) {
            let t = Timestamp::from_millis(ms).unwrap();
            let json = serde_json::to_string(&t).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }
    }

    #[test]
    fn round_trips_through_text() {
        let t = Timestamp::from_millis(1_764_063_000_007).unwrap();
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()).unwrap(), t);
    }
}
