//! Seconds as users write them ("10", "0.5") and as logs show them
//! ("2.500s"), in integers: no floating-point parsing or formatting code
//! in the binary (about 8 KB of it).

use std::fmt;
use std::time::Duration;

/// "10", "0.5", ".25" or "3." as a duration: ASCII digits and at most one
/// point, at most 9 digits after it. None for anything else ("1e3", "-1",
/// "inf", "").
pub fn parse(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = whole.bytes().chain(fraction.bytes());
    if (whole.is_empty() && fraction.is_empty())
        || fraction.len() > 9
        || !digits.into_iter().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let secs = match whole {
        "" => 0,
        _ => whole.parse::<u64>().ok()?,
    };
    let nanos = match fraction {
        "" => 0,
        _ => fraction.parse::<u32>().ok()? * 10u32.pow(9 - fraction.len() as u32),
    };
    Some(Duration::new(secs, nanos))
}

/// A duration in seconds with milliseconds, as logs show it: "2.500s".
pub struct Secs(pub Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0.as_secs(), self.0.subsec_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_seconds() {
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(parse("10"), ms(10_000));
        assert_eq!(parse("0.5"), ms(500));
        assert_eq!(parse(".25"), ms(250));
        assert_eq!(parse("3."), ms(3_000));
        assert_eq!(parse("0.000000001"), Some(Duration::from_nanos(1)));
        assert_eq!(parse("31536000"), ms(31_536_000_000));
    }

    #[test]
    fn anything_else_is_none() {
        for text in [
            "",
            ".",
            "-1",
            "+1",
            "1e3",
            "inf",
            "nan",
            "1.2.3",
            " 1",
            "0x10",
            "0.0000000001",
            "99999999999999999999",
            "１",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn shown_with_milliseconds() {
        assert_eq!(Secs(Duration::from_millis(2500)).to_string(), "2.500s");
        assert_eq!(Secs(Duration::from_millis(7)).to_string(), "0.007s");
        assert_eq!(Secs(Duration::from_secs(60)).to_string(), "60.000s");
    }
}
