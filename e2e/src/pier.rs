//! `pier run` as a child process on a temporary manifests directory.

use crate::binary::{pier_bin, run_supports_flag};
use crate::client::{HttpClient, Reply};
use crate::manifests;
use crate::net::{free_ports, poll_until};
use crate::tempdir::TempDir;
use http::StatusCode;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long `pier run` may take to answer `/readyz` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often `/readyz` is polled while waiting for it.
const READY_POLL: Duration = Duration::from_millis(50);
/// How many trailing lines of each log to print when a test fails.
const LOG_TAIL_LINES: usize = 200;
/// Name of the IngressClass file every instance starts with.
pub const INGRESS_CLASS_FILE: &str = "00-ingressclass.yaml";

/// A running `pier run`; killed on drop, and its logs printed if the test is failing.
///
/// Layout of its temporary directory: `manifests/` (given to `--manifests`), `staging/` (for
/// atomic replaces: same filesystem, not watched), `stdout.log`, `stderr.log`.
#[derive(Debug)]
pub struct Pier {
    child: Child,
    http: SocketAddr,
    https: Option<SocketAddr>,
    admin: SocketAddr,
    manifests: PathBuf,
    client: HttpClient,
    ready_after: Duration,
    // Dropped after `child` is killed (see Drop).
    root: TempDir,
}

impl Pier {
    /// Writes the `pier` IngressClass plus `files` (`(file name, YAML)`) into a fresh
    /// manifests directory, starts `pier run` on free loopback ports and waits for `/readyz`.
    pub async fn start(files: &[(&str, String)]) -> Pier {
        Pier::start_with_args(files, &[]).await
    }

    /// Like [`Pier::start`], with extra `pier run` arguments (e.g. `--default-certificate`).
    pub async fn start_with_args(files: &[(&str, String)], extra_args: &[&str]) -> Pier {
        Pier::launch(files, extra_args, true, ReadyWait::default()).await
    }

    /// For benchmarks: like [`Pier::start_with_args`] (`kubeconfig: None`) or
    /// [`Pier::start_kube`] (`Some`), waiting for `/readyz` as `wait` says; the time from
    /// spawning the process to the first 200 is [`Pier::ready_after`].
    pub async fn start_timed(
        files: &[(&str, String)],
        kubeconfig: Option<&Path>,
        extra_args: &[&str],
        wait: ReadyWait,
    ) -> Pier {
        match kubeconfig {
            None => Pier::launch(files, extra_args, true, wait).await,
            Some(path) => {
                let mut args = vec!["--kubeconfig", path.to_str().expect("UTF-8 path")];
                args.extend_from_slice(extra_args);
                Pier::launch(files, &args, false, wait).await
            }
        }
    }

    /// Starts `pier run` on Kubernetes (no `--manifests`) with `--kubeconfig` and `extra_args`
    /// and waits for `/readyz`, i.e. until every watcher has listed.
    pub async fn start_kube(kubeconfig: &Path, extra_args: &[&str]) -> Pier {
        let mut args = vec!["--kubeconfig", kubeconfig.to_str().expect("UTF-8 path")];
        args.extend_from_slice(extra_args);
        Pier::launch(&[], &args, false, ReadyWait::default()).await
    }

    async fn launch(
        files: &[(&str, String)],
        extra_args: &[&str],
        use_manifests: bool,
        wait: ReadyWait,
    ) -> Pier {
        let root = TempDir::new("pier");
        let manifests = root.path().join("manifests");
        std::fs::create_dir_all(&manifests).expect("cannot create manifests dir");
        std::fs::create_dir_all(root.path().join("staging")).expect("cannot create staging dir");
        std::fs::write(
            manifests.join(INGRESS_CLASS_FILE),
            manifests::ingress_class(),
        )
        .expect("cannot write IngressClass");
        for (name, contents) in files {
            std::fs::write(manifests.join(name), contents)
                .unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        }

        // Three ports at once: taken one by one, the same free port can come back twice.
        let [http_port, admin_port, https_port] = free_ports::<3>();
        let http = SocketAddr::from((Ipv4Addr::LOCALHOST, http_port));
        let admin = SocketAddr::from((Ipv4Addr::LOCALHOST, admin_port));
        let stdout = File::create(root.path().join("stdout.log")).expect("cannot create log");
        let stderr = File::create(root.path().join("stderr.log")).expect("cannot create log");
        let mut command = Command::new(pier_bin());
        command.arg("run");
        if use_manifests {
            command.arg("--manifests").arg(&manifests);
        }
        command
            .args(["--http-listen", &http.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .args(["--threads", "2"])
            // Plain log lines in the captured files.
            .env("NO_COLOR", "1");
        let https = supports_https_listen().then(|| {
            // Keep parallel instances off the default 0.0.0.0:8443.
            let https = SocketAddr::from((Ipv4Addr::LOCALHOST, https_port));
            command.args(["--https-listen", &https.to_string()]);
            https
        });
        command.args(extra_args);
        let spawned = Instant::now();
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn pier run: {e}"));

        let mut pier = Pier {
            child,
            http,
            https,
            admin,
            manifests,
            client: HttpClient::new(),
            ready_after: Duration::ZERO,
            root,
        };
        pier.ready_after = pier.wait_ready(spawned, wait).await;
        pier
    }

    /// Polls `/readyz` until 200 and returns the time since `spawned`; panics (with the logs)
    /// on timeout or if the process exits.
    async fn wait_ready(&mut self, spawned: Instant, wait: ReadyWait) -> Duration {
        let mut last = String::from("not tried");
        while spawned.elapsed() < wait.timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("pier run exited early ({status}); logs:\n{}", self.logs());
            }
            match self.admin_get("/readyz").await {
                Ok(reply) if reply.status == StatusCode::OK => return spawned.elapsed(),
                Ok(reply) => last = reply.summary(),
                Err(err) => last = format!("{err:#}"),
            }
            tokio::time::sleep(wait.poll).await;
        }
        panic!(
            "pier run not ready after {:?} (last /readyz: {last}); logs:\n{}",
            wait.timeout,
            self.logs()
        );
    }

    /// How long the process took from being spawned to answering `/readyz` with 200 (to
    /// within the polling interval).
    pub fn ready_after(&self) -> Duration {
        self.ready_after
    }

    /// The proxy's HTTP listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The proxy's HTTPS listener; panics when this build of pier has none.
    pub fn https_addr(&self) -> SocketAddr {
        self.https.expect("this pier build has no --https-listen")
    }

    /// The admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The watched manifests directory.
    pub fn manifests_dir(&self) -> &Path {
        &self.manifests
    }

    /// Writes (creates or truncates and rewrites) manifest file `name` in place.
    pub fn write(&self, name: &str, contents: &str) {
        let path = self.manifests.join(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    /// Replaces manifest file `name` atomically: writes a file outside the watched directory
    /// (same filesystem) and renames it over `name`.
    pub fn write_atomic(&self, name: &str, contents: &str) {
        let staged = self.root.path().join("staging").join(name);
        std::fs::write(&staged, contents)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", staged.display()));
        let target = self.manifests.join(name);
        std::fs::rename(&staged, &target).unwrap_or_else(|e| {
            panic!(
                "cannot rename {} to {}: {e}",
                staged.display(),
                target.display()
            )
        });
    }

    /// Deletes manifest file `name`.
    pub fn remove(&self, name: &str) {
        let path = self.manifests.join(name);
        std::fs::remove_file(&path)
            .unwrap_or_else(|e| panic!("cannot remove {}: {e}", path.display()));
    }

    /// `GET path` through the proxy with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> anyhow::Result<Reply> {
        self.client.get(self.http, host, path).await
    }

    /// `GET path` on the admin listener.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Reply> {
        let host = self.admin.to_string();
        self.client.get(self.admin, &host, path).await
    }

    /// The `pier_general_path_connections_total` series: client connections the general
    /// path served rather than the HTTP/1.1 fast path, as `(reason, count)`.
    pub async fn general_path_counts(&self) -> Vec<(String, u64)> {
        self.reason_counts("pier_general_path_connections_total")
            .await
    }

    /// HTTP/2 streams the general path served, as `(reason, count)` (the others were the
    /// fast path's).
    pub async fn general_path_stream_counts(&self) -> Vec<(String, u64)> {
        self.reason_counts("pier_general_path_http2_streams_total")
            .await
    }

    /// The series of counter `name`, labelled by `reason`, as `(reason, count)`.
    async fn reason_counts(&self, name: &str) -> Vec<(String, u64)> {
        let metrics = self.admin_get("/metrics").await.expect("metrics").text();
        let prefix = format!("{name}{{reason=\"");
        metrics
            .lines()
            .filter_map(|l| l.strip_prefix(prefix.as_str()))
            .filter_map(|l| l.split_once("\"} "))
            .map(|(reason, n)| (reason.to_string(), n.trim().parse().unwrap_or(0)))
            .collect()
    }

    /// The client used by [`Pier::get`] (keep-alive pool).
    pub fn client(&self) -> &HttpClient {
        &self.client
    }

    /// Polls `host` + `path` until echo backend `name` answers 200; returns how long it took.
    pub async fn wait_for_echo(
        &self,
        host: &str,
        path: &str,
        name: &str,
        within: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        poll_until(within, || async {
            match self.get(host, path).await {
                Ok(r) if r.status == StatusCode::OK && r.echo_name().as_deref() == Some(name) => {
                    Ok(())
                }
                Ok(r) => Err(format!(
                    "{host}{path}: want echo {name}, got {}",
                    r.summary()
                )),
                Err(e) => Err(format!("{host}{path}: {e:#}")),
            }
        })
        .await?;
        Ok(started.elapsed())
    }

    /// Polls `host` + `path` until the proxy answers `status`; returns how long it took.
    pub async fn wait_for_status(
        &self,
        host: &str,
        path: &str,
        status: u16,
        within: Duration,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        poll_until(within, || async {
            match self.get(host, path).await {
                Ok(r) if r.status.as_u16() == status => Ok(()),
                Ok(r) => Err(format!("{host}{path}: want {status}, got {}", r.summary())),
                Err(e) => Err(format!("{host}{path}: {e:#}")),
            }
        })
        .await?;
        Ok(started.elapsed())
    }

    /// The process id, to send it signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `within` for the process to exit; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Whether any line pier wrote (stderr or stdout, the whole run) contains `text`.
    pub fn log_contains(&self, text: &str) -> bool {
        ["stderr.log", "stdout.log"].iter().any(|name| {
            std::fs::read_to_string(self.root.path().join(name)).is_ok_and(|log| log.contains(text))
        })
    }

    /// Everything the process wrote to standard output so far (the access log goes there).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.root.path().join("stdout.log")).unwrap_or_default()
    }

    /// The last lines of the process's stderr and stdout.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "stdout.log"] {
            let text = std::fs::read_to_string(self.root.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
            out.push_str(&format!(
                "----- pier {name} (last {} of {} lines) -----\n",
                lines.len() - skip,
                lines.len()
            ));
            for line in &lines[skip..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Pier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "pier run (http {}, admin {}, manifests {}):\n{}",
                self.http,
                self.admin,
                self.manifests.display(),
                self.logs()
            );
        }
    }
}

/// How long, and how often, to poll `/readyz` after starting `pier run`.
#[derive(Debug, Clone, Copy)]
pub struct ReadyWait {
    /// Give up (panic with the logs) after this long.
    pub timeout: Duration,
    /// Time between two polls.
    pub poll: Duration,
}

impl Default for ReadyWait {
    fn default() -> Self {
        ReadyWait {
            timeout: READY_TIMEOUT,
            poll: READY_POLL,
        }
    }
}

/// Whether this build of `pier run` has `--https-listen` (checked once per test binary).
fn supports_https_listen() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| run_supports_flag("--https-listen"))
}
