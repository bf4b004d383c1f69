//! ECS 2014-05-26 `DescribeNetworkInterfaces`, enough to resolve pod IPs to ENI ids.

use std::net::IpAddr;

use serde_json::{json, Value};

use super::error::ApiError;
use super::params::Params;
use crate::state::State;

pub const ACTIONS: &[&str] = &["DescribeNetworkInterfaces"];

/// Most `PrivateIpAddress.N` values one call may carry.
pub const MAX_IPS: usize = 100;
/// Default and largest `PageSize` (ECS answers 10 ENIs a page unless asked for more).
pub const DEFAULT_PAGE_SIZE: usize = 10;
pub const MAX_PAGE_SIZE: usize = 500;

pub fn describe_network_interfaces(state: &State, p: &Params) -> Result<Value, ApiError> {
    p.required("RegionId")?;
    let ips = p.indexed("PrivateIpAddress")?;
    if ips.len() > MAX_IPS || ips.iter().any(|(n, _)| *n == 0 || *n as usize > MAX_IPS) {
        return Err(ApiError::invalid(
            "PrivateIpAddress.N",
            &format!("{} values (at most {MAX_IPS})", ips.len()),
        ));
    }
    let ips: Vec<IpAddr> = ips
        .iter()
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| ApiError::invalid("PrivateIpAddress.N", v))
        })
        .collect::<Result<_, _>>()?;
    let ids: Vec<&str> = p
        .indexed("NetworkInterfaceId")?
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    let page_number = match p.opt_u32("PageNumber")? {
        None => 1,
        Some(0) => return Err(ApiError::invalid("PageNumber", "0")),
        Some(n) => n as usize,
    };
    let page_size = match p.opt_u32("PageSize")? {
        None => DEFAULT_PAGE_SIZE,
        Some(n) if (1..=MAX_PAGE_SIZE as u32).contains(&n) => n as usize,
        Some(n) => return Err(ApiError::invalid("PageSize", &n.to_string())),
    };
    // A set: an account with thousands of ENIs is scanned once per call, not per IP.
    let wanted: std::collections::HashSet<&IpAddr> = ips.iter().collect();
    let matching: Vec<_> = state
        .enis
        .values()
        .filter(|e| wanted.is_empty() || e.ips.iter().any(|ip| wanted.contains(ip)))
        .filter(|e| ids.is_empty() || ids.contains(&e.id.as_str()))
        .collect();
    let total = matching.len();
    let sets: Vec<Value> = matching
        .into_iter()
        .skip((page_number - 1) * page_size)
        .take(page_size)
        .map(|e| {
            let primary = e.ips.first().map(|ip| ip.to_string()).unwrap_or_default();
            let private: Vec<Value> = e
                .ips
                .iter()
                .enumerate()
                .map(|(i, ip)| json!({"PrivateIpAddress": ip.to_string(), "Primary": i == 0}))
                .collect();
            json!({
                "NetworkInterfaceId": e.id,
                "PrivateIpAddress": primary,
                "PrivateIpSets": {"PrivateIpSet": private},
                "Type": "Secondary",
                "Status": "InUse",
            })
        })
        .collect();
    Ok(json!({
        "NetworkInterfaceSets": {"NetworkInterfaceSet": sets},
        "TotalCount": total,
        "PageNumber": page_number,
        "PageSize": page_size,
        "NextToken": "",
    }))
}
