//! Logs go to stderr and, when the netconf sets `logFile` (or WASMCNI_LOG_FILE is set), to that file too.
//! Never to stdout: stdout carries only the result or the error object. Lines are text for people, or one
//! JSON object per line (`logFormat: json`, WASMCNI_LOG_FORMAT=json) for log collectors.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use log::{Level, LevelFilter, Log, Metadata, Record};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Format::Text),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

struct State {
    file: Option<File>,
    format: Format,
    /// The invocation's command, container id and ifname, once the request is parsed: on every JSON line,
    /// so a collector can follow one pod's attachment across invocations.
    context: Vec<(&'static str, String)>,
}

struct Logger {
    state: Mutex<State>,
}

static LOGGER: Logger = Logger { state: Mutex::new(State { file: None, format: Format::Text, context: Vec::new() }) };
/// Log lines carry the time since start, which makes a debug log a per-step profile of one invocation.
static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        // Dependencies (cranelift logs every compiled function at debug) are kept to warnings.
        let cap = if m.target().starts_with("wasmcni") { log::max_level() } else { LevelFilter::Warn.min(log::max_level()) };
        m.level() <= cap
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let since = START.get().map(|s| s.elapsed().as_secs_f64() * 1e3).unwrap_or_default();
        let mut state = state();
        let line = render(&state, SystemTime::now(), since, r.level(), &r.args().to_string());
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = state.file.as_mut() {
            let _ = f.write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// One line: `2026-12-01T13:26:29.123Z wasmcni[41] +1.234ms info: ADD container=...` or its JSON form.
fn render(state: &State, now: SystemTime, since_ms: f64, level: Level, msg: &str) -> String {
    let time = rfc3339(now);
    let pid = std::process::id();
    match state.format {
        // A message of several lines (a rule batch at debug) keeps the prefix on each of them.
        Format::Text => {
            let prefix = format!("{time} wasmcni[{pid}] +{since_ms:.3}ms {}:", level_name(level));
            let mut out = String::with_capacity(msg.len() + prefix.len() + 2);
            for line in msg.split('\n') {
                out += &prefix;
                if !line.is_empty() {
                    out.push(' ');
                    out += line;
                }
                out.push('\n');
            }
            out
        }
        Format::Json => {
            let mut o = serde_json::Map::new();
            o.insert("time".into(), time.into());
            o.insert("level".into(), level_name(level).into());
            o.insert("pid".into(), pid.into());
            o.insert("elapsedMs".into(), ((since_ms * 1e3).round() / 1e3).into());
            for (k, v) in &state.context {
                o.insert((*k).into(), v.clone().into());
            }
            o.insert("msg".into(), msg.into());
            format!("{}\n", serde_json::Value::Object(o))
        }
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-12-01T13:26:29.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

fn parse_level(s: &str) -> Option<LevelFilter> {
    s.parse().ok()
}

/// Installs the logger; WASMCNI_LOG overrides `default`, WASMCNI_LOG_FORMAT the text format.
pub fn init(default: LevelFilter) {
    START.get_or_init(std::time::Instant::now);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(std::env::var("WASMCNI_LOG").ok().and_then(|s| parse_level(&s)).unwrap_or(default));
    if let Some(format) = std::env::var("WASMCNI_LOG_FORMAT").ok().and_then(|f| Format::parse(&f)) {
        state().format = format;
    }
    if let Ok(path) = std::env::var("WASMCNI_LOG_FILE") {
        open_file(Path::new(&path));
    }
}

fn state() -> std::sync::MutexGuard<'static, State> {
    LOGGER.state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Applies the netconf's `logFile`, `logLevel` and `logFormat` once the config is parsed (the environment's
/// WASMCNI_LOG and WASMCNI_LOG_FORMAT win).
pub fn configure(file: Option<&Path>, level: Option<&str>, format: Option<Format>) {
    if let Some(level) = level.and_then(parse_level) {
        if std::env::var("WASMCNI_LOG").is_err() {
            log::set_max_level(level);
        }
    }
    if let Some(format) = format.filter(|_| std::env::var_os("WASMCNI_LOG_FORMAT").is_none()) {
        state().format = format;
    }
    if let Some(path) = file {
        open_file(path);
    }
}

/// Fields every JSON line carries from now on (the command and the attachment).
pub fn set_context(context: Vec<(&'static str, String)>) {
    state().context = context;
}

fn open_file(path: &Path) {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => state().file = Some(f),
        Err(e) => eprintln!("{} wasmcni: cannot open log file {}: {e}", rfc3339(SystemTime::now()), path.display()),
    }
}

/// `s` with control characters written as escapes (`\u{1b}`, `\n`...), cut to `max` bytes on a character
/// boundary, with a note of how much was cut: text from configs, hooks or tools as one safe line.
pub fn bounded(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max) + 32);
    let mut cut = 0;
    for (i, c) in s.char_indices() {
        if out.len() >= max {
            cut = s.len() - i;
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut > 0 {
        out += &format!("… ({cut} more bytes cut)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_millis(1_796_112_065_123)), "2026-12-01T08:01:05.123Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(UNIX_EPOCH + Duration::from_secs(4_107_542_399)), "2100-02-28T23:59:59.000Z");
    }

    #[test]
    fn text_and_json_lines() {
        let now = UNIX_EPOCH + Duration::from_millis(1_796_112_065_123);
        let mut state = State { file: None, format: Format::Text, context: vec![] };
        let text = render(&state, now, 1.5, Level::Info, "ADD container=c1");
        assert!(text.starts_with("2026-12-01T08:01:05.123Z wasmcni["), "{text}");
        assert!(text.ends_with("] +1.500ms info: ADD container=c1\n"), "{text}");
        let two = render(&state, now, 1.5, Level::Debug, "batch:\n*nat");
        assert_eq!(two.lines().count(), 2, "{two}");
        assert!(two.lines().all(|l| l.starts_with("2026-12-01T08:01:05.123Z wasmcni[")), "{two}");
        state.format = Format::Json;
        state.context = vec![("command", "ADD".into()), ("containerID", "c1".into())];
        let json = render(&state, now, 1.5, Level::Warn, "a \"quoted\"\nline");
        assert_eq!(json.matches('\n').count(), 1, "one line: {json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["time"], "2026-12-01T08:01:05.123Z");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["command"], "ADD");
        assert_eq!(v["containerID"], "c1");
        assert_eq!(v["msg"], "a \"quoted\"\nline");
        assert_eq!(v["elapsedMs"], 1.5);
    }
}
