//! Rules that involve more than one field, or a range the JSON type does not express: `to` not
//! before `from`, positive resolutions, report arrays of the right length, and the like. Each type
//! states its own in its [`Rules`] impl, next to its definition.

use crate::field::FieldError;
use crate::time::Time;

/// A type's rules beyond the shape of its fields; checked after decoding and by `validate`.
pub trait Rules {
    /// Returns the first rule broken, naming the field it is about.
    fn check_rules(&self) -> Result<(), FieldError> {
        Ok(())
    }

    /// Bends arbitrary field values into a value that keeps the rules (property tests only).
    #[cfg(feature = "proptest")]
    fn repair(&mut self) {}
}

/// `to` must not be before `from` (a zero-length period is allowed).
pub fn not_before(
    from: &Time,
    from_name: &str,
    to: &Time,
    to_name: &str,
) -> Result<(), FieldError> {
    if to < from {
        return Err(FieldError::at(
            to_name,
            format!("{to} is before {from_name} ({from})"),
        ));
    }
    Ok(())
}

/// Like [`not_before`] for two fields that may be null.
pub fn not_before_opt(
    from: Option<&Time>,
    from_name: &str,
    to: Option<&Time>,
    to_name: &str,
) -> Result<(), FieldError> {
    match (from, to) {
        (Some(from), Some(to)) => not_before(from, from_name, to, to_name),
        _ => Ok(()),
    }
}

/// A number that must be greater than zero (resolutions, intervals).
pub fn positive(value: f64, name: &str) -> Result<(), FieldError> {
    if value > 0.0 {
        Ok(())
    } else {
        Err(FieldError::at(
            name,
            format!("must be greater than 0, found {value}"),
        ))
    }
}

/// A number that must not be negative (capacities, bid quantities).
pub fn non_negative(value: f64, name: &str) -> Result<(), FieldError> {
    if value >= 0.0 {
        Ok(())
    } else {
        Err(FieldError::at(
            name,
            format!("must not be negative, found {value}"),
        ))
    }
}

/// The number of values a report over `from..to` at `resolution` seconds carries:
/// (to - from) / resolution, rounded up (D3.1.3 5.2.3).
///
/// ```
/// use ebadge_model::{Time, rules::report_length};
/// let from: Time = "2013-07-21T10:00:00Z".parse().unwrap();
/// let to: Time = "2013-07-21T10:05:00Z".parse().unwrap();
/// assert_eq!(report_length(&from, &to, 60.0), 5);
/// assert_eq!(report_length(&from, &to, 120.0), 3); // 2.5 rounded up
/// ```
pub fn report_length(from: &Time, to: &Time, resolution: f64) -> u64 {
    let nanos = (to.unix_nanos() - from.unix_nanos()).max(0) as f64;
    let periods = nanos / (resolution * 1e9);
    // A period that is a whole multiple of the resolution can come out a hair above it in floating
    // point (0.3 / 0.1); allow for that before rounding up.
    let rounded = periods.round();
    if (periods - rounded).abs() <= 1e-9 * rounded.max(1.0) {
        rounded as u64
    } else {
        periods.ceil() as u64
    }
}

/// No entry may appear twice in a list that is a set (`classes`, signal names of a device).
pub fn no_duplicates<T: PartialEq + std::fmt::Debug>(
    items: &[T],
    name: &str,
) -> Result<(), FieldError> {
    for (i, item) in items.iter().enumerate() {
        if items[..i].contains(item) {
            return Err(FieldError::at(name, format!("lists {item:?} twice")));
        }
    }
    Ok(())
}

/// Helpers of [`Rules::repair`]: bending arbitrary values into ones that keep a rule. Here, with
/// the rules, not with the generators (`arbitrary`), which depend on every message type: the
/// types' repairs use these, and a type module must not reach back to the generators.
#[cfg(feature = "proptest")]
pub mod repair {
    use crate::time::Time;

    /// Moves `to` so that it is not before `from` (swapping keeps both arbitrary).
    pub fn order(from: &mut Time, to: &mut Time) {
        if to < from {
            std::mem::swap(from, to);
        }
    }

    /// Like [`order`] for two times that may be null.
    pub fn order_opt(from: &mut Option<Time>, to: &mut Option<Time>) {
        if let (Some(f), Some(t)) = (from, to) {
            order(f, t);
        }
    }

    /// A value greater than zero made from any finite number.
    pub fn positive(value: f64) -> f64 {
        let abs = value.abs();
        if abs > 0.0 { abs } else { 1.0 }
    }

    /// Drops later repeats, keeping the order.
    pub fn dedupe<T: PartialEq + Clone>(items: &mut Vec<T>) {
        let mut kept: Vec<T> = Vec::with_capacity(items.len());
        for item in items.drain(..) {
            if !kept.contains(&item) {
                kept.push(item);
            }
        }
        *items = kept;
    }
}
