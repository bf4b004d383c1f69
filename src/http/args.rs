//! The HTTP server's flag of `slb-sync run`.

use std::net::SocketAddr;

use clap::Args;

use crate::k8s::names::DEFAULT_HTTP_ADDR;

/// Where `/metrics`, `/healthz`, `/readyz` and the drain API listen.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address of /metrics, /healthz, /readyz and the drain API.
    #[arg(long, value_name = "ADDR", env = "SLB_SYNC_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: SocketAddr,
}
