//! Validation of user input, with errors that name the object and the fix.

use ipnet::Ipv4Net;

/// Bad input: what was wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {hint}")]
pub struct ValidationError {
    pub what: String,
    pub hint: String,
}

impl ValidationError {
    pub fn new(what: impl Into<String>, hint: impl Into<String>) -> Self {
        ValidationError {
            what: what.into(),
            hint: hint.into(),
        }
    }
}

/// Names of networks, containers and nodes: like Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 63.
pub fn validate_name(kind: &str, name: &str) -> Result<(), ValidationError> {
    check_name(kind, name, 63, "[a-zA-Z0-9_.-]", |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
    })
}

/// Lab names, which become parts of namespace and path names: `[a-z0-9-]`, at most 24.
pub fn validate_lab_name(name: &str) -> Result<(), ValidationError> {
    check_name("lab", name, 24, "[a-z0-9-]", |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    })
}

fn check_name(
    kind: &str,
    name: &str,
    max: usize,
    charset: &str,
    allowed: impl Fn(char) -> bool,
) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(allowed);
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            format!("{kind} name {name:?}"),
            format!("use 1-{max} characters from {charset}, starting with a letter or digit"),
        ))
    }
}

/// An IPv4 CIDR such as `10.244.0.0/16`; the address must be the network address.
pub fn parse_cidr(what: &str, s: &str) -> Result<Ipv4Net, ValidationError> {
    let net: Ipv4Net = s.parse().map_err(|_| {
        ValidationError::new(
            format!("{what} {s:?}"),
            "write an IPv4 CIDR such as 10.244.0.0/16",
        )
    })?;
    if net.trunc() != net {
        return Err(ValidationError::new(
            format!("{what} {s:?}"),
            format!("host bits are set; did you mean {}?", net.trunc()),
        ));
    }
    Ok(net)
}

/// A label `key=value`.
pub fn parse_label(s: &str) -> Result<(String, String), ValidationError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(ValidationError::new(
            format!("label {s:?}"),
            "write labels as key=value",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("container", "web1").is_ok());
        assert!(validate_name("container", "b-web1").is_ok());
        assert!(validate_name("container", "").is_err());
        assert!(validate_name("container", "-x").is_err());
        assert!(validate_name("container", "a/b").is_err());
        assert!(validate_name("container", &"a".repeat(64)).is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("subnet", "10.1.0.0/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        let e = parse_cidr("subnet", "10.1.0.0/33").unwrap_err();
        assert!(e.to_string().contains("IPv4 CIDR"), "{e}");
        let e = parse_cidr("subnet", "10.1.2.3/16").unwrap_err();
        assert!(e.to_string().contains("10.1.0.0/16"), "{e}");
        assert!(parse_cidr("subnet", "banana").is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(
            parse_label("app=web").unwrap(),
            ("app".into(), "web".into())
        );
        assert_eq!(parse_label("a=").unwrap(), ("a".into(), "".into()));
        assert!(parse_label("=x").is_err());
        assert!(parse_label("x").is_err());
    }
}
