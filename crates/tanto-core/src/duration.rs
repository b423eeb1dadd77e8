//! The one duration grammar (`--keep-alive`, `TANTO_KEEP_ALIVE`, idle timers):
//! a bare number of seconds, or number+unit terms summed (`1h30m`, `1.5m`,
//! `250ms`, `5 m`). Units: `ms`, `s`/`sec`/`secs`, `m`/`min`/`mins`,
//! `h`/`hr`/`hrs`, `d`; case-insensitive. `0` is a zero duration (callers read
//! it as "never"/"immediately"); negative values are refused.

use std::time::Duration;

/// A string that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration (e.g. 300s, 5m, 1h30m, 0)")]
pub struct DurationError(pub String);

fn unit_seconds(unit: &str) -> Option<f64> {
    Some(match unit {
        "ms" => 0.001,
        "s" | "sec" | "secs" => 1.0,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    })
}

/// Parse a duration; see the module doc for the grammar.
pub fn parse_duration(raw: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(raw.trim().to_string());
    let s: String = raw
        .trim()
        .to_ascii_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if s.is_empty() {
        return Err(err());
    }
    if let Ok(v) = s.parse::<f64>() {
        return (v >= 0.0 && v.is_finite())
            .then(|| Duration::from_secs_f64(v))
            .ok_or_else(err);
    }
    let mut total = 0f64;
    let mut rest = s.as_str();
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let v: f64 = num.parse().map_err(|_| err())?;
        total += v * unit_seconds(unit).ok_or_else(err)?;
        rest = tail;
    }
    if !total.is_finite() {
        return Err(err());
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> f64 {
        parse_duration(s).unwrap().as_secs_f64()
    }

    #[test]
    fn both_old_grammars() {
        // The CLI's (`--keep-alive`): bare seconds, one unit, fractions, spaces, ms.
        assert_eq!(secs("300"), 300.0);
        assert_eq!(secs("300s"), 300.0);
        assert_eq!(secs("5m"), 300.0);
        assert_eq!(secs("1.5m"), 90.0);
        assert_eq!(secs("1h"), 3600.0);
        assert_eq!(secs(" 5 m "), 300.0);
        assert_eq!(secs("250ms"), 0.25);
        assert_eq!(secs("0"), 0.0);
        assert_eq!(secs("0s"), 0.0);
        // The server's: compound terms, long unit names, days, any case.
        assert_eq!(secs("1h30m"), 5400.0);
        assert_eq!(secs("1.5h"), 5400.0);
        assert_eq!(secs("2mins"), 120.0);
        assert_eq!(secs("1d"), 86400.0);
        assert_eq!(secs("5M"), 300.0);
        assert_eq!(secs("1H 30M"), 5400.0);
    }

    #[test]
    fn refuses_malformed_and_negative() {
        for bad in [
            "", "abc", "-1", "-5m", "5x", "m", "1h30", "1..5s", "inf", "NaN", "s5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        let e = parse_duration(" 5x ").unwrap_err();
        assert_eq!(
            e.to_string(),
            "'5x' is not a duration (e.g. 300s, 5m, 1h30m, 0)"
        );
    }
}
