//! The production wiring: the kube client (in-cluster ServiceAccount, or a kubeconfig), the kernel's
//! routing table, the plugin binary for install and hook validation, the HTTP endpoints, and signals.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::agent::{self, Deps, NodeSource, Sources};
use crate::args::Args;
use crate::hooks::validate::Plugin;
use crate::install::Exec;
use crate::routes::netlink::Kernel;
use crate::status;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read the kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("not running in a cluster ({0}); pass --kubeconfig or --nodes-file")]
    InCluster(String),
    #[error("cannot create the API client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("{0}")]
    Routes(#[from] crate::routes::RouteError),
}

pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, StartError> {
    let config = match kubeconfig {
        Some(p) => {
            let bad = |message: String| StartError::Kubeconfig { path: p.display().to_string(), message };
            let kc = Kubeconfig::read_from(p).map_err(|e| bad(e.to_string()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.map_err(|e| bad(e.to_string()))?
        }
        None => Config::incluster().map_err(|e| StartError::InCluster(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| StartError::Client(e.to_string()))
}

/// The API sources for `args`: nodes always, this node's pods, and the hooks ConfigMap when configured.
pub fn api_sources(client: Client, args: &Args) -> Sources {
    let nodes = crate::watch::nodes(client.clone());
    let configmap = args.hooks_configmap.as_ref().map(|name| crate::watch::configmap(client.clone(), &args.hooks_namespace, name));
    Sources { nodes: NodeSource::Api(nodes.0, nodes.1), pods: Some(crate::watch::pods(client, &args.node_name)), configmap }
}

pub async fn main(args: Args) -> Result<(), StartError> {
    let status = status::shared();
    let listener = crate::http::bind(args.listen).await.map_err(|source| StartError::Listen { addr: args.listen.to_string(), source })?;
    tokio::spawn(crate::http::serve(listener, status.clone()));
    let sources = match &args.nodes_file {
        Some(f) => Sources { nodes: NodeSource::File(f.clone()), pods: None, configmap: None },
        None => api_sources(client(args.kubeconfig.as_deref()).await?, &args),
    };
    let deps = Deps {
        routes: Kernel::connect()?,
        installer: Exec(args.install_options()),
        validator: Plugin { binary: args.plugin.clone(), state_dir: agent::real(args.root.as_deref(), &args.state_dir) },
    };
    agent::run(&args, sources, deps, status, shutdown()).await;
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
