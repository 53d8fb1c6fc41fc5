//! Ethernet MAC address text form.

use std::fmt::Write;

/// Formats a MAC address as lower-case `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    let mut s = String::with_capacity(17);
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses `aa:bb:cc:dd:ee:ff` (or with `-` separators, any case).
/// Returns `None` for anything else.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    let sep = if s.contains('-') { '-' } else { ':' };
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in s.split(sep) {
        if n == 6
            || part.is_empty()
            || part.len() > 2
            || !part.bytes().all(|c| c.is_ascii_hexdigit())
        {
            return None;
        }
        out[n] = u8::from_str_radix(part, 16).ok()?;
        n += 1;
    }
    (n == 6).then_some(out)
}

/// Returns the MAC carried in a netlink attribute when it is 6 bytes long.
pub(crate) fn mac_from_slice(b: &[u8]) -> Option<[u8; 6]> {
    <[u8; 6]>::try_from(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let m = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
        assert_eq!(format_mac(&m), "ee:ee:ee:ee:ee:ee");
        assert_eq!(parse_mac("ee:ee:ee:ee:ee:ee"), Some(m));
        let m2 = [0x02, 0x00, 0x0a, 0xf4, 0x00, 0x01];
        assert_eq!(format_mac(&m2), "02:00:0a:f4:00:01");
        assert_eq!(parse_mac(&format_mac(&m2)), Some(m2));
    }

    #[test]
    fn parse_accepts_case_dashes_and_short_octets() {
        assert_eq!(
            parse_mac("AA-bb-CC-dd-EE-ff"),
            Some([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff])
        );
        assert_eq!(parse_mac("2:0:a:b:c:d"), Some([2, 0, 0xa, 0xb, 0xc, 0xd]));
    }

    #[test]
    fn parse_rejects_garbage() {
        for bad in [
            "",
            "ee:ee:ee:ee:ee",
            "ee:ee:ee:ee:ee:ee:ee",
            "ee:ee:ee:ee:ee:",
            "eee:ee:ee:ee:ee:ee",
            "gg:ee:ee:ee:ee:ee",
            "ee::ee:ee:ee:ee",
            "+e:ee:ee:ee:ee:ee",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
