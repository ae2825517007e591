//! A minimal Kubernetes API server for the e2e tests (design.md §8: no real one can run
//! here). In-memory objects with resourceVersion; list, watch (chunked `ADDED`/`MODIFIED`/
//! `DELETED`/`BOOKMARK` events, 410 Gone on a compacted resourceVersion), get, create, update,
//! merge and JSON patch, the status subresource, Leases and Events — over plain HTTP on
//! loopback, reached by kube-rs through a kubeconfig.
//!
//! It can be stopped and started again on the same port with its objects intact, to test
//! what pier does while the API server is away.

mod http;
mod objects;
mod patch;
mod select;
mod state;

pub use objects::{apply_yaml, delete_yaml, resource_of};
pub use state::{ApiError, Change, ResourceType, State, RESOURCES};

use crate::tempdir::TempDir;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running (or stopped) test API server; stopped on drop.
#[derive(Debug)]
pub struct ApiServer {
    state: Arc<State>,
    addr: SocketAddr,
    running: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    kubeconfig: PathBuf,
    _dir: TempDir,
}

impl ApiServer {
    /// Starts an empty server on a free loopback port and writes a kubeconfig for it.
    pub async fn start() -> ApiServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("cannot bind the API server");
        let addr = listener.local_addr().expect("bound address");
        let dir = TempDir::new("apiserver");
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(addr)).expect("cannot write kubeconfig");
        let mut server = ApiServer {
            state: Arc::new(State::default()),
            addr,
            running: None,
            kubeconfig,
            _dir: dir,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            let mut stopped_accept = stopped.clone();
            loop {
                let stream = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => stream,
                        Err(_) => continue,
                    },
                    _ = stopped_accept.changed() => return,
                };
                let state = state.clone();
                let mut stopped_conn = stopped.clone();
                let stopped_req = stopped.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        http::handle(state.clone(), stopped_req.clone(), req)
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection closes the socket: clients see the server vanish.
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped_conn.changed() => {}
                    }
                });
            }
        });
        self.running = Some((stop, task));
    }

    /// Stops listening and closes every connection (watches included); objects are kept.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Listens again on the same port, with the same objects.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = TcpListener::bind(self.addr)
            .await
            .expect("cannot re-bind the API server port");
        self.serve(listener);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig pointing at this server (namespace `default`).
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// The objects, for direct inspection and for [`State::compact`].
    pub fn state(&self) -> &State {
        &self.state
    }

    /// A kube-rs client of this server, default namespace `default`.
    pub fn client(&self) -> kube::Client {
        let url = self.url().parse().expect("valid URL");
        let config = kube::Config::new(url);
        kube::Client::try_from(config).expect("kube client")
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(true);
            task.abort();
        }
    }
}

fn kubeconfig_yaml(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: e2e\n  cluster:\n    server: http://{addr}\n\
         users:\n- name: e2e\n  user:\n    token: e2e\ncontexts:\n- name: e2e\n  context:\n    \
         cluster: e2e\n    user: e2e\n    namespace: default\ncurrent-context: e2e\n"
    )
}

#[cfg(test)]
mod tests;
