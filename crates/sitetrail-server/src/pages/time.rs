//! Times as pages show them: UTC text that the browser's script rewrites into the viewer's
//! time zone, durations, and the day bounds of the date filters.

use sitetrail_core::Timestamp;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

/// A `<time>` element's parts.
#[derive(Debug, Clone)]
pub struct TimeCell {
    /// RFC 3339 in UTC, for `datetime=`.
    pub iso: String,
    /// `2026-11-25 09:30 UTC`: the text without script.
    pub text: String,
    /// `2026-11-25 09:30:00 UTC`: the absolute time on hover.
    pub title: String,
}

impl TimeCell {
    pub fn of(t: Timestamp) -> Self {
        let d = t.to_offset_date_time();
        let day = format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day());
        TimeCell {
            iso: t.to_rfc3339(),
            text: format!("{day} {:02}:{:02} UTC", d.hour(), d.minute()),
            title: format!(
                "{day} {:02}:{:02}:{:02} UTC",
                d.hour(),
                d.minute(),
                d.second()
            ),
        }
    }
}

/// `took 2 min 5 s`. The script's `duration()` writes the same words.
pub fn duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0 => "under 1 s".to_owned(),
        1..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The most a time zone is away from UTC, in minutes.
const MAX_OFFSET_MINUTES: i32 = 14 * 60;

/// A viewer's offset from UTC in minutes (east positive), as the filter form's `tz` field
/// carries it; UTC when absent or out of range.
pub fn offset(tz: Option<&str>) -> UtcOffset {
    tz.and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|m| m.abs() <= MAX_OFFSET_MINUTES)
        .and_then(|m| UtcOffset::from_whole_seconds(m * 60).ok())
        .unwrap_or(UtcOffset::UTC)
}

/// `UTC` or `UTC+01:00`.
pub fn offset_label(o: UtcOffset) -> String {
    if o == UtcOffset::UTC {
        return "UTC".into();
    }
    let (h, m, _) = o.as_hms();
    let sign = if o.is_negative() { '-' } else { '+' };
    format!("UTC{sign}{:02}:{:02}", h.abs(), m.abs())
}

fn parse_day(s: &str) -> Option<Date> {
    let mut parts = s.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let month = Month::try_from(m.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(y.parse().ok()?, month, d.parse().ok()?).ok()
}

/// Which end of a day range a date input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The start of the day.
    From,
    /// The start of the next day: `to` is exclusive, so the day is included.
    To,
}

/// A date filter as the API takes it (RFC 3339): a day `2026-11-25` becomes its bound in
/// the given offset; anything else is passed on unchanged for the API to judge.
pub fn api_bound(value: &str, bound: Bound, offset: UtcOffset) -> String {
    let Some(day) = parse_day(value.trim()) else {
        return value.to_owned();
    };
    let day = match bound {
        Bound::From => Some(day),
        Bound::To => day.next_day(),
    };
    day.and_then(|d| {
        let at = PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(offset);
        Timestamp::from_millis(at.unix_timestamp() * 1000)
    })
    .map_or_else(|| value.to_owned(), Timestamp::to_rfc3339)
}

/// What a date input shows for a filter value: the day itself, or the day of an RFC 3339
/// bound in the given offset.
pub fn input_day(value: &str, bound: Bound, offset: UtcOffset) -> String {
    let value = value.trim();
    if parse_day(value).is_some() {
        return value.to_owned();
    }
    let Ok(t) = Timestamp::parse_rfc3339(value) else {
        return String::new();
    };
    let ms = match bound {
        Bound::From => t.millis(),
        Bound::To => t.millis() - 1,
    };
    Timestamp::from_millis(ms)
        .map(|t| {
            let d = t.to_offset_date_time().to_offset(offset).date();
            format!("{:04}-{:02}-{:02}", d.year(), d.month() as u8, d.day())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_range_covers_whole_days_in_the_viewers_offset() {
        let utc = offset(None);
        assert_eq!(
            api_bound("2026-11-25", Bound::From, utc),
            "2026-11-25T00:00:00.000Z"
        );
        assert_eq!(
            api_bound("2026-11-25", Bound::To, utc),
            "2026-11-26T00:00:00.000Z"
        );
        let berlin = offset(Some("60"));
        assert_eq!(
            api_bound("2026-11-25", Bound::From, berlin),
            "2026-11-24T23:00:00.000Z"
        );
        assert_eq!(offset_label(berlin), "UTC+01:00");
        assert_eq!(offset_label(offset(Some("-570"))), "UTC-09:30");
        assert_eq!(offset(Some("9999")), UtcOffset::UTC);
    }

    #[test]
    fn other_values_reach_the_api_unchanged() {
        let utc = offset(None);
        assert_eq!(
            api_bound("2026-11-25T10:00:00Z", Bound::To, utc),
            "2026-11-25T10:00:00Z"
        );
        assert_eq!(api_bound("yesterday", Bound::From, utc), "yesterday");
        assert_eq!(api_bound("2026-02-30", Bound::From, utc), "2026-02-30");
    }

    #[test]
    fn date_inputs_show_the_day_of_a_bound() {
        let utc = offset(None);
        assert_eq!(
            input_day("2026-11-26T00:00:00.000Z", Bound::To, utc),
            "2026-11-25"
        );
        assert_eq!(
            input_day("2026-11-26T00:00:00.000Z", Bound::From, utc),
            "2026-11-26"
        );
        assert_eq!(input_day("nonsense", Bound::From, utc), "");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration(400), "under 1 s");
        assert_eq!(duration(45_000), "45 s");
        assert_eq!(duration(125_000), "2 min 5 s");
        assert_eq!(duration(3_780_000), "1 h 3 min");
    }

    #[test]
    fn times_show_utc_without_script() {
        let t = Timestamp::parse_rfc3339("2026-11-25T09:30:07.250Z").unwrap();
        let cell = TimeCell::of(t);
        assert_eq!(cell.iso, "2026-11-25T09:30:07.250Z");
        assert_eq!(cell.text, "2026-11-25 09:30 UTC");
        assert_eq!(cell.title, "2026-11-25 09:30:07 UTC");
    }
}
