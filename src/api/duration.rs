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

/// Parses an optional duration field.
pub fn optional(field: &str, s: Option<&str>) -> Result<Option<Duration>, String> {
    s.map(|s| parse(field, s)).transpose()
}

/// A validity and how long before its end to act on it: `duration` +
/// `renewBefore` of Certificates and CAs, `validity` + `refreshBefore` of
/// CRLs. The one place these pairs are parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// The whole validity.
    pub total: Duration,
    /// Act this long before its end (default a third of `total`).
    pub before_end: Duration,
}

/// Parses `(total field, value)` and `(before-end field, value)`, with
/// `default_total` when the first is unset. `before_end` must be shorter
/// than `total`.
pub fn lifetime(
    total: (&str, Option<&str>),
    before_end: (&str, Option<&str>),
    default_total: Duration,
) -> Result<Lifetime, String> {
    let t = optional(total.0, total.1)?.unwrap_or(default_total);
    let b = optional(before_end.0, before_end.1)?.unwrap_or(t / 3);
    if b >= t {
        return Err(format!(
            "{} ({}) must be shorter than {} ({}); the default is a third of it",
            before_end.0,
            format(b),
            total.0,
            format(t)
        ));
    }
    Ok(Lifetime {
        total: t,
        before_end: b,
    })
}

/// When to act on something valid `[not_before, not_after)` that should be
/// replaced `before_end` ahead of its end. A `before_end` not shorter than
/// the actual lifetime (an issuer clamped it) falls back to a third.
pub fn act_at(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
    before_end: Duration,
) -> time::OffsetDateTime {
    let lifetime = not_after - not_before;
    let b = time::Duration::try_from(before_end).unwrap_or(lifetime / 3);
    let b = if b >= lifetime { lifetime / 3 } else { b };
    not_after - b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_default_to_a_third_and_refuse_an_inverted_pair() {
        let l = lifetime(("d", None), ("r", None), Duration::from_secs(300)).unwrap();
        assert_eq!(l.before_end, Duration::from_secs(100));
        let e = lifetime(
            ("spec.duration", Some("1h")),
            ("spec.renewBefore", Some("2h")),
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(
            e.contains("spec.renewBefore") && e.contains("spec.duration"),
            "{e}"
        );
    }

    #[test]
    fn act_at_falls_back_to_a_third_of_a_clamped_lifetime() {
        let t = |s| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert_eq!(act_at(t(0), t(1000), Duration::from_secs(100)), t(900));
        assert_eq!(act_at(t(0), t(300), Duration::from_secs(500)), t(200));
    }

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
