//! Times as eBADGE sends them (D3.1.3 4.2.4): ISO 8601 strings that always carry their offset.
//!
//! Accepted form (the extended ISO 8601 profile of RFC 3339): `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`,
//! with 1 to 9 fraction digits. A time without an offset is refused, as are `-00:00` (RFC 3339's
//! "unknown offset", which ISO 8601 does not allow), lowercase `t`/`z`, a space instead of `T`,
//! leap seconds and the basic (no separators) format. A [`Time`] re-encodes in exactly the form it
//! was read in (`+02:00` stays `+02:00`, `.000Z` stays `.000Z`) and compares as an instant.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::Serializer;
use serde_json::{Value, json};
use time::{
    Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time as ClockTime, UtcOffset,
};

use crate::field::{Field, FieldError, wrong_type};

/// The pattern every time string matches (used in the JSON Schema).
pub const TIME_PATTERN: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$";

/// A point in time with the offset and precision it was written with.
///
/// Two `Time`s are equal when they are the same instant, whatever their offsets:
///
/// ```
/// use ebadge_model::Time;
/// let a: Time = "2013-07-21T10:00:00.000Z".parse().unwrap();
/// let b: Time = "2013-07-21T12:00:00+02:00".parse().unwrap();
/// assert_eq!(a, b);
/// assert_eq!(b.to_string(), "2013-07-21T12:00:00+02:00");
/// assert!("2013-07-21T10:00:00".parse::<Time>().is_err()); // no offset
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Time {
    instant: OffsetDateTime,
    /// Fraction digits to write (0-9).
    digits: u8,
    /// Write a zero offset as `Z` rather than `+00:00`.
    zulu: bool,
}

/// Why a string is not an eBADGE time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TimeError(String);

impl Time {
    /// The current time in UTC, to the millisecond, written with `Z` (the spec's own style).
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Wraps a `time` value; written to the millisecond (the spec's examples use `.000`), with `Z`
    /// for a zero offset.
    pub fn from_datetime(instant: OffsetDateTime) -> Self {
        let ms = instant.nanosecond() / 1_000_000 * 1_000_000;
        let instant = instant
            .replace_nanosecond(ms)
            .expect("a truncated nanosecond is in range");
        Self {
            instant,
            digits: 3,
            zulu: true,
        }
    }

    /// The instant with its offset.
    pub fn datetime(&self) -> OffsetDateTime {
        self.instant
    }

    /// The offset it was written with.
    pub fn offset(&self) -> UtcOffset {
        self.instant.offset()
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn unix_nanos(&self) -> i128 {
        self.instant.unix_timestamp_nanos()
    }

    /// The same instant plus `duration`, in the same style, with as many more fraction digits as
    /// the sum needs to stay exact; `None` past year 9999.
    pub fn checked_add(&self, duration: Duration) -> Option<Self> {
        let instant = self.instant.checked_add(duration)?;
        let digits = self
            .digits
            .max(fraction_digits_needed(instant.nanosecond()));
        (0..=9999).contains(&instant.year()).then_some(Self {
            instant,
            digits,
            ..*self
        })
    }

    /// How long from `earlier` to `self` (negative if `earlier` is later).
    pub fn since(&self, earlier: &Time) -> Duration {
        self.instant - earlier.instant
    }

    /// Parses one time string; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, TimeError> {
        parse(text).map_err(|why| {
            TimeError(format!(
                "{text:?} is not an ISO 8601 time with offset: {why}"
            ))
        })
    }

    /// Rebuilds a time from its parts (used by property tests): the nanoseconds are cut to
    /// `digits` digits, and `zulu` only matters for a zero offset.
    pub fn from_parts(instant: OffsetDateTime, digits: u8, zulu: bool) -> Self {
        let digits = digits.min(9);
        let unit = 10u32.pow(9 - u32::from(digits));
        let nanos = instant.nanosecond() / unit * unit;
        let instant = instant
            .replace_nanosecond(nanos)
            .expect("a truncated nanosecond is in range");
        Self {
            instant,
            digits,
            zulu,
        }
    }
}

/// The fraction digits that write `nanos` without loss (0 for none, 3 for milliseconds).
fn fraction_digits_needed(mut nanos: u32) -> u8 {
    if nanos == 0 {
        return 0;
    }
    let mut digits = 9;
    while nanos.is_multiple_of(10) {
        nanos /= 10;
        digits -= 1;
    }
    digits
}

fn digits_at(bytes: &[u8], at: usize, n: usize) -> Result<u32, String> {
    let part = bytes.get(at..at + n).ok_or("it ends too early")?;
    if !part.iter().all(u8::is_ascii_digit) {
        return Err(format!("expected {n} digits at position {}", at + 1));
    }
    Ok(part.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn expect(bytes: &[u8], at: usize, what: u8, hint: &str) -> Result<(), String> {
    match bytes.get(at) {
        Some(&b) if b == what => Ok(()),
        Some(_) => Err(format!(
            "expected '{}' at position {} {hint}",
            what as char,
            at + 1
        )),
        None => Err(format!("it ends before the '{}' {hint}", what as char)),
    }
}

fn parse(text: &str) -> Result<Time, String> {
    let b = text.as_bytes();
    let year = digits_at(b, 0, 4)?;
    expect(b, 4, b'-', "after the year")?;
    let month = digits_at(b, 5, 2)?;
    expect(b, 7, b'-', "after the month")?;
    let day = digits_at(b, 8, 2)?;
    expect(b, 10, b'T', "between date and time")?;
    let hour = digits_at(b, 11, 2)?;
    expect(b, 13, b':', "after the hour")?;
    let minute = digits_at(b, 14, 2)?;
    expect(b, 16, b':', "after the minutes (seconds are required)")?;
    let second = digits_at(b, 17, 2)?;
    let mut at = 19;
    let (mut nanos, mut digits) = (0u32, 0u8);
    if b.get(at) == Some(&b'.') {
        at += 1;
        while let Some(d) = b.get(at).filter(|d| d.is_ascii_digit()) {
            if digits == 9 {
                return Err("more than 9 fraction digits".into());
            }
            nanos = nanos * 10 + u32::from(d - b'0');
            digits += 1;
            at += 1;
        }
        if digits == 0 {
            return Err("a '.' with no fraction digits after it".into());
        }
        nanos *= 10u32.pow(9 - u32::from(digits));
    }
    let (offset, zulu) = match b.get(at) {
        None => return Err("it has no offset; add Z or +hh:mm (local times are forbidden)".into()),
        Some(b'Z') => {
            at += 1;
            (UtcOffset::UTC, true)
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits_at(b, at + 1, 2)?;
            expect(b, at + 3, b':', "in the offset (write +hh:mm)")?;
            let om = digits_at(b, at + 4, 2)?;
            at += 6;
            if oh > 23 || om > 59 {
                return Err(format!(
                    "offset {}{oh:02}:{om:02} is out of range",
                    sign as char
                ));
            }
            if sign == b'-' && oh == 0 && om == 0 {
                return Err("offset -00:00 (unknown local offset) is not allowed; write Z".into());
            }
            let (h, m) = if sign == b'-' {
                (-(oh as i8), -(om as i8))
            } else {
                (oh as i8, om as i8)
            };
            (
                UtcOffset::from_hms(h, m, 0).map_err(|e| e.to_string())?,
                false,
            )
        }
        Some(&other) => {
            return Err(format!(
                "unexpected {:?} where the offset should start",
                other as char
            ));
        }
    };
    if at != b.len() {
        return Err(format!(
            "unexpected text after the offset: {:?}",
            &text[at..]
        ));
    }
    if second == 60 {
        return Err("leap seconds are not supported".into());
    }
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("month out of range")?;
    let date = Date::from_calendar_date(year as i32, month, day as u8)
        .map_err(|_| "no such day".to_owned())?;
    let clock = ClockTime::from_hms_nano(hour as u8, minute as u8, second as u8, nanos)
        .map_err(|_| "time of day out of range".to_owned())?;
    let instant = PrimitiveDateTime::new(date, clock).assume_offset(offset);
    Ok(Time {
        instant,
        digits,
        zulu,
    })
}

impl FromStr for Time {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, TimeError> {
        Self::parse(s)
    }
}

/// The longest text of a time: `2013-07-21T10:00:00.123456789+00:00`.
const MAX_TEXT: usize = 35;

impl Time {
    /// The RFC 3339 text in a buffer of its own, without `fmt`'s machinery: every message
    /// carries times and an HEH writes one ten times a second. `None` for a year beyond
    /// 0000-9999, which [`Display`](fmt::Display) writes the slow way.
    fn text(&self) -> Option<([u8; MAX_TEXT], usize)> {
        fn two(b: &mut [u8], at: usize, v: u8) {
            b[at] = b'0' + v / 10;
            b[at + 1] = b'0' + v % 10;
        }
        let t = self.instant;
        let year = u16::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        let mut b = [0u8; MAX_TEXT];
        two(&mut b, 0, (year / 100) as u8);
        two(&mut b, 2, (year % 100) as u8);
        b[4] = b'-';
        two(&mut b, 5, u8::from(t.month()));
        b[7] = b'-';
        two(&mut b, 8, t.day());
        b[10] = b'T';
        two(&mut b, 11, t.hour());
        b[13] = b':';
        two(&mut b, 14, t.minute());
        b[16] = b':';
        two(&mut b, 17, t.second());
        let mut n = 19;
        if self.digits > 0 {
            let digits = usize::from(self.digits);
            b[n] = b'.';
            let mut scaled = t.nanosecond() / 10u32.pow(9 - u32::from(self.digits));
            for i in (n + 1..=n + digits).rev() {
                b[i] = b'0' + (scaled % 10) as u8;
                scaled /= 10;
            }
            n += 1 + digits;
        }
        let offset = t.offset();
        if offset.is_utc() && self.zulu {
            b[n] = b'Z';
            n += 1;
        } else {
            b[n] = if offset.is_negative() { b'-' } else { b'+' };
            two(&mut b, n + 1, offset.whole_hours().unsigned_abs());
            b[n + 3] = b':';
            two(&mut b, n + 4, offset.minutes_past_hour().unsigned_abs());
            n += 6;
        }
        Some((b, n))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some((text, len)) => f.write_str(std::str::from_utf8(&text[..len]).expect("ASCII")),
            None => self.write_slowly(f),
        }
    }
}

impl Time {
    /// The same text as [`Time::text`], for any year, through `fmt`.
    fn write_slowly(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.instant;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        if self.digits > 0 {
            let scaled = t.nanosecond() / 10u32.pow(9 - u32::from(self.digits));
            write!(f, ".{:0width$}", scaled, width = usize::from(self.digits))?;
        }
        let offset = t.offset();
        if offset.is_utc() && self.zulu {
            f.write_str("Z")
        } else {
            let sign = if offset.is_negative() { '-' } else { '+' };
            write!(
                f,
                "{sign}{:02}:{:02}",
                offset.whole_hours().abs(),
                offset.minutes_past_hour().abs()
            )
        }
    }
}

impl PartialEq for Time {
    fn eq(&self, other: &Self) -> bool {
        self.instant == other.instant
    }
}

impl Eq for Time {}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Self) -> Ordering {
        self.instant.cmp(&other.instant)
    }
}

impl Hash for Time {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.instant.unix_timestamp_nanos().hash(state);
    }
}

impl From<OffsetDateTime> for Time {
    fn from(value: OffsetDateTime) -> Self {
        Self::from_datetime(value)
    }
}

impl Field for Time {
    fn from_json(value: Value) -> Result<Self, FieldError> {
        match value {
            Value::String(s) => Time::parse(&s).map_err(|e| FieldError::here(e.0)),
            other => Err(wrong_type(
                "a time string like \"2013-07-21T10:00:00.000Z\"",
                &other,
            )),
        }
    }

    fn write<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.text() {
            Some((text, len)) => {
                serializer.serialize_str(std::str::from_utf8(&text[..len]).expect("ASCII"))
            }
            None => serializer.collect_str(self),
        }
    }

    fn schema() -> Value {
        json!({"type": "string", "format": "date-time", "pattern": TIME_PATTERN})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes with [`Time::write_slowly`] only.
    struct Slowly(Time);

    impl fmt::Display for Slowly {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.write_slowly(f)
        }
    }

    proptest::proptest! {
        #[test]
        fn the_fast_text_is_the_text_fmt_writes(
            seconds in -62_135_596_800i64..253_402_200_000, // 0001-01-01 to 9999-12-30
            nanos in 0u32..1_000_000_000,
            offset in -86_399i32..=86_399,
            digits in 0u8..=9,
            zulu: bool,
        ) {
            let offset = time::UtcOffset::from_whole_seconds(offset / 60 * 60).unwrap();
            let instant = OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                + time::Duration::nanoseconds(i64::from(nanos));
            let t = Time::from_parts(instant.to_offset(offset), digits, zulu);
            let (text, len) = t.text().expect("years 0000-9999");
            proptest::prop_assert_eq!(std::str::from_utf8(&text[..len]).unwrap(), Slowly(t).to_string());
        }
    }

    #[test]
    fn keeps_offset_and_precision() {
        for text in [
            "2013-07-21T10:00:00.000Z",
            "2013-07-21T10:00:00Z",
            "2013-07-21T12:00:00+02:00",
            "2013-07-21T12:00:00.123456789-09:30",
            "2013-07-21T10:00:00+00:00",
            "0001-01-01T00:00:00.5+23:59",
        ] {
            assert_eq!(Time::parse(text).unwrap().to_string(), text);
        }
    }

    #[test]
    fn refuses_what_is_not_an_offset_time() {
        for (text, why) in [
            ("2013-07-21T10:00:00", "no offset"),
            ("2013-07-21T10:00:00.000", "no offset"),
            ("2013-07-21T10:00:00-00:00", "-00:00"),
            ("2013-07-21t10:00:00Z", "'T'"),
            ("2013-07-21 10:00:00Z", "'T'"),
            ("2013-07-21T10:00:00z", "unexpected"),
            ("2013-07-21T10:00Z", "seconds are required"),
            ("2013-02-30T10:00:00Z", "no such day"),
            ("2013-07-21T24:00:00Z", "out of range"),
            ("2013-07-21T10:00:60Z", "leap"),
            ("2013-07-21T10:00:00+0200", "+hh:mm"),
            ("2013-07-21T10:00:00+02", "+hh:mm"),
            ("2013-07-21T10:00:00.Z", "no fraction digits"),
            ("2013-07-21T10:00:00.0000000001Z", "more than 9"),
            ("20130721T100000Z", "expected '-'"),
            ("2013-07-21T10:00:00Z ", "after the offset"),
            ("2013-07-21T10:00:00+24:00", "out of range"),
        ] {
            let err = Time::parse(text).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn adding_keeps_the_instant_exact() {
        let t = Time::parse("2013-07-21T10:00:00Z").unwrap();
        assert_eq!(
            t.checked_add(Duration::milliseconds(1))
                .unwrap()
                .to_string(),
            "2013-07-21T10:00:00.001Z"
        );
        let t = Time::parse("2013-07-21T10:00:00.000+02:00").unwrap();
        assert_eq!(
            t.checked_add(Duration::minutes(5)).unwrap().to_string(),
            "2013-07-21T10:05:00.000+02:00"
        );
        assert!(t.checked_add(Duration::days(365 * 8000)).is_none());
    }

    #[test]
    fn compares_instants_not_strings() {
        let a = Time::parse("2013-07-21T23:30:00-01:00").unwrap();
        let b = Time::parse("2013-07-22T00:00:00Z").unwrap();
        assert!(a > b);
        assert_eq!(a.since(&b), Duration::minutes(30));
    }
}
