//! Trusted proxies (`security.trusted_proxies`) and the client IP they
//! forward (`X-Forwarded-For`, RFC 7239 `Forwarded`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use actix_web::http::header::HeaderMap;
use serde::Deserialize;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `::1/128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or `IPv6/n` (host
    /// bits are ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse().ok().filter(|prefix| *prefix <= max)?
            }
            Some(_) => return None,
            None => max,
        };
        Some(Self { addr, prefix })
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose forwarding headers are believed: the TCP peer must be
/// one of them for `X-Forwarded-For`/`Forwarded` to be read at all, and
/// hops they added are skipped when looking for the client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ProxyEntries")]
pub struct TrustedProxies {
    networks: Vec<IpNetwork>,
}

/// `security.trusted_proxies` as written: a list (TOML array) or one
/// comma-separated string (environment variable).
#[derive(Deserialize)]
#[serde(untagged)]
enum ProxyEntries {
    List(Vec<String>),
    Text(String),
}

impl TryFrom<ProxyEntries> for TrustedProxies {
    type Error = String;

    fn try_from(entries: ProxyEntries) -> Result<Self, String> {
        let entries = match entries {
            ProxyEntries::List(list) => list,
            ProxyEntries::Text(text) => text.split(',').map(str::to_owned).collect(),
        };
        entries
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNetwork::parse(entry).ok_or_else(|| {
                    format!("security.trusted_proxies: `{entry}` is not an IP address or network (a.b.c.d, a.b.c.d/n, IPv6, IPv6/n)")
                })
            })
            .collect::<Result<_, _>>()
            .map(|networks| Self { networks })
    }
}

impl TrustedProxies {
    /// Parses a comma-separated list, as the environment variable holds it.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::try_from(ProxyEntries::Text(text.to_owned()))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|network| network.contains(ip))
    }
}

/// The client's IP address, given the TCP `peer` and the request `headers`.
///
/// When the peer is not trusted (`trust_any_peer`, the deprecated
/// `security.trust_forwarded_for`, trusts it whatever it is), it is the
/// client and the headers are ignored. Otherwise the hops are walked from
/// the right (the nearest proxy's entry last), skipping trusted proxies:
/// the first untrusted hop is the client; if every hop is trusted, the
/// leftmost; an unparseable or `unknown`/obfuscated hop (RFC 7239 §6) ends
/// the walk at the last trusted address seen. The hops are those of
/// `X-Forwarded-For` when the request has one, else the `for=` values of
/// RFC 7239 `Forwarded`; several lines of a header are one list in order
/// (RFC 7230 §3.2.2). IPv4-mapped IPv6 addresses count as IPv4.
pub fn resolve_client_ip(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    proxies: &TrustedProxies,
    trust_any_peer: bool,
) -> Option<IpAddr> {
    let peer = peer.map(|ip| ip.to_canonical());
    let peer_trusted = trust_any_peer || peer.is_some_and(|ip| proxies.contains(ip));
    if !peer_trusted {
        return peer;
    }
    let hops = forwarded_hops(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = Some(*ip);
                if !proxies.contains(*ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// The hops of `X-Forwarded-For` or else `Forwarded`, left to right;
/// `None` for a hop that names no IP address.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name: &str| -> Option<Vec<String>> {
        let lines: Vec<String> = headers
            .get_all(name)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        (!lines.is_empty()).then_some(lines)
    };
    if let Some(lines) = lines("x-forwarded-for") {
        lines
            .iter()
            .flat_map(|line| line.split(','))
            .map(parse_node)
            .collect()
    } else if let Some(lines) = lines("forwarded") {
        lines
            .iter()
            .flat_map(|line| split_unquoted(line, ','))
            .map(|element| forwarded_for(&element).and_then(|node| parse_node(&node)))
            .collect()
    } else {
        Vec::new()
    }
}

/// The `for=` value of one `Forwarded` element (RFC 7239 §4), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    split_unquoted(element, ';').into_iter().find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| unquote(value.trim()))
    })
}

/// `text` split at `separator`s outside quoted strings (RFC 7230 §3.2.6).
fn split_unquoted(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(String::new());
            continue;
        }
        if let Some(part) = parts.last_mut() {
            part.push(c);
        }
    }
    parts
}

/// A token or quoted-string value, without quotes and quoted-pair escapes.
fn unquote(value: &str) -> String {
    match value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
    {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if !escaped && c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                    escaped = false;
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

/// A hop's IP: `IP`, `IPv4:port`, `[IPv6]` or `[IPv6]:port` (RFC 7239 §6;
/// the port may be obfuscated, `_abc`); `None` for anything else,
/// including `unknown` and obfuscated identifiers.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let valid_port = |port: &str| {
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        let obfuscated = port.len() > 1
            && port.starts_with('_')
            && port[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        digits || obfuscated
    };
    let ip = if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !after.is_empty() && !after.strip_prefix(':').is_some_and(valid_port) {
            return None;
        }
        IpAddr::V6(v6.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = node.parse::<IpAddr>() {
        ip
    } else {
        let (v4, port) = node.rsplit_once(':')?;
        if !valid_port(port) {
            return None;
        }
        IpAddr::V4(v4.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A TCP peer, its header lines and the client expected.
    type Case = (&'static str, &'static [Line], Option<&'static str>);
    type Line = (&'static str, &'static str);

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in lines {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    #[test]
    fn networks_parse_and_match() {
        for (entry, inside, outside) in [
            ("10.0.0.0/8", "10.255.1.2", "11.0.0.1"),
            ("127.0.0.1", "127.0.0.1", "127.0.0.2"),
            ("127.0.0.1/32", "127.0.0.1", "127.0.0.2"),
            ("192.168.1.77/24", "192.168.1.1", "192.168.2.1"),
            ("0.0.0.0/0", "203.0.113.1", "::1"),
            ("::1", "::1", "::2"),
            ("fd00::/8", "fd12:3456::1", "fe80::1"),
            (" 2001:db8::/32 ", "2001:db8:ffff::1", "2001:db9::1"),
            ("::/0", "2001:db8::1", "10.0.0.1"),
        ] {
            let network = IpNetwork::parse(entry).unwrap();
            assert!(network.contains(ip(inside)), "{entry} ∋ {inside}");
            assert!(!network.contains(ip(outside)), "{entry} ∌ {outside}");
        }
        for entry in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0",
            "host.example",
            "10.0.0.1:80",
            "[::1]",
            "10.0.0.0/8/8",
        ] {
            assert_eq!(IpNetwork::parse(entry), None, "{entry:?}");
        }
    }

    #[test]
    fn the_list_parses_comma_separated_and_names_an_invalid_entry() {
        let proxies = TrustedProxies::parse("127.0.0.1/32, 10.0.0.0/8,,::1").unwrap();
        assert!(proxies.contains(ip("10.1.2.3")));
        assert!(proxies.contains(ip("::1")));
        assert!(proxies.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!proxies.contains(ip("192.168.0.1")));
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        let error = TrustedProxies::parse("10.0.0.0/8,10.0.0.300").unwrap_err();
        assert!(error.contains("`10.0.0.300`"), "{error}");
        assert!(error.contains("security.trusted_proxies"), "{error}");
    }

    #[test]
    fn nodes_accept_ports_and_brackets() {
        for (node, expected) in [
            ("203.0.113.1", Some("203.0.113.1")),
            (" 203.0.113.1:8443 ", Some("203.0.113.1")),
            ("203.0.113.1:_port", Some("203.0.113.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:4711", Some("2001:db8::1")),
            ("::ffff:203.0.113.1", Some("203.0.113.1")),
            ("unknown", None),
            ("_hidden", None),
            ("", None),
            ("203.0.113.1:", None),
            ("203.0.113.1:123456", None),
            ("[2001:db8::1]4711", None),
            ("[203.0.113.1]", None),
            ("2001:db8::1:80:x", None),
            ("garbage", None),
        ] {
            assert_eq!(parse_node(node), expected.map(ip), "{node:?}");
        }
    }

    #[test]
    fn the_walk_skips_trusted_hops_from_the_right() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 2001:db8:ffff::/48").unwrap();
        let cases: &[Case] = &[
            // An untrusted peer is the client; its headers are ignored.
            (
                "203.0.113.9",
                &[("x-forwarded-for", "198.51.100.1")],
                Some("203.0.113.9"),
            ),
            (
                "203.0.113.9",
                &[("forwarded", "for=198.51.100.1")],
                Some("203.0.113.9"),
            ),
            // A trusted peer without headers is the client.
            ("10.0.0.1", &[], Some("10.0.0.1")),
            // Ports and brackets.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "198.51.100.1:5555")],
                Some("198.51.100.1"),
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "[2001:db8::7]:5555")],
                Some("2001:db8::7"),
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "2001:db8::7")],
                Some("2001:db8::7"),
            ),
            // Client-supplied entries left of the first untrusted hop lose.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "1.1.1.1, 198.51.100.1, 10.0.0.2")],
                Some("198.51.100.1"),
            ),
            // Several lines are one list, in order.
            (
                "10.0.0.1",
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "198.51.100.1, 10.0.0.3"),
                ],
                Some("198.51.100.1"),
            ),
            // Every hop trusted: the leftmost.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "10.0.0.5, 10.0.0.4")],
                Some("10.0.0.5"),
            ),
            // Garbage ends the walk at the last trusted address seen.
            (
                "10.0.0.1",
                &[("x-forwarded-for", "1.1.1.1, nonsense, 10.0.0.4")],
                Some("10.0.0.4"),
            ),
            (
                "10.0.0.1",
                &[("x-forwarded-for", "nonsense")],
                Some("10.0.0.1"),
            ),
            ("10.0.0.1", &[("x-forwarded-for", "")], Some("10.0.0.1")),
            // RFC 7239: quoted values, several elements and lines, other
            // parameters, case-insensitive names.
            (
                "10.0.0.1",
                &[(
                    "forwarded",
                    "for=1.1.1.1, For=\"[2001:db8::17]:4711\";proto=https",
                )],
                Some("2001:db8::17"),
            ),
            (
                "10.0.0.1",
                &[
                    ("forwarded", "for=198.51.100.1;by=10.0.0.2"),
                    ("forwarded", "proto=http;for=\"10.0.0.2:80\""),
                ],
                Some("198.51.100.1"),
            ),
            (
                "10.0.0.1",
                &[(
                    "forwarded",
                    "for=\"[2001:db8:ffff::1]\", for=\"[2001:db8:ffff::2]:1\"",
                )],
                Some("2001:db8:ffff::1"),
            ),
            // A quoted comma or semicolon does not split.
            (
                "10.0.0.1",
                &[("forwarded", "for=198.51.100.1;ext=\"a,b;for=1.1.1.1\"")],
                Some("198.51.100.1"),
            ),
            // `unknown`, obfuscated identifiers and elements without `for`
            // end the walk.
            (
                "10.0.0.1",
                &[("forwarded", "for=1.1.1.1, for=unknown, for=10.0.0.3")],
                Some("10.0.0.3"),
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=_hidden")],
                Some("10.0.0.1"),
            ),
            (
                "10.0.0.1",
                &[("forwarded", "for=1.1.1.1, proto=https")],
                Some("10.0.0.1"),
            ),
            // X-Forwarded-For, when present, wins over Forwarded.
            (
                "10.0.0.1",
                &[
                    ("forwarded", "for=1.1.1.1"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
                Some("198.51.100.1"),
            ),
            // An IPv4-mapped peer counts as IPv4.
            (
                "::ffff:10.0.0.1",
                &[("x-forwarded-for", "198.51.100.1")],
                Some("198.51.100.1"),
            ),
            (
                "::ffff:203.0.113.9",
                &[("x-forwarded-for", "198.51.100.1")],
                Some("203.0.113.9"),
            ),
        ];
        for (peer, lines, expected) in cases {
            let found = resolve_client_ip(Some(ip(peer)), &headers(lines), &proxies, false);
            assert_eq!(found, expected.map(ip), "peer {peer}, {lines:?}");
        }
    }

    #[test]
    fn without_trusted_proxies_the_headers_are_ignored() {
        let none = TrustedProxies::default();
        let lines = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(resolve_client_ip(peer, &lines, &none, false), peer);
        assert_eq!(resolve_client_ip(None, &lines, &none, false), None);
    }

    #[test]
    fn trusting_any_peer_takes_the_last_hop() {
        // The deprecated `security.trust_forwarded_for = true`.
        let none = TrustedProxies::default();
        let lines = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.1:80")]);
        for peer in [Some(ip("203.0.113.9")), None] {
            let found = resolve_client_ip(peer, &lines, &none, true);
            assert_eq!(found, Some(ip("198.51.100.1")), "{peer:?}");
        }
        let empty = HeaderMap::new();
        let peer = Some(ip("203.0.113.9"));
        assert_eq!(resolve_client_ip(peer, &empty, &none, true), peer);
    }
}
