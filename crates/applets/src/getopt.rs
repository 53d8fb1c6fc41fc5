//! A small busybox-style option parser: short options that may be combined (`-qO-`), options
//! with an argument either attached (`-c3`) or separate (`-c 3`), a few long options mapped to
//! short ones (`--timeout=5`), operands interleaved with options, and `--` to end options.

/// The result of parsing: options in the order given, and the operands.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opts {
    /// Each option character with its argument (for options that take one).
    pub opts: Vec<(char, Option<String>)>,
    /// The remaining non-option arguments, in order.
    pub operands: Vec<String>,
}

impl Opts {
    /// Whether the flag `c` was given at least once.
    pub fn has(&self, c: char) -> bool {
        self.opts.iter().any(|(o, _)| *o == c)
    }

    /// The argument of the last occurrence of option `c`.
    pub fn value(&self, c: char) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(o, _)| *o == c)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Parses `args` (without argv[0]) against `spec`, where each option character is followed by
/// `:` when it takes an argument (getopt syntax). `long` maps long option names to short ones.
/// Errors are messages ready to print after `applet: `.
pub fn parse(args: &[String], spec: &str, long: &[(&str, char)]) -> Result<Opts, String> {
    let mut out = Opts::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            out.operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(name) = arg.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            let c = long
                .iter()
                .find(|(l, _)| *l == name)
                .map(|(_, c)| *c)
                .ok_or_else(|| format!("unrecognized option '--{name}'"))?;
            if takes_arg(spec, c) == Some(true) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("option '--{name}' requires an argument"))?;
                        i += 1;
                        v
                    }
                };
                out.opts.push((c, Some(v)));
            } else {
                out.opts.push((c, None));
            }
            continue;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            out.operands.push(arg.clone());
            continue;
        }
        let chars: Vec<char> = arg[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            let c = chars[j];
            j += 1;
            match takes_arg(spec, c) {
                None => return Err(format!("invalid option -- '{c}'")),
                Some(false) => out.opts.push((c, None)),
                Some(true) => {
                    let rest: String = chars[j..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        let v = args
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("option requires an argument -- '{c}'"))?;
                        i += 1;
                        v
                    };
                    out.opts.push((c, Some(v)));
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// `Some(true)` if `c` takes an argument, `Some(false)` if it is a flag, `None` if unknown.
fn takes_arg(spec: &str, c: char) -> Option<bool> {
    let mut it = spec.chars().peekable();
    while let Some(s) = it.next() {
        let arg = it.peek() == Some(&':');
        if arg {
            it.next();
        }
        if s == c {
            return Some(arg);
        }
    }
    None
}

/// Parses a duration in seconds that may have a fraction (`0.2`, `5`).
pub fn seconds(s: &str) -> Option<std::time::Duration> {
    let v: f64 = s.trim().parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(std::time::Duration::from_secs_f64(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn combined_and_attached() {
        let o = parse(&s(&["-qO-", "http://x/"]), "qO:T:", &[]).unwrap();
        assert!(o.has('q'));
        assert_eq!(o.value('O'), Some("-"));
        assert_eq!(o.operands, s(&["http://x/"]));
    }

    #[test]
    fn separate_and_interleaved() {
        let o = parse(&s(&["10.0.0.2", "-c", "3", "-W1"]), "c:W:qi:", &[]).unwrap();
        assert_eq!(o.value('c'), Some("3"));
        assert_eq!(o.value('W'), Some("1"));
        assert_eq!(o.operands, s(&["10.0.0.2"]));
    }

    #[test]
    fn long_and_errors() {
        let o = parse(
            &s(&["--timeout=5", "--quiet", "u"]),
            "qT:",
            &[("timeout", 'T'), ("quiet", 'q')],
        )
        .unwrap();
        assert_eq!(o.value('T'), Some("5"));
        assert!(o.has('q'));
        assert!(parse(&s(&["-x"]), "q", &[]).is_err());
        assert!(parse(&s(&["-c"]), "c:", &[]).is_err());
        let o = parse(&s(&["--", "-c"]), "c:", &[]).unwrap();
        assert_eq!(o.operands, s(&["-c"]));
    }

    #[test]
    fn parse_seconds() {
        assert_eq!(seconds("0.2"), Some(std::time::Duration::from_millis(200)));
        assert_eq!(seconds("x"), None);
        assert_eq!(seconds("-1"), None);
    }
}
