//! Human-friendly units used in the config file: durations ("250ms", "10s", "10m", "1h") and
//! byte sizes ("512KiB", "64MiB", "1GiB", or a plain integer number of bytes).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Why a duration or size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error(
        "invalid duration {input:?}: {reason} (examples: \"250ms\", \"10s\", \"10m\", \"1h\")"
    )]
    Duration { input: String, reason: String },
    #[error(
        "invalid size {input:?}: {reason} (examples: \"512KiB\", \"64MiB\", \"1GiB\", 1048576)"
    )]
    Size { input: String, reason: String },
}

/// Parses a duration such as "250ms", "10s", "1m 30s", "1h". A bare "0" is zero.
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(UnitError::Duration {
            input: s.to_string(),
            reason: "empty".into(),
        });
    }
    humantime::parse_duration(t).map_err(|e| UnitError::Duration {
        input: s.to_string(),
        reason: e.to_string(),
    })
}

/// Formats a duration the way the config file writes it ("250ms", "10s", "1h 30m").
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string()
}

const UNITS: &[(&str, u64)] = &[
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

/// Parses a byte size: "64MiB", "1GiB", "512KiB", "100B", "1048576" (binary units are powers of
/// 1024; KB/MB/GB are powers of 1000). Fractions are allowed with a unit: "1.5GiB".
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let err = |reason: &str| UnitError::Size {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: String = num.chars().filter(|&c| c != '_').collect();
    if num.is_empty() {
        return Err(err("expected a number"));
    }
    let unit = unit.trim().to_ascii_lowercase();
    let mult = if unit.is_empty() {
        1
    } else {
        UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, m)| *m)
            .ok_or_else(|| err("unknown unit; use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)"))?
    };
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| err("too large"));
    }
    let f: f64 = num.parse().map_err(|_| err("expected a number"))?;
    let bytes = f * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err("too large"));
    }
    if bytes.fract() != 0.0 {
        return Err(err("not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

/// Formats a byte count with the largest binary unit that divides it ("64MiB", "1500B").
pub fn format_size(bytes: u64) -> String {
    for (name, mult) in [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ] {
        if bytes >= mult && bytes.is_multiple_of(mult) {
            return format!("{}{}", bytes / mult, name);
        }
    }
    format!("{bytes}B")
}

/// `#[serde(with = "units::duration")]` for `Duration` fields.
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration string such as \"250ms\", \"10s\", \"10m\" or \"1h\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            parse_duration(v).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            if v == 0 {
                Ok(Duration::ZERO)
            } else {
                Err(E::custom(format!(
                    "a duration needs a unit: write \"{v}s\" or \"{v}ms\", not {v}"
                )))
            }
        }
    }
}

/// `#[serde(default, with = "units::option_duration")]` for `Option<Duration>` fields.
pub mod option_duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        duration::deserialize(d).map(Some)
    }
}

/// `#[serde(with = "units::size")]` for byte-size fields stored as `u64`.
pub mod size {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size such as \"64MiB\" or a number of bytes")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations() {
        for bad in ["", "  ", "10", "ten seconds", "10 parsecs", "-1s", "1.5.2s"] {
            let e = parse_duration(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid duration"), "{e}");
        }
    }

    #[test]
    fn duration_round_trip() {
        for s in ["250ms", "10s", "10m", "1h", "1h 30m"] {
            let d = parse_duration(s).expect(s);
            assert_eq!(format_duration(d), s);
        }
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("512 kib"), Ok(512 << 10));
        assert_eq!(parse_size("100B"), Ok(100));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1_000"), Ok(1000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "MiB",
            "64 furlongs",
            "1.5",
            "0.3B",
            "-1MiB",
            "99999999999TiB",
            "6.4.1MiB",
        ] {
            let e = parse_size(bad).expect_err(bad);
            assert!(e.to_string().contains("invalid size"), "{e}");
        }
    }

    #[test]
    fn size_format() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1500), "1500B");
        assert_eq!(format_size(0), "0B");
    }
}
