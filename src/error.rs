//! The one error type for configuration and startup, and the exit code each
//! kind maps to. Failures of a single connection are not here: they are
//! `io::Error`s that the relay logs and never propagates.

use std::fmt;
use std::io;

/// Everything that stops ambassador before or while it starts serving.
#[derive(Debug)]
pub enum Error {
    /// A command-line option that getopts rejected or whose value is bad.
    Usage(String),
    /// A RULE argument that does not parse; `index` counts from 1.
    BadRule {
        index: usize,
        text: String,
        reason: String,
    },
    /// A `<NAME>_PORT_<P>_TCP` or `_UDP` variable whose name or value is not usable.
    BadVariable {
        name: String,
        value: String,
        reason: String,
    },
    /// Two rules that cannot both run: the same listen address with other
    /// targets, or listen addresses that overlap (0.0.0.0:P and 127.0.0.1:P).
    /// `first` and `second` name each rule and its source.
    Conflict {
        first: String,
        second: String,
        reason: &'static str,
    },
    /// Neither arguments nor the environment gave a rule.
    NoRules,
    /// A listen address that could not be bound (in use, no permission...).
    /// `listen` is the address as a rule shows it (`0.0.0.0:53/udp`).
    Bind { listen: String, source: io::Error },
    /// The signal mask could not be set up.
    Signals(io::Error),
    /// A thread to accept or receive on could not be started.
    Thread(io::Error),
}

impl Error {
    /// 2 for what the user must fix in the configuration, 1 for what the
    /// system refused at run time (see SPEC, exit codes).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Bind { .. } | Error::Signals(_) | Error::Thread(_) => 1,
            _ => 2,
        }
    }
}

/// Input as it is shown in a message: at most `max` characters, so that a
/// 100 KB argument does not come back as a 100 KB message.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}... ({} bytes)", &text[..at], text.len()),
        None => text.to_string(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}\nTry 'ambassador --help' for more information."),
            Error::BadRule {
                index,
                text,
                reason,
            } => write!(
                f,
                "argument {index} {:?}: {}",
                clip(text, 80),
                clip(reason, 300)
            ),
            Error::BadVariable {
                name,
                value,
                reason,
            } => write!(
                f,
                "variable {}={:?}: {}",
                clip(name, 80),
                clip(value, 80),
                clip(reason, 300)
            ),
            Error::Conflict {
                first,
                second,
                reason,
            } => write!(f, "conflicting rules: {first} and {second} {reason}"),
            Error::NoRules => write!(
                f,
                "no rules: give a RULE argument such as 6379:redis:6379, \
                 or set a variable such as REDIS_PORT_6379_TCP=tcp://redis:6379 \
                 (see 'ambassador --help')"
            ),
            Error::Bind { listen, source } => write!(f, "cannot listen on {listen}: {source}"),
            Error::Signals(source) => write!(f, "cannot block SIGTERM and SIGINT: {source}"),
            Error::Thread(source) => write!(f, "cannot start a thread: {source}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_input_is_clipped_in_messages() {
        let err = Error::BadRule {
            index: 1,
            text: "1".repeat(100_000),
            reason: format!("listen port {:?}: expected a number", "1".repeat(100_000)),
        };
        let msg = err.to_string();
        assert!(msg.len() < 600, "{} bytes", msg.len());
        assert!(msg.contains("(100000 bytes)"), "{msg}");
    }

    #[test]
    fn clip_keeps_short_text_and_respects_char_boundaries() {
        assert_eq!(clip("abc", 80), "abc");
        assert_eq!(clip("ééé", 2), "éé... (6 bytes)");
    }
}
