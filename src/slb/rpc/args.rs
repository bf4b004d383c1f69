//! The SLB client's flags of `slb-sync run`: where the API is, who calls it (the
//! credential flags, flattened here so `--help` keeps them beside the endpoints) and how
//! fast, with their translation into [`RpcConfig`] and [`CredentialsConfig`] (the call
//! budget goes to the executor's limits, wired in `crate::cli::run`).

use std::num::NonZeroU32;
use std::time::Duration;

use clap::Args;

use super::RpcConfig;
use crate::slb::credentials::args::CredentialsArgs;
use crate::slb::credentials::CredentialsConfig;

/// The SLB and ECS API: endpoints, credentials and the call budget.
#[derive(Debug, Clone, Args)]
pub struct SlbArgs {
    /// Region of the SLB instances, e.g. cn-hangzhou.
    #[arg(long, env = "ALIBABA_CLOUD_REGION_ID")]
    pub region: String,
    /// SLB API endpoint URL; default https://slb.<region>.aliyuncs.com/ (set a VPC endpoint
    /// here).
    #[arg(long, value_name = "URL", env = "SLB_SYNC_SLB_ENDPOINT")]
    pub slb_endpoint: Option<String>,
    /// ECS API endpoint URL (ENI lookups); default https://ecs.<region>.aliyuncs.com/.
    #[arg(long, value_name = "URL", env = "SLB_SYNC_ECS_ENDPOINT")]
    pub ecs_endpoint: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialsArgs,
    /// Sustained SLB API calls per second, all instances together.
    #[arg(long, env = "SLB_SYNC_QPS", default_value_t = 5.0, value_parser = positive_rate)]
    pub qps: f64,
    /// SLB API calls that may go at once after a quiet period.
    #[arg(long, env = "SLB_SYNC_BURST", default_value_t = NonZeroU32::new(10).expect("not zero"))]
    pub burst: NonZeroU32,
    /// Deadline of each SLB API call, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        env = "SLB_SYNC_CALL_TIMEOUT_SECONDS",
        default_value_t = 10
    )]
    pub call_timeout_seconds: u64,
}

impl SlbArgs {
    pub fn rpc_config(&self) -> RpcConfig {
        let mut config = RpcConfig::new(&self.region);
        config.slb_endpoint = self.slb_endpoint.clone();
        config.ecs_endpoint = self.ecs_endpoint.clone();
        config.timeout = self.call_timeout();
        config
    }

    pub fn credentials(&self) -> CredentialsConfig {
        self.credentials.config(&self.region)
    }

    /// The deadline of each call.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_seconds)
    }
}

/// A call rate above zero: `--qps 0` would stop every call, not mean "unlimited".
fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        Ok(_) => Err(format!(
            "{value} calls per second would stop every SLB call; give a rate above 0, e.g. 5"
        )),
        Err(err) => Err(format!(
            "{value} is not a number of calls per second: {err}"
        )),
    }
}
