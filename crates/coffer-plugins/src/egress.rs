//! Post-DNS egress check of the `sql` and `http` capabilities (DNS-rebinding defence).
//!
//! The manifest allow-list is checked against the *name* a plugin gives. An allow-listed
//! name whose DNS answer later points at 169.254.169.254 (cloud metadata) would otherwise
//! let the plugin reach it, so the host resolves the name itself, refuses the destination
//! if any answer falls in a blocked range, and hands exactly the checked addresses to the
//! driver (no second resolution).
//!
//! Blocked: IPv4 link-local 169.254.0.0/16 (metadata endpoints), 0.0.0.0/8, the broadcast
//! address and multicast 224.0.0.0/4; IPv6 link-local fe80::/10, the unspecified `::`,
//! multicast ff00::/8, and the IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
//! (`::a.b.c.d`) and NAT64 (`64:ff9b::a.b.c.d`) forms of the IPv4 ranges. Loopback and
//! private ranges stay allowed: databases live there. A blocked address is still allowed
//! when the manifest names that exact IP literal as a host (the operator means it).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why an address is refused, or `None` if it may be reached.
pub fn blocked_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => blocked_v6(v6),
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if o[0] == 169 && o[1] == 254 {
        Some("link-local / cloud metadata 169.254.0.0/16")
    } else if o[0] == 0 {
        Some("0.0.0.0/8")
    } else if ip.is_broadcast() {
        Some("broadcast 255.255.255.255")
    } else if o[0] & 0xf0 == 224 {
        Some("multicast 224.0.0.0/4")
    } else {
        None
    }
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified ::");
    }
    if ip.is_loopback() {
        // `::1` would read as the IPv4-compatible 0.0.0.1 below; it is loopback.
        return None;
    }
    if s[0] & 0xffc0 == 0xfe80 {
        return Some("IPv6 link-local fe80::/10");
    }
    if s[0] & 0xff00 == 0xff00 {
        return Some("IPv6 multicast ff00::/8");
    }
    let [a, b, c, d, e, f, g, h] = s;
    let tail = Ipv4Addr::new((g >> 8) as u8, g as u8, (h >> 8) as u8, h as u8);
    let embedded = match (a, b, c, d, e, f) {
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d.
        (0, 0, 0, 0, 0, 0xffff) | (0, 0, 0, 0, 0, 0) => true,
        // NAT64 well-known prefix 64:ff9b::/96 (RFC 6052).
        (0x64, 0xff9b, 0, 0, 0, 0) => true,
        _ => false,
    };
    if embedded {
        return blocked_v4(tail).map(|_| "an IPv6 form of a blocked IPv4 range");
    }
    None
}

/// Why [`resolve_checked`] refused a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressError {
    /// The name did not resolve (or resolved to nothing): a connect error, not a denial.
    Lookup(String),
    /// An answer is in a blocked range: a denial.
    Blocked(String),
    /// The step's time ran out before the name resolved.
    Timeout,
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lookup(m) | Self::Blocked(m) => f.write_str(m),
            Self::Timeout => f.write_str("name resolution timed out"),
        }
    }
}

/// Resolves `host:port` (an IP literal, with or without brackets, resolves to itself) and
/// refuses it if ANY answer is in a blocked range, unless `manifest_allows_literal(ip)`
/// says the manifest names that exact IP literal as a host. Connect to the returned
/// addresses only.
pub async fn resolve_checked(
    host: &str,
    port: u16,
    manifest_allows_literal: impl Fn(IpAddr) -> bool,
) -> Result<Vec<SocketAddr>, EgressError> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| EgressError::Lookup(format!("cannot resolve {host}: {e}")))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(EgressError::Lookup(format!(
            "{host} resolved to no addresses"
        )));
    }
    check(host, addrs, manifest_allows_literal)
}

/// [`resolve_checked`] within `limit` (what is left of the step's time): `Timeout` when
/// it runs out, at once when nothing is left.
pub async fn resolve_checked_within(
    host: &str,
    port: u16,
    limit: std::time::Duration,
    manifest_allows_literal: impl Fn(IpAddr) -> bool,
) -> Result<Vec<SocketAddr>, EgressError> {
    if limit.is_zero() {
        return Err(EgressError::Timeout);
    }
    tokio::time::timeout(limit, resolve_checked(host, port, manifest_allows_literal))
        .await
        .unwrap_or(Err(EgressError::Timeout))
}

fn check(
    host: &str,
    mut addrs: Vec<SocketAddr>,
    manifest_allows_literal: impl Fn(IpAddr) -> bool,
) -> Result<Vec<SocketAddr>, EgressError> {
    for a in &addrs {
        let ip = a.ip();
        if let Some(range) = blocked_range(ip) {
            if manifest_allows_literal(ip) {
                continue;
            }
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let msg = if bare.parse::<IpAddr>().ok() == Some(ip) {
                format!(
                    "{host} is a blocked address ({range}); only a manifest that names \
                     this IP literal itself may reach it"
                )
            } else {
                format!(
                    "{host} resolved to {ip}, a blocked address (DNS answer in a blocked \
                     range: {range}); only a manifest that names this IP literal itself \
                     may reach it"
                )
            };
            return Err(EgressError::Blocked(msg));
        }
    }
    addrs.dedup();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocked_ranges() {
        for s in [
            "169.254.169.254",
            "169.254.0.0",
            "169.254.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "fe80::1",
            "febf::ffff",
            "::",
            "ff02::1",
            "ff0e::1",
            "::ffff:169.254.169.254",
            "::ffff:0.0.0.0",
            "::ffff:255.255.255.255",
            "::ffff:224.0.0.251",
            "::169.254.169.254",
            "64:ff9b::169.254.169.254",
        ] {
            assert!(blocked_range(ip(s)).is_some(), "{s} should be blocked");
        }
    }

    #[test]
    fn allowed_ranges() {
        for s in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "8.8.8.8",
            "1.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "223.255.255.255",
            "240.0.0.1",
            "255.255.255.254",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "2001:db8::1",
            "2606:4700::1111",
        ] {
            assert_eq!(blocked_range(ip(s)), None, "{s} should be allowed");
        }
    }

    #[test]
    fn ipv4_mapped_is_named_as_such() {
        let r = blocked_range(ip("::ffff:169.254.169.254")).unwrap();
        assert!(r.contains("IPv6 form"), "{r}");
    }

    #[tokio::test]
    async fn metadata_literal_is_refused_unless_the_manifest_names_it() {
        let e = resolve_checked("169.254.169.254", 80, |_| false)
            .await
            .unwrap_err();
        let EgressError::Blocked(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("169.254.169.254"), "{m}");
        assert!(m.contains("blocked"), "{m}");

        let want = ip("169.254.169.254");
        let ok = resolve_checked("169.254.169.254", 80, |a| a == want)
            .await
            .unwrap();
        assert_eq!(ok, vec![SocketAddr::new(want, 80)]);

        // Naming another address does not help.
        let other = ip("169.254.1.1");
        assert!(resolve_checked("169.254.169.254", 80, |a| a == other)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn bracketed_and_mapped_literals() {
        let e = resolve_checked("[::ffff:169.254.169.254]", 443, |_| false)
            .await
            .unwrap_err();
        assert!(matches!(e, EgressError::Blocked(_)), "{e:?}");
        let ok = resolve_checked("[::1]", 5432, |_| false).await.unwrap();
        assert_eq!(ok, vec![SocketAddr::new(ip("::1"), 5432)]);
    }

    #[tokio::test]
    async fn loopback_and_localhost_are_allowed() {
        let ok = resolve_checked("127.0.0.1", 5432, |_| false).await.unwrap();
        assert_eq!(ok, vec![SocketAddr::new(ip("127.0.0.1"), 5432)]);
        let ok = resolve_checked("localhost", 3306, |_| false).await.unwrap();
        assert!(!ok.is_empty());
        assert!(
            ok.iter().all(|a| a.ip().is_loopback() && a.port() == 3306),
            "{ok:?}"
        );
    }

    #[test]
    fn a_name_with_one_blocked_answer_is_refused() {
        // What a rebinding resolver would answer: one good address, one metadata address.
        let addrs = vec![
            SocketAddr::new(ip("10.0.0.5"), 5432),
            SocketAddr::new(ip("169.254.169.254"), 5432),
        ];
        let e = check("db.example.com", addrs, |_| false).unwrap_err();
        let EgressError::Blocked(m) = &e else {
            panic!("{e:?}")
        };
        assert!(m.contains("db.example.com"), "{m}");
        assert!(m.contains("169.254.169.254"), "{m}");
        assert!(m.contains("DNS answer in a blocked range"), "{m}");

        let addrs = vec![SocketAddr::new(ip("10.0.0.5"), 5432)];
        assert_eq!(
            check("db.example.com", addrs.clone(), |_| false).unwrap(),
            addrs
        );
    }

    #[tokio::test]
    async fn unresolvable_names_are_lookup_errors() {
        // A resolver that never answers is not what this test is about.
        let lookup = resolve_checked("no-such-host.invalid", 5432, |_| false);
        let Ok(r) = tokio::time::timeout(std::time::Duration::from_secs(15), lookup).await else {
            return;
        };
        let e = r.unwrap_err();
        assert!(matches!(e, EgressError::Lookup(_)), "{e:?}");
    }
}
