//! Structured logs: one line per event, `key=value` pairs (logfmt), to stderr, where kubectl logs finds
//! them. Values with spaces or quotes are quoted, so every line splits the same way.

use std::fmt::Write as _;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

pub fn line(level: Level, event: &str, fields: &[(&str, String)]) -> String {
    let mut s = format!("ts={} level={} event={event}", rfc3339(SystemTime::now()), level.as_str());
    for (k, v) in fields {
        let _ = write!(s, " {k}={}", quote(v));
    }
    s
}

pub fn event(level: Level, event: &str, fields: &[(&str, String)]) {
    eprintln!("{}", line(level, event, fields));
}

fn quote(v: &str) -> String {
    if !v.is_empty() && !v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control()) {
        return v.to_string();
    }
    let mut q = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// UTC with milliseconds, e.g. `2026-12-01T13:26:29.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `info!("route.added", node = n, dst = d)`: an event name and key = value pairs (anything Display).
#[macro_export]
macro_rules! info {
    ($event:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::event($crate::log::Level::Info, $event, &[$((stringify!($k), ($v).to_string())),*])
    };
}

#[macro_export]
macro_rules! warn {
    ($event:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::event($crate::log::Level::Warn, $event, &[$((stringify!($k), ($v).to_string())),*])
    };
}

#[macro_export]
macro_rules! error {
    ($event:expr $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::log::event($crate::log::Level::Error, $event, &[$((stringify!($k), ($v).to_string())),*])
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn lines_are_logfmt() {
        let l = line(Level::Warn, "node.skipped", &[("node", "n2".into()), ("reason", "not on-link: 10.0.0.1 \"x\"".into())]);
        assert!(l.contains(" level=warn event=node.skipped node=n2 reason=\"not on-link: 10.0.0.1 \\\"x\\\"\""), "{l}");
        assert_eq!(rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(1_709_251_200_123)), "2024-03-01T00:00:00.123Z");
    }
}
