//! The production [`SlbApi`](crate::slb::SlbApi): Alibaba Cloud RPC-style OpenAPI calls
//! (SLB 2014-05-15, ECS 2014-05-26) with our own signature v1 ([`sign`]) over the
//! process's one keep-alive HTTPS client ([`crate::slb::http`]). Why, and what it costs
//! against the vendor's SDK: `transport.rs`.

mod actions;
pub mod args;
mod backends;
mod decode;
mod listeners;
pub mod sign;
mod transport;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::batch::DEFAULT_BATCH_SIZE;
use super::credentials::CredentialsProvider;
use super::SlbMetrics;
use transport::{Endpoint, Transport};
use wire::{SignedHttp, Wire};

/// SLB API version.
pub const SLB_API_VERSION: &str = "2014-05-15";
/// ECS API version (for `DescribeNetworkInterfaces`).
pub const ECS_API_VERSION: &str = "2014-05-26";
/// `DescribeNetworkInterfaces` accepts at most 100 `PrivateIpAddress.N` per call.
pub const ENI_IPS_PER_CALL: usize = 100;

/// Where and how the client calls.
#[derive(Debug, Clone)]
pub struct RpcConfig {
    /// Region of the SLB instances, sent as `RegionId` on every call.
    pub region_id: String,
    /// Overrides `https://slb.<region>.aliyuncs.com/` (VPC endpoints, tests, the mock).
    pub slb_endpoint: Option<String>,
    /// Overrides `https://ecs.<region>.aliyuncs.com/`.
    pub ecs_endpoint: Option<String>,
    /// Deadline for each call, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// Backends per write call (the SLB accepts at most 20).
    pub batch_size: usize,
}

impl RpcConfig {
    pub fn new(region_id: impl Into<String>) -> Self {
        RpcConfig {
            region_id: region_id.into(),
            slb_endpoint: None,
            ecs_endpoint: None,
            timeout: Duration::from_secs(10),
            batch_size: DEFAULT_BATCH_SIZE,
        }
    }

    pub fn slb_endpoint_url(&self) -> String {
        endpoint_url(self.slb_endpoint.as_deref(), "slb", &self.region_id)
    }

    pub fn ecs_endpoint_url(&self) -> String {
        endpoint_url(self.ecs_endpoint.as_deref(), "ecs", &self.region_id)
    }
}

/// `overridden` as a URL (a bare host gets `https://`), or the product's regional public
/// endpoint; always ending in `/`.
pub(crate) fn endpoint_url(overridden: Option<&str>, product: &str, region: &str) -> String {
    let url = match overridden.map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) if url.contains("://") => url.to_string(),
        Some(host) => format!("https://{host}"),
        None => format!("https://{product}.{region}.aliyuncs.com"),
    };
    // The query follows directly (`/?Signature=…`); the signed path is `/`.
    if url.ends_with('/') {
        url
    } else {
        format!("{url}/")
    }
}

/// The SLB/ECS client the agent runs with.
pub struct RpcSlbClient {
    transport: Transport,
    slb: Endpoint,
    ecs: Endpoint,
    batch_size: usize,
}

impl fmt::Debug for RpcSlbClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RpcSlbClient")
            .field("region_id", &self.transport.region_id)
            .field("slb", &self.slb)
            .field("ecs", &self.ecs)
            .field("timeout", &self.transport.timeout)
            .field("batch_size", &self.batch_size)
            .field("credentials", &self.transport.credentials)
            .field("wire", &self.transport.wire)
            .finish()
    }
}

impl RpcSlbClient {
    pub fn new(config: RpcConfig, credentials: Arc<dyn CredentialsProvider>) -> Self {
        RpcSlbClient {
            slb: Endpoint {
                url: config.slb_endpoint_url(),
                version: SLB_API_VERSION,
            },
            ecs: Endpoint {
                url: config.ecs_endpoint_url(),
                version: ECS_API_VERSION,
            },
            batch_size: config.batch_size.max(1),
            transport: Transport {
                wire: Arc::new(SignedHttp::default()),
                credentials,
                region_id: config.region_id,
                timeout: config.timeout,
                metrics: None,
                budget: None,
            },
        }
    }

    /// Takes a token of `budget` before every HTTP request (an action reading listeners
    /// costs several), so the configured rate is what the API sees; the executor waits
    /// on the same budget rather than pacing calls itself.
    pub fn with_budget(mut self, budget: std::sync::Arc<crate::slb::budget::Budget>) -> Self {
        self.transport.budget = Some(budget);
        self
    }

    /// Sends through `wire` instead of [`SignedHttp`] over the shared client (benchmarks
    /// compare other transports on the same calls).
    pub fn with_wire(mut self, wire: Arc<dyn Wire>) -> Self {
        self.transport.wire = wire;
        self
    }

    /// Records every call in `metrics`.
    pub fn with_metrics(mut self, metrics: SlbMetrics) -> Self {
        self.transport.metrics = Some(metrics);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_the_region_and_accept_overrides() {
        let mut c = RpcConfig::new("cn-hangzhou");
        assert_eq!(
            c.slb_endpoint_url(),
            "https://slb.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(
            c.ecs_endpoint_url(),
            "https://ecs.cn-hangzhou.aliyuncs.com/"
        );
        c.slb_endpoint = Some("http://127.0.0.1:8080".into());
        c.ecs_endpoint = Some("slb-vpc.cn-hangzhou.aliyuncs.com".into());
        assert_eq!(c.slb_endpoint_url(), "http://127.0.0.1:8080/");
        assert_eq!(
            c.ecs_endpoint_url(),
            "https://slb-vpc.cn-hangzhou.aliyuncs.com/"
        );
    }
}
