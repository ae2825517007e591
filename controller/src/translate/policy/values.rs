//! Parsers for the values of the load-balancing settings, shared by the annotations and the
//! BackendPolicy's string fields. Each returns a message saying what is wrong.

use proxy::table::HashKey;
use std::time::Duration;

/// What `load-balance` / `loadBalancer.policy` selects, before `hash-by` is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AlgorithmName {
    /// `round-robin`.
    RoundRobin,
    /// `least-request`.
    LeastRequest,
    /// `consistent-hash`.
    ConsistentHash,
    /// `random`.
    Random,
}

/// What `affinity` / `affinity.type` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AffinityName {
    /// `cookie`.
    Cookie,
    /// `client-ip`.
    ClientIp,
    /// `none`: no affinity, not even the Service's `sessionAffinity: ClientIP`.
    None,
}

/// `round-robin`, `least-request`, `consistent-hash` or `random`.
pub(crate) fn algorithm(value: &str) -> Result<AlgorithmName, String> {
    match value {
        "round-robin" => Ok(AlgorithmName::RoundRobin),
        "least-request" => Ok(AlgorithmName::LeastRequest),
        "consistent-hash" => Ok(AlgorithmName::ConsistentHash),
        "random" => Ok(AlgorithmName::Random),
        _ => Err("expected round-robin, least-request, consistent-hash or random".into()),
    }
}

/// `cookie`, `client-ip` or `none`.
pub(crate) fn affinity(value: &str) -> Result<AffinityName, String> {
    match value {
        "cookie" => Ok(AffinityName::Cookie),
        "client-ip" => Ok(AffinityName::ClientIp),
        "none" => Ok(AffinityName::None),
        _ => Err("expected cookie, client-ip or none".into()),
    }
}

/// `header:NAME`, `cookie:NAME`, `source-ip`, `path` or `query:NAME`. Header names are
/// lower-cased (HTTP header names are case-insensitive).
pub(crate) fn hash_key(value: &str) -> Result<HashKey, String> {
    match value {
        "source-ip" => return Ok(HashKey::SourceIp),
        "path" => return Ok(HashKey::Path),
        _ => {}
    }
    let expected = || "expected header:NAME, cookie:NAME, source-ip, path or query:NAME".into();
    let (kind, name) = value.split_once(':').ok_or_else(expected)?;
    let name = name.trim();
    match kind {
        "header" => token(name).map(|n| HashKey::Header(n.to_ascii_lowercase())),
        "cookie" => token(name).map(|n| HashKey::Cookie(n.to_string())),
        "query" if !name.is_empty() => Ok(HashKey::Query(name.to_string())),
        "query" => Err("the query parameter name is empty".into()),
        _ => Err(expected()),
    }
}

/// An HTTP token (header or cookie name): visible ASCII without separators.
pub(crate) fn token(value: &str) -> Result<&str, String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if value.is_empty() {
        Err("the name is empty".into())
    } else if !value.chars().all(ok) {
        Err(format!("{value:?} is not a valid header or cookie name"))
    } else {
        Ok(value)
    }
}

/// `hash-balance-factor`: an integer ≥ 100 (percent of the mean load).
pub(crate) fn balance_factor(value: &str) -> Result<u32, String> {
    let n: u32 = value
        .parse()
        .map_err(|_| "expected an integer of at least 100, e.g. 125".to_string())?;
    check_balance_factor(n)
}

/// A balance factor below 100 would allow less than the mean load everywhere.
pub(crate) fn check_balance_factor(n: u32) -> Result<u32, String> {
    if n < 100 {
        Err(format!("{n} is below 100 (the mean load); e.g. 125"))
    } else {
        Ok(n)
    }
}

/// A non-negative integer number of seconds.
pub(crate) fn seconds(value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| "expected a whole number of seconds".to_string())
}

/// A duration such as `500ms`, `30s`, `1m`, `2h` or `1m30s`.
pub(crate) fn duration(value: &str) -> Result<Duration, String> {
    let bad = || "expected a duration such as 500ms, 30s, 1m or 1m30s".to_string();
    if value.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    let mut rest = value;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = match &rest[..unit_len] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(bad()),
        };
        total = total.saturating_add(part);
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms() {
        assert_eq!(algorithm("round-robin"), Ok(AlgorithmName::RoundRobin));
        assert_eq!(algorithm("least-request"), Ok(AlgorithmName::LeastRequest));
        assert_eq!(
            algorithm("consistent-hash"),
            Ok(AlgorithmName::ConsistentHash)
        );
        assert_eq!(algorithm("random"), Ok(AlgorithmName::Random));
        assert!(algorithm("Round-Robin").is_err());
        assert!(algorithm("ewma").is_err());
    }

    #[test]
    fn hash_keys() {
        assert_eq!(
            hash_key("header:X-User"),
            Ok(HashKey::Header("x-user".into()))
        );
        assert_eq!(
            hash_key("cookie:session"),
            Ok(HashKey::Cookie("session".into()))
        );
        assert_eq!(hash_key("source-ip"), Ok(HashKey::SourceIp));
        assert_eq!(hash_key("path"), Ok(HashKey::Path));
        assert_eq!(hash_key("query:user"), Ok(HashKey::Query("user".into())));
        for bad in [
            "header:",
            "header:a b",
            "cookie:",
            "query:",
            "ip",
            "uri",
            "body:x",
            "",
        ] {
            assert!(hash_key(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn affinities() {
        assert_eq!(affinity("cookie"), Ok(AffinityName::Cookie));
        assert_eq!(affinity("client-ip"), Ok(AffinityName::ClientIp));
        assert_eq!(affinity("none"), Ok(AffinityName::None));
        assert!(affinity("sticky").is_err());
    }

    #[test]
    fn balance_factors() {
        assert_eq!(balance_factor("125"), Ok(125));
        assert_eq!(balance_factor("100"), Ok(100));
        assert!(balance_factor("99").is_err());
        assert!(balance_factor("1.25").is_err());
        assert!(balance_factor("-150").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("0s"), Ok(Duration::ZERO));
        for bad in ["", "30", "s", "1.5s", "30 s", "-1s", "10d", "1m30"] {
            assert!(duration(bad).is_err(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn seconds_and_tokens() {
        assert_eq!(seconds("3600"), Ok(3600));
        assert!(seconds("1h").is_err());
        assert!(seconds("-5").is_err());
        assert_eq!(token("pier-affinity"), Ok("pier-affinity"));
        assert!(token("a;b").is_err());
        assert!(token("").is_err());
    }
}
