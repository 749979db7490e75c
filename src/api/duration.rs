//! Go-style durations (`"2160h"`, `"1h30m"`, `"90s"`), the format cert-manager
//! and Kubernetes use, parsed into [`std::time::Duration`].

use std::time::Duration;

/// Parses a positive Go duration. Units: h, m, s, ms, us, ns; fractions
/// allowed (`1.5h`). `field` names the field in the error.
pub fn parse(field: &str, s: &str) -> Result<Duration, String> {
    let err = |why: &str| {
        format!(
            "{field}: {s:?} is not a valid duration ({why}); use a Go duration such as \"2160h\", \"30m\" or \"1h30m\""
        )
    };
    let t = s.trim();
    if t.is_empty() {
        return Err(err("empty"));
    }
    if t.starts_with('-') {
        return Err(err("negative"));
    }
    let mut total = 0f64;
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| err("missing unit"))?;
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            "d" => return Err(err("unit d is not supported; use h, e.g. 720h for 30 days")),
            _ => return Err(err("unknown unit")),
        };
        total += value * secs;
    }
    if !total.is_finite() || total > 1e12 {
        return Err(err("too large"));
    }
    if total <= 0.0 {
        return Err(err("must be greater than zero"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the Go way, in whole hours/minutes/seconds.
pub fn format(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(
            parse("f", "2160h").unwrap(),
            Duration::from_secs(2160 * 3600)
        );
        assert_eq!(parse("f", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("f", "1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("f", "90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse("f", "500ms").unwrap(), Duration::from_millis(500));
    }

    #[test]
    fn rejects_bad_durations_naming_the_field() {
        for bad in ["", "-1h", "0s", "10", "h", "3x", "30d", "1h-2m"] {
            let e = parse("spec.duration", bad).unwrap_err();
            assert!(e.starts_with("spec.duration:"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["2160h", "1h30m", "45s", "3m"] {
            assert_eq!(format(parse("f", s).unwrap()), s);
        }
    }
}
