//! Text a hook hands us (log lines, its stdout and stderr, error messages) is untrusted: it is bounded,
//! split into lines, stripped of control characters and escape sequences, and every line is attributed to
//! the hook and stage, so a hook can neither flood the log or stdout nor forge lines that look like ours.

/// Longest message a hook contributes to an error (the rest is cut, saying how much).
pub const MAX_MESSAGE: usize = 1024;
/// Longest log line from a hook.
pub const MAX_LINE: usize = 512;
/// What one call may log in all (log import, stdout, stderr); past it one line says the rest was dropped.
pub const MAX_LOG_PER_CALL: usize = 16 * 1024;

pub use crate::logging::bounded;

/// The log a hook writes during one call: line by line, escaped, attributed, within budget.
#[derive(Default)]
pub struct LogBudget {
    used: usize,
    dropped: bool,
}

impl LogBudget {
    pub fn write(&mut self, level: log::Level, hook: &str, stage: &str, text: &str) {
        for line in text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()) {
            if self.used >= MAX_LOG_PER_CALL {
                if !self.dropped {
                    self.dropped = true;
                    log::warn!("hook {hook} {stage}: log output past {MAX_LOG_PER_CALL} bytes dropped");
                }
                return;
            }
            let line = bounded(line, MAX_LINE);
            self.used += line.len();
            log::log!(level, "hook {hook} {stage}: {line}");
        }
    }
}

/// What a hook's stderr says about why it trapped: a Python exception's last line (componentize-py follows
/// the traceback with a Rust panic of its own, which says only that Python threw), else a Rust panic's
/// message (not the backtrace hint after it), else the last line it wrote.
pub fn last_words(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().map(str::trim_end).filter(|l| !l.trim().is_empty()).collect();
    let panic = lines.iter().rposition(|l| l.contains("panicked at"));
    // Python: a traceback ends with "ExceptionType: message".
    if let Some(t) = lines.iter().rposition(|l| l.starts_with("Traceback (most recent call last)")) {
        let end = panic.filter(|p| *p > t).unwrap_or(lines.len());
        if let Some(last) = lines[t + 1..end].iter().rev().find(|l| !l.starts_with(' ')) {
            return Some(format!("raised {}", last.trim()));
        }
    }
    // Rust: "thread '<unnamed>' panicked at src/lib.rs:7:5:" then the message (possibly several lines).
    if let Some(i) = panic {
        let message: Vec<&str> = lines[i + 1..].iter().copied().take_while(|l| !l.starts_with("note:")).collect();
        let message = if message.is_empty() { lines[i].splitn(2, "panicked at").nth(1).unwrap_or_default().to_string() } else { message.join(" ") };
        return Some(format!("panicked: {}", message.trim()));
    }
    lines.iter().rev().find(|l| !l.starts_with("note: run with")).map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(bounded("a\u{1b}[31mred\u{7}", 100), "a\\u{1b}[31mred\\u{7}");
        let long = "x".repeat(5000);
        let b = bounded(&long, MAX_MESSAGE);
        assert!(b.starts_with(&"x".repeat(MAX_MESSAGE)) && b.ends_with("(3976 more bytes cut)"), "{b}");
        assert_eq!(bounded("é".repeat(10).as_str(), 5), "ééé… (14 more bytes cut)");
    }

    #[test]
    fn last_words_find_the_panic_message_and_the_exception() {
        let rust = "thread '<unnamed>' panicked at src/lib.rs:29:20:\ntest hook asked to trap\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(last_words(rust).unwrap(), "panicked: test hook asked to trap");
        let py = "Traceback (most recent call last):\n  File \"app.py\", line 3, in pre_add\n    x = cfg['mtu']\nKeyError: 'mtu'\n";
        assert_eq!(last_words(py).unwrap(), "raised KeyError: 'mtu'");
        // What componentize-py writes: the traceback, then its runtime's panic.
        let componentized = format!("{py}thread '<unnamed>' panicked at src/lib.rs:1:1:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1`\n");
        assert_eq!(last_words(&componentized).unwrap(), "raised KeyError: 'mtu'");
        assert_eq!(last_words("something\nnote: run with `RUST_BACKTRACE=1`\n").unwrap(), "something");
        assert_eq!(last_words(""), None);
    }
}
