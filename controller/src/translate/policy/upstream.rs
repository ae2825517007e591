//! Health checks, outlier ejection, timeouts and retries of a backend: the `health-check-*`,
//! `consecutive-failures`, `max-ejection-percent`, `connect-timeout`, `read-timeout` and
//! `retries` annotations, or the BackendPolicy's `healthCheck`, `outlierDetection`,
//! `connectTimeout`, `readTimeout` and `retries` fields. Same precedence as the rest of the
//! policy (see the parent module).

use super::{values, Resolution};
use crate::translate::annotations;
use proxy::table::{ActiveCheck, HealthPolicy, OutlierPolicy, UpstreamPolicy};
use std::time::Duration;

/// Most retries a Service may ask for (the CRD's maximum).
const MAX_RETRIES: u32 = 10;

/// Annotations that switch active checks on (a TCP check unless a path is given).
const CHECK_KEYS: [&str; 5] = [
    "health-check-path",
    "health-check-interval",
    "health-check-timeout",
    "health-check-healthy-threshold",
    "health-check-unhealthy-threshold",
];

/// A duration above zero.
fn positive_duration(value: &str) -> Result<Duration, String> {
    match values::duration(value)? {
        d if d.is_zero() => Err("must be above zero".into()),
        d => Ok(d),
    }
}

/// An integer within `min..=max`.
fn count(value: &str, min: u32, max: u32) -> Result<u32, String> {
    let n: u32 = value
        .parse()
        .map_err(|_| format!("expected a whole number from {min} to {max}"))?;
    in_range(n, min, max)
}

fn in_range(n: u32, min: u32, max: u32) -> Result<u32, String> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("{n} is outside {min}..={max}"))
    }
}

/// An HTTP path for the check.
fn check_path(value: &str) -> Result<String, String> {
    if value.starts_with('/') && !value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(value.to_string())
    } else {
        Err("expected an absolute path such as /healthz".into())
    }
}

impl<'a> Resolution<'a, '_> {
    /// Whether any layer asks for active checks.
    fn checks_requested(&self) -> bool {
        if self.spec().is_some_and(|s| s.health_check.is_some()) {
            return true;
        }
        let ingress = self.layers.ingress.map(|(_, m)| m);
        let service = self.layers.service.map(|(_, s)| &s.metadata);
        [ingress, service].into_iter().flatten().any(|meta| {
            CHECK_KEYS
                .iter()
                .any(|k| annotations::get(meta, k).is_some())
        })
    }

    pub(super) fn health(&mut self) -> HealthPolicy {
        HealthPolicy {
            active: self.active_check(),
            outlier: self.outlier(),
        }
    }

    fn active_check(&mut self) -> Option<ActiveCheck> {
        if !self.checks_requested() {
            return None;
        }
        let hc = self.spec().and_then(|s| s.health_check.as_ref());
        let path = hc
            .and_then(|h| h.path.as_deref())
            .map(|p| ("spec.healthCheck.path", check_path(p)));
        let path = self
            .pick(path, "health-check-path", check_path)
            .map(|(p, _)| p);
        let secs = |field: &'static str, v: Option<u32>| {
            v.map(|s| {
                (
                    field,
                    in_range(s, 1, 3600).map(|s| Duration::from_secs(s.into())),
                )
            })
        };
        let interval = secs(
            "spec.healthCheck.intervalSeconds",
            hc.and_then(|h| h.interval_seconds),
        );
        let interval = self
            .pick(interval, "health-check-interval", positive_duration)
            .map_or(ActiveCheck::DEFAULT_INTERVAL, |(d, _)| d);
        let timeout = secs(
            "spec.healthCheck.timeoutSeconds",
            hc.and_then(|h| h.timeout_seconds),
        );
        let timeout = self
            .pick(timeout, "health-check-timeout", positive_duration)
            .map_or(ActiveCheck::DEFAULT_TIMEOUT, |(d, _)| d);
        let threshold =
            |field: &'static str, v: Option<u32>| v.map(|n| (field, in_range(n, 1, 100)));
        let healthy = threshold(
            "spec.healthCheck.healthyThreshold",
            hc.and_then(|h| h.healthy_threshold),
        );
        let healthy_threshold = self
            .pick(healthy, "health-check-healthy-threshold", |v| {
                count(v, 1, 100)
            })
            .map_or(ActiveCheck::DEFAULT_HEALTHY_THRESHOLD, |(n, _)| n);
        let unhealthy = threshold(
            "spec.healthCheck.unhealthyThreshold",
            hc.and_then(|h| h.unhealthy_threshold),
        );
        let unhealthy_threshold = self
            .pick(unhealthy, "health-check-unhealthy-threshold", |v| {
                count(v, 1, 100)
            })
            .map_or(ActiveCheck::DEFAULT_UNHEALTHY_THRESHOLD, |(n, _)| n);
        Some(ActiveCheck {
            path,
            interval,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        })
    }

    fn outlier(&mut self) -> OutlierPolicy {
        let defaults = OutlierPolicy::default();
        let od = self.spec().and_then(|s| s.outlier_detection.as_ref());
        let failures = od.and_then(|o| o.consecutive_failures).map(|n| {
            (
                "spec.outlierDetection.consecutiveFailures",
                in_range(n, 1, 1000),
            )
        });
        let consecutive_failures = self
            .pick(failures, "consecutive-failures", |v| count(v, 0, 1000))
            .map_or(defaults.consecutive_failures, |(n, _)| n);
        let percent = od.and_then(|o| o.max_ejection_percent).map(|n| {
            (
                "spec.outlierDetection.maxEjectionPercent",
                in_range(n, 0, 100),
            )
        });
        let max_ejection_percent = self
            .pick(percent, "max-ejection-percent", |v| count(v, 0, 100))
            .map_or(defaults.max_ejection_percent, |(n, _)| n);
        OutlierPolicy {
            consecutive_failures,
            max_ejection_percent,
            ..defaults
        }
    }

    pub(super) fn upstream(&mut self) -> UpstreamPolicy {
        let defaults = UpstreamPolicy::default();
        let spec = self.spec();
        let connect = spec
            .and_then(|s| s.connect_timeout.as_deref())
            .map(|d| ("spec.connectTimeout", positive_duration(d)));
        let connect_timeout = self
            .pick(connect, "connect-timeout", positive_duration)
            .map_or(defaults.connect_timeout, |(d, _)| d);
        let read = spec
            .and_then(|s| s.read_timeout.as_deref())
            .map(|d| ("spec.readTimeout", positive_duration(d)));
        let read_timeout = self
            .pick(read, "read-timeout", positive_duration)
            .map_or(defaults.read_timeout, |(d, _)| d);
        let retries = spec
            .and_then(|s| s.retries)
            .map(|n| ("spec.retries", in_range(n, 0, MAX_RETRIES)));
        let retries = self
            .pick(retries, "retries", |v| count(v, 0, MAX_RETRIES))
            .map_or(defaults.retries, |(n, _)| n);
        UpstreamPolicy {
            connect_timeout,
            read_timeout,
            retries,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(positive_duration("0s").is_err());
        assert_eq!(count("3", 1, 10), Ok(3));
        assert!(count("0", 1, 10).is_err());
        assert!(count("11", 1, 10).is_err());
        assert!(count("x", 1, 10).is_err());
        assert_eq!(check_path("/healthz?full=1"), Ok("/healthz?full=1".into()));
        assert!(check_path("healthz").is_err());
        assert!(check_path("/a b").is_err());
    }
}
