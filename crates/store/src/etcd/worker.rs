//! The store's own thread: a current-thread tokio runtime holding the etcd client, fed with
//! jobs over a channel by the synchronous API.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use etcd_client::{Client, ConnectOptions};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

use super::{EtcdUrl, CONNECT_TIMEOUT, KEEPALIVE, REQUEST_TIMEOUT};
use crate::{Error, Result};

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
/// Work for the store's thread: given the client, a future it runs to completion.
pub(super) type Job = Box<dyn FnOnce(Client) -> BoxFuture + Send>;

/// The channel to a running worker thread; the thread ends when every clone is dropped (the
/// store and each of its watches hold one).
#[derive(Clone)]
pub(super) struct Worker {
    /// The store's URL, for messages.
    pub url: String,
    jobs: UnboundedSender<Job>,
}

impl Worker {
    /// Starts the thread (entering the URL's netns first) and the client inside it.
    pub fn start(url: &EtcdUrl) -> Result<Worker> {
        let text = url.to_url();
        let (jobs, mut rx) = unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let endpoints: Vec<String> = url
            .endpoints
            .iter()
            .map(|e| format!("http://{e}"))
            .collect();
        let netns = url.netns.clone();
        let name = text.clone();
        std::thread::Builder::new()
            .name("weft-etcd".into())
            .spawn(move || {
                if let Some(ns) = &netns {
                    if let Err(e) = enter_netns(ns) {
                        let _ = ready_tx.send(Err(Error::Backend(format!("store {name}: {e}"))));
                        return;
                    }
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Backend(format!(
                            "store {name}: starting its runtime: {e}"
                        ))));
                        return;
                    }
                };
                rt.block_on(async move {
                    let options = ConnectOptions::new()
                        .with_connect_timeout(CONNECT_TIMEOUT)
                        .with_keep_alive(KEEPALIVE, KEEPALIVE)
                        .with_keep_alive_while_idle(true);
                    // The client connects lazily: this does not wait for etcd to answer.
                    let client = match tokio::time::timeout(
                        REQUEST_TIMEOUT,
                        Client::connect(&endpoints, Some(options)),
                    )
                    .await
                    {
                        Ok(Ok(c)) => c,
                        Ok(Err(e)) => {
                            let _ = ready_tx.send(Err(unreachable(&name, "connecting", e)));
                            return;
                        }
                        Err(_) => {
                            let _ = ready_tx.send(Err(unreachable(
                                &name,
                                "connecting",
                                "no answer in time",
                            )));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job(client.clone()));
                    }
                });
            })
            .map_err(|e| Error::Backend(format!("store {text}: starting its thread: {e}")))?;
        ready_rx.recv().map_err(|_| {
            Error::Backend(format!("store {text}: its thread ended while starting"))
        })??;
        Ok(Worker { url: text, jobs })
    }

    /// Hands a job to the thread.
    pub fn spawn(&self, job: Job) -> Result<()> {
        self.jobs
            .send(job)
            .map_err(|_| Error::Backend(format!("store {}: its thread has ended", self.url)))
    }

    /// Runs `f` with the client on the store's thread and waits for its result, at most
    /// [`REQUEST_TIMEOUT`]. `what` names the operation in errors.
    pub fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, etcd_client::Error>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.spawn(Box::new(move |client| {
            Box::pin(async move {
                let r = tokio::time::timeout(REQUEST_TIMEOUT, f(client)).await;
                let _ = tx.send(r);
            })
        }))?;
        let late = || {
            unreachable(
                &self.url,
                what,
                format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()),
            )
        };
        match rx.recv_timeout(REQUEST_TIMEOUT + Duration::from_secs(1)) {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(e))) => Err(unreachable(&self.url, what, describe(&e))),
            Ok(Err(_)) | Err(_) => Err(late()),
        }
    }
}

/// An etcd-client error in a few words: gRPC's message and the innermost cause (e.g.
/// "tcp connect error: Connection refused"), not the whole debug chain.
pub(super) fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(status) => {
            let mut cause = None;
            let mut next = std::error::Error::source(status);
            while let Some(c) = next {
                cause = Some(c.to_string());
                next = c.source();
            }
            match cause {
                Some(c) if !status.message().contains(&c) => format!("{}: {c}", status.message()),
                _ => status.message().to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The error of a request that etcd did not answer well, with what to check.
pub(super) fn unreachable(url: &str, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!(
        "etcd store {url}: {what} failed: {e}; is etcd running and reachable? \
         (a lab's etcd: `weft lab ls` shows it, `weft lab etcd start` starts it again)"
    ))
}

/// Moves the calling thread into the named network namespace for good (this thread is made
/// for it and never leaves).
fn enter_netns(name: &str) -> std::result::Result<(), String> {
    let path = std::path::Path::new("/run/netns").join(name);
    let f = std::fs::File::open(&path).map_err(|e| {
        format!(
            "network namespace {name} ({}): {e}; is the lab up? (weft lab ls)",
            path.display()
        )
    })?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering network namespace {name}: {e} (weft needs root)"))
}
