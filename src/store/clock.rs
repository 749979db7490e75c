//! Time helpers: unix timestamps, RFC 3339 rendering, and the CLI's
//! duration syntax (`30m`, `24h`, `7d`, `90d`, `1h30m`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the unix epoch, now.
pub fn now_unix() -> i64 {
    now_unix_ms() / 1000
}

/// Milliseconds since the unix epoch, now.
pub fn now_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Render unix seconds as RFC 3339 UTC (`2026-11-27T09:30:00Z`).
pub fn format_unix(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{secs}"),
    }
}

/// Render unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn format_unix_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let base = format_unix(secs);
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{frac:03}Z"),
        None => base,
    }
}

/// Render a signed number of seconds compactly: `6d`, `5h`, `-2d`.
pub fn format_relative(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let a = secs.unsigned_abs();
    let body = if a >= 86_400 {
        format!("{}d", a / 86_400)
    } else if a >= 3_600 {
        format!("{}h", a / 3_600)
    } else if a >= 60 {
        format!("{}m", a / 60)
    } else {
        format!("{a}s")
    };
    format!("{sign}{body}")
}

/// What a duration must look like, for error messages.
pub const DURATION_FORMAT: &str = "a number followed by a unit s, m, h, d or w, e.g. 30m, 24h, 7d, 90d (parts may be combined: 1h30m)";

/// A duration string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: expected {DURATION_FORMAT}")]
pub struct DurationError {
    /// The rejected input.
    pub input: String,
}

/// Parse `30m`, `24h`, `7d`, `90d`, `2w`, `45s`, or combinations like `1d12h`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_owned(),
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err());
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return Err(err()),
        };
        let n: u64 = digits.parse().map_err(|_| err())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(err)?;
    }
    if !digits.is_empty() {
        // A bare number has no unit: ambiguous, refuse.
        return Err(err());
    }
    Ok(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        for bad in ["", "7", "d", "7x", "-1d", "1.5h", "7 d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn times_render_as_rfc3339() {
        assert_eq!(format_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(format_unix_ms(1_500), "1970-01-01T00:00:01.500Z");
        assert_eq!(format_relative(7 * 86_400 + 5), "7d");
        assert_eq!(format_relative(-7_200), "-2h");
    }
}
