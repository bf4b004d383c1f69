//! Reading an instance's listeners: their vServer group, connection drain and health
//! check, which decide how long a drain lasts and whether it waits for a replacement's
//! health (docs/architecture.md, "API hygiene").
//!
//! `DescribeLoadBalancerListeners` answers every listener of an instance with its
//! settings in one call. The older way, `DescribeLoadBalancerAttribute` for the ports and
//! one `Describe<Protocol>ListenerAttribute` per listener, costs 1 + N calls of a budget
//! of a few per second, and it is on the path of the first drain of every instance after
//! a start. It stays as the fallback for an endpoint that refuses the newer action.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::actions::p;
use super::decode;
use super::RpcSlbClient;
use crate::model::HealthCheck;
use crate::slb::{ErrorClass, Listener, ListenerProtocol, SlbError, LISTENER_READ_BATCH};

const LIST: &str = "DescribeLoadBalancerListeners";
/// The most listeners one page may hold.
const PAGE: usize = 100;
/// Pages followed before the answer is taken as runaway (10,000 listeners).
const MAX_PAGES: usize = 100;

impl RpcSlbClient {
    /// Every listener of `load_balancer_id`, with its settings.
    pub(super) async fn listeners_of(
        &self,
        load_balancer_id: &str,
    ) -> Result<Vec<Listener>, SlbError> {
        match self.list_listeners(&[load_balancer_id.to_owned()]).await {
            Err(error) if refused_action(&error) => {
                tracing::debug!(%load_balancer_id, code = %error.code,
                    "DescribeLoadBalancerListeners refused; describing listeners one by one");
                self.listeners_one_by_one(load_balancer_id).await
            }
            other => Ok(other?.remove(load_balancer_id).unwrap_or_default()),
        }
    }

    /// Every listener of each of `load_balancer_ids` (at most [`LISTENER_READ_BATCH`]),
    /// in one paged `DescribeLoadBalancerListeners` when the endpoint allows it. When it
    /// refuses the instances together (one of them gone, say), each is asked alone, and
    /// an instance whose own read fails is left out unless all fail.
    pub(super) async fn listeners_of_many(
        &self,
        load_balancer_ids: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        if load_balancer_ids.is_empty() {
            return Ok(HashMap::new());
        }
        match self.list_listeners(load_balancer_ids).await {
            Err(error) if load_balancer_ids.len() > 1 && error.class == ErrorClass::Permanent => {
                tracing::debug!(code = %error.code,
                    "DescribeLoadBalancerListeners of several instances refused; asking each alone");
                let mut found = HashMap::with_capacity(load_balancer_ids.len());
                let mut last_error = error;
                for id in load_balancer_ids {
                    match self.listeners_of(id).await {
                        Ok(listeners) => {
                            found.insert(id.clone(), listeners);
                        }
                        Err(error) => last_error = error,
                    }
                }
                if found.is_empty() {
                    return Err(last_error);
                }
                Ok(found)
            }
            Err(error) if refused_action(&error) => {
                let only = &load_balancer_ids[0];
                Ok(HashMap::from([(
                    only.clone(),
                    self.listeners_one_by_one(only).await?,
                )]))
            }
            other => other,
        }
    }

    async fn list_listeners(
        &self,
        load_balancer_ids: &[String],
    ) -> Result<HashMap<String, Vec<Listener>>, SlbError> {
        if load_balancer_ids.len() > LISTENER_READ_BATCH {
            return Err(SlbError::local(
                LIST,
                ErrorClass::Permanent,
                "InvalidParameter",
                format!(
                    "{} instances asked for at once; the API takes at most {LISTENER_READ_BATCH}",
                    load_balancer_ids.len()
                ),
            ));
        }
        let mut found: HashMap<String, Vec<Listener>> = load_balancer_ids
            .iter()
            .map(|id| (id.clone(), Vec::new()))
            .collect();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params: Vec<_> = load_balancer_ids
                .iter()
                .enumerate()
                .map(|(n, id)| p(&format!("LoadBalancerId.{}", n + 1), id))
                .collect();
            params.push(p("MaxResults", PAGE));
            if let Some(token) = &token {
                params.push(p("NextToken", token));
            }
            let answer = self.slb(LIST, params).await?;
            for entry in decode::list(&answer, "Listeners", "Listener") {
                let named = decode::string(entry, "LoadBalancerId").filter(|id| !id.is_empty());
                let owner = match (named, load_balancer_ids) {
                    (Some(id), _) => id,
                    // One instance asked for: an entry that does not say is its.
                    (None, [only]) => only.clone(),
                    (None, _) => {
                        return Err(SlbError::local(
                            LIST,
                            ErrorClass::Permanent,
                            "InvalidResponse",
                            "a listener of several instances asked for names no instance",
                        ))
                    }
                };
                // An answer about an instance not asked for is not ours to use.
                let Some(listeners) = found.get_mut(&owner) else {
                    continue;
                };
                if let Some(listener) = listed(entry) {
                    listeners.push(listener);
                }
            }
            token = decode::string(&answer, "NextToken").filter(|t| !t.is_empty());
            if token.is_none() {
                for listeners in found.values_mut() {
                    listeners.sort_by_key(|l: &Listener| (l.port, l.protocol));
                    listeners.dedup_by_key(|l| (l.port, l.protocol));
                }
                return Ok(found);
            }
        }
        Err(SlbError::local(
            LIST,
            ErrorClass::Unavailable,
            "InvalidResponse",
            format!(
                "more than {MAX_PAGES} pages of listeners for {}",
                load_balancer_ids.join(",")
            ),
        ))
    }

    async fn listeners_one_by_one(
        &self,
        load_balancer_id: &str,
    ) -> Result<Vec<Listener>, SlbError> {
        let answer = self
            .slb(
                "DescribeLoadBalancerAttribute",
                vec![p("LoadBalancerId", load_balancer_id)],
            )
            .await?;
        let mut entries = decode::list(
            &answer,
            "ListenerPortsAndProtocol",
            "ListenerPortAndProtocol",
        );
        if entries.is_empty() {
            // Older answers carry the misspelled twin.
            entries = decode::list(
                &answer,
                "ListenerPortsAndProtocal",
                "ListenerPortAndProtocal",
            );
        }
        let found: BTreeSet<(u16, ListenerProtocol)> = entries
            .into_iter()
            .filter_map(|e| {
                let port = decode::port(e, "ListenerPort")?;
                let protocol = decode::string(e, "ListenerProtocol")
                    .or_else(|| decode::string(e, "ListenerProtocal"))
                    .and_then(|t| parse_protocol(&t))?;
                Some((port, protocol))
            })
            .collect();
        let mut listeners = Vec::with_capacity(found.len());
        for (port, protocol) in found {
            let action = match protocol {
                ListenerProtocol::Tcp => "DescribeLoadBalancerTCPListenerAttribute",
                ListenerProtocol::Udp => "DescribeLoadBalancerUDPListenerAttribute",
                ListenerProtocol::Http => "DescribeLoadBalancerHTTPListenerAttribute",
                ListenerProtocol::Https => "DescribeLoadBalancerHTTPSListenerAttribute",
            };
            let answer = self
                .slb(
                    action,
                    vec![
                        p("LoadBalancerId", load_balancer_id),
                        p("ListenerPort", port),
                    ],
                )
                .await?;
            listeners.push(listener(port, protocol, &answer, &answer));
        }
        Ok(listeners)
    }
}

/// The endpoint does not know `DescribeLoadBalancerListeners` (an older or private
/// endpoint), or the RAM policy predates it (an upgrade that kept the old policy): a
/// permanent refusal of the action, not of the instance.
fn refused_action(error: &SlbError) -> bool {
    error.class == ErrorClass::Permanent
        && (error.code.starts_with("InvalidAction")
            || error.code.starts_with("UnsupportedOperation")
            || error.code.starts_with("Forbidden")
            || error.code == "NoPermission")
}

/// One entry of a `DescribeLoadBalancerListeners` answer: the listener's settings sit in
/// a `<PROTOCOL>ListenerConfig` object next to its port and group.
fn listed(entry: &Value) -> Option<Listener> {
    let port = decode::port(entry, "ListenerPort")?;
    let protocol = decode::string(entry, "ListenerProtocol").and_then(|t| parse_protocol(&t))?;
    let config_key = match protocol {
        ListenerProtocol::Tcp => "TCPListenerConfig",
        ListenerProtocol::Udp => "UDPListenerConfig",
        ListenerProtocol::Http => "HTTPListenerConfig",
        ListenerProtocol::Https => "HTTPSListenerConfig",
    };
    let config = decode::field(entry, config_key)
        .filter(|c| c.is_object())
        .unwrap_or(&Value::Null);
    Some(listener(port, protocol, entry, config))
}

/// A listener from where its group is named (`top`) and where its settings are
/// (`settings`; the same object in a `Describe*ListenerAttribute` answer).
fn listener(port: u16, protocol: ListenerProtocol, top: &Value, settings: &Value) -> Listener {
    let has_drain = matches!(protocol, ListenerProtocol::Tcp | ListenerProtocol::Udp);
    let connection_drain = has_drain.then(|| {
        decode::string(settings, "ConnectionDrain").is_some_and(|v| v.eq_ignore_ascii_case("on"))
    });
    let connection_drain_timeout = if has_drain {
        decode::uint(settings, "ConnectionDrainTimeout")
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
    } else {
        None
    };
    Listener {
        port,
        protocol,
        v_server_group_id: decode::string(top, "VServerGroupId"),
        connection_drain,
        connection_drain_timeout,
        health_check: health_check(settings),
    }
}

/// The health check of a listener's settings (`HealthCheck`, or `HealthCheckSwitch` in
/// newer answers, `on`); fields they omit take the API's defaults.
fn health_check(settings: &Value) -> Option<HealthCheck> {
    let on = decode::string(settings, "HealthCheck")
        .or_else(|| decode::string(settings, "HealthCheckSwitch"))
        .is_some_and(|v| v.eq_ignore_ascii_case("on"));
    if !on {
        return None;
    }
    let field = |name: &str, default: u32| {
        decode::uint(settings, name)
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
            .unwrap_or(default)
    };
    let d = HealthCheck::DEFAULT;
    Some(HealthCheck {
        interval_secs: field("HealthCheckInterval", d.interval_secs),
        healthy_threshold: field("HealthyThreshold", d.healthy_threshold),
        unhealthy_threshold: field("UnhealthyThreshold", d.unhealthy_threshold),
    })
}

fn parse_protocol(text: &str) -> Option<ListenerProtocol> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Some(ListenerProtocol::Tcp),
        "udp" => Some(ListenerProtocol::Udp),
        "http" => Some(ListenerProtocol::Http),
        "https" => Some(ListenerProtocol::Https),
        _ => None,
    }
}
