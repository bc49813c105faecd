//! Logs go to stderr and, when the netconf sets `logFile` (or WASMCNI_LOG_FILE is set), to that file too.
//! Never to stdout: stdout carries only the result or the error object.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Logger {
    file: Mutex<Option<File>>,
}

static LOGGER: Logger = Logger { file: Mutex::new(None) };
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
        let line = format!("wasmcni[{}] +{since:.3}ms {}: {}\n", std::process::id(), level_name(r.level()), r.args());
        let _ = std::io::stderr().write_all(line.as_bytes());
        if let Some(f) = self.file.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let _ = f.write_all(format!("{}.{:03} {line}", secs.as_secs(), secs.subsec_millis()).as_bytes());
        }
    }

    fn flush(&self) {}
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

/// Installs the logger; WASMCNI_LOG overrides `default`.
pub fn init(default: LevelFilter) {
    START.get_or_init(std::time::Instant::now);
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(std::env::var("WASMCNI_LOG").ok().and_then(|s| parse_level(&s)).unwrap_or(default));
    if let Ok(path) = std::env::var("WASMCNI_LOG_FILE") {
        open_file(Path::new(&path));
    }
}

/// Applies the netconf's `logFile` / `logLevel` once the config is parsed.
pub fn configure(file: Option<&Path>, level: Option<&str>) {
    if let Some(level) = level.and_then(parse_level) {
        if std::env::var("WASMCNI_LOG").is_err() {
            log::set_max_level(level);
        }
    }
    if let Some(path) = file {
        open_file(path);
    }
}

fn open_file(path: &Path) {
    match OpenOptions::new().create(true).append(true).open(path) {
        Ok(f) => *LOGGER.file.lock().unwrap_or_else(|p| p.into_inner()) = Some(f),
        Err(e) => eprintln!("wasmcni: cannot open log file {}: {e}", path.display()),
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

