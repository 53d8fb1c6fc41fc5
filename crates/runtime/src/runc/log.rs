//! runc's logging: errors go to stderr (the message alone) and, with `--log`, to that file as
//! lines in runc's formats, which engines (podman, conmon) read back:
//! `{"level":"error","msg":"...","time":"..."}` or `time="..." level=error msg="..."`.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use super::cli::LogFormat;
use crate::procfs::now_rfc3339;

/// Where log lines go.
#[derive(Debug, Clone)]
pub struct Logger {
    /// The `--log` file.
    pub file: Option<PathBuf>,
    /// Its format.
    pub format: LogFormat,
    /// Whether debug lines are written.
    pub debug: bool,
}

impl Logger {
    /// Logs an error: to stderr and the log file.
    pub fn error(&self, msg: &str) {
        eprintln!("{msg}");
        self.write("error", msg);
    }

    /// Logs a warning to the log file (stderr stays clean for engines that parse it).
    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    /// Logs a debug line (with --debug).
    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }

    fn write(&self, level: &str, msg: &str) {
        let Some(path) = &self.file else { return };
        let line = format_line(self.format, level, msg, &now_rfc3339());
        if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

/// One log line (with its newline) in `format`.
pub fn format_line(format: LogFormat, level: &str, msg: &str, time: &str) -> String {
    match format {
        LogFormat::Json => {
            let v = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{v}\n")
        }
        LogFormat::Text => {
            // logfmt: quote with JSON string escaping.
            let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
            format!("time={} level={level} msg={}\n", q(time), q(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_text_lines() {
        let j = format_line(LogFormat::Json, "error", "a \"b\"", "T");
        let v: serde_json::Value = serde_json::from_str(j.trim_end()).expect("json");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "a \"b\"");
        assert_eq!(v["time"], "T");
        assert_eq!(
            format_line(LogFormat::Text, "error", "x y", "T"),
            "time=\"T\" level=error msg=\"x y\"\n"
        );
    }
}
