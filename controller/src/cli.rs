//! Command-line interface of the `pier` binary.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// pier: a Kubernetes Ingress controller and L7 reverse proxy.
#[derive(Debug, Parser)]
#[command(name = "pier", version, about)]
pub struct Cli {
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `run` when no subcommand is given.
    #[command(flatten)]
    pub run: RunArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve Ingresses (from manifest files with --manifests, else from Kubernetes).
    Run(Box<RunArgs>),
    /// The quickstart: three echo backends on loopback and the proxy on the quickstart manifests.
    Demo(DemoArgs),
    /// A small HTTP backend that answers every request with JSON describing it.
    Echo(EchoArgs),
    /// Validate manifests offline: print every problem, exit 1 if there is any.
    Check(CheckArgs),
}

/// Options of `pier run`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// A manifest file or directory of YAML (repeatable); watched for changes.
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
    /// Address of the plain HTTP listener.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub http_listen: SocketAddr,
    /// Address of the HTTPS listener (certificates from Ingress `tls` Secrets, chosen by SNI).
    #[arg(long, default_value = "0.0.0.0:8443", value_name = "ADDR")]
    pub https_listen: SocketAddr,
    /// Address of the admin listener (/healthz, /readyz, /metrics, /debug/routes).
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub admin_listen: SocketAddr,
    /// Proxy worker threads (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Hand a new connection to the proxy only once its first bytes have arrived, or after
    /// about this long without any (TCP_DEFER_ACCEPT, whole seconds); 0s: at once.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub defer_accept: Duration,
    /// IngressClass name pier serves (also without an IngressClass object of that name).
    #[arg(long, default_value = "pier")]
    pub ingress_class: String,
    /// Only serve Ingresses of this namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// Backend for requests no Ingress matches, as `namespace/service:port`.
    #[arg(long, value_name = "NS/NAME:PORT")]
    pub default_backend: Option<String>,
    /// `kubernetes.io/tls` Secret served for unknown SNI, clients without SNI and hosts whose
    /// Secret is unusable (default: a self-signed certificate generated at start-up).
    #[arg(long, value_name = "NS/NAME")]
    pub default_certificate: Option<String>,
    /// Kubernetes: kubeconfig file (used when no --manifests is given; without it, the
    /// in-cluster service account).
    #[arg(long, env = "KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes: write the addresses of this Service (LoadBalancer ingress, or the nodes'
    /// addresses for a NodePort Service) into the status of every Ingress pier serves.
    #[arg(
        long,
        value_name = "NS/NAME",
        conflicts_with = "publish_status_address"
    )]
    pub publish_service: Option<String>,
    /// Kubernetes: write these addresses (comma-separated IPs or hostnames) into Ingress status.
    #[arg(long, value_name = "ADDR,...")]
    pub publish_status_address: Option<String>,
    /// Kubernetes: name of the Lease replicas elect the status/Event writer with.
    #[arg(long, default_value = "pier-leader", value_name = "NAME")]
    pub election_id: String,
    /// Kubernetes: namespace of that Lease (default: the pod's, else the kubeconfig's).
    #[arg(long, env = "POD_NAMESPACE", value_name = "NAMESPACE")]
    pub election_namespace: Option<String>,
    /// Kubernetes: how long the leader's Lease lasts without renewal (take-over time when the
    /// leader dies without releasing it).
    #[arg(long, value_parser = parse_duration, default_value = "15s")]
    pub lease_duration: Duration,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// One line per request on standard output (client, method, host, URI, status, bytes,
    /// duration, endpoint, route), written by a background thread.
    #[arg(long, value_enum, default_value = "off")]
    pub access_log: AccessLog,
    /// On SIGTERM, keep accepting connections this long before closing the listeners.
    #[arg(long, value_parser = parse_duration, default_value = "5s")]
    pub shutdown_delay: Duration,
    /// Then wait at most this long for in-flight requests before exiting.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Access-log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessLog {
    /// No access log.
    Off,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Options of `pier demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of the proxy's HTTP listener.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub http_listen: SocketAddr,
    /// Address of the proxy's HTTPS listener.
    #[arg(long, default_value = "127.0.0.1:8443", value_name = "ADDR")]
    pub https_listen: SocketAddr,
    /// Address of the admin listener.
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub admin_listen: SocketAddr,
    /// Serve these manifests instead of the quickstart (the echo backends still start).
    #[arg(long = "manifests", value_name = "PATH")]
    pub manifests: Vec<PathBuf>,
}

/// Options of `pier echo`.
#[derive(Debug, Args)]
pub struct EchoArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Name reported in every answer.
    #[arg(long, default_value = "echo")]
    pub name: String,
    /// Delay before answering, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Status code of every answer.
    #[arg(long, default_value_t = 200)]
    pub status: u16,
}

/// Options of `pier check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Manifest files or directories.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// IngressClass name pier serves.
    #[arg(long, default_value = "pier")]
    pub ingress_class: String,
}

/// Parses `250ms`, `5s`, `2m`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 500ms, 5s, 2m"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?}: use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn run_is_the_default_command() {
        let cli = Cli::try_parse_from(["pier", "--manifests", "a", "--threads", "3"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.manifests, vec![PathBuf::from("a")]);
        assert_eq!(cli.run.threads, Some(3));
        assert_eq!(cli.run.http_listen.to_string(), "0.0.0.0:8080");
    }

    #[test]
    fn accepting_is_deferred_for_a_second_unless_told_otherwise() {
        let cli = Cli::try_parse_from(["pier"]).unwrap();
        assert_eq!(cli.run.defer_accept, Duration::from_secs(1));
        let cli = Cli::try_parse_from(["pier", "run", "--defer-accept", "0s"]).unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("not run: {:?}", cli.command);
        };
        assert_eq!(run.defer_accept, Duration::ZERO);
    }
}
