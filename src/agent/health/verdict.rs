//! What the SLB's health reading says of one pod's backend in one group, purely.

use crate::agent::pods::decide::PodPlace;
use crate::model::{HealthCheck, Listener, Mode};
use crate::slb::BackendHealth;

/// The health of a pod's backend in one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No listener forwarding to the group checks health: registration is all there is.
    NotChecked,
    /// Every checked listener forwarding to the group reports the backend `normal`.
    Healthy,
    /// The listeners, or a health reading taken since the pod began to wait, are not
    /// known yet.
    Unknown,
    /// These checked listener ports do not report the backend `normal` yet.
    Pending { ports: Vec<u16> },
    /// The listener on `port` reports the backend `abnormal`: it failed `check`.
    Abnormal { port: u16, check: HealthCheck },
}

impl Verdict {
    /// True while the gate has to wait for a (newer) health reading.
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Verdict::Unknown | Verdict::Pending { .. } | Verdict::Abnormal { .. }
        )
    }
}

/// The verdict for the pod at `place` in group `group_id` of a Service in `mode`, from the
/// load balancer's `listeners` and a health `reading` of it (`None`: none usable yet).
pub fn verdict(
    mode: Mode,
    place: &PodPlace,
    group_id: &str,
    listeners: &[Listener],
    reading: Option<&[BackendHealth]>,
) -> Verdict {
    let checked: Vec<(u16, HealthCheck)> = listeners
        .iter()
        .filter(|l| l.v_server_group_id.as_deref() == Some(group_id))
        .filter_map(|l| Some((l.port, l.health_check?)))
        .collect();
    if checked.is_empty() {
        return Verdict::NotChecked;
    }
    let Some(reading) = reading else {
        return Verdict::Unknown;
    };
    let mut pending = Vec::new();
    for (port, check) in checked {
        let mut seen = false;
        let mut normal = true;
        for h in reading
            .iter()
            .filter(|h| h.listener_port == port && is_pods(mode, place, h))
        {
            seen = true;
            match h.status.as_str() {
                "normal" => {}
                "abnormal" => return Verdict::Abnormal { port, check },
                _ => normal = false,
            }
        }
        if !seen || !normal {
            pending.push(port);
        }
    }
    if pending.is_empty() {
        Verdict::Healthy
    } else {
        Verdict::Pending { ports: pending }
    }
}

/// Whether a health entry is the pod's backend: its IP (ENI, and a pod on a virtual
/// node), its node (Cluster, Local).
fn is_pods(mode: Mode, place: &PodPlace, h: &BackendHealth) -> bool {
    match place.backend_mode(mode) {
        Mode::Eni => h.server_ip.is_some_and(|ip| place.ips.contains(&ip)),
        Mode::Cluster | Mode::Local => {
            matches!(&place.instance, Some(Some(id)) if *id == h.server_id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ListenerProtocol;

    fn listener(port: u16, group: &str, checked: bool) -> Listener {
        Listener {
            port,
            protocol: ListenerProtocol::Tcp,
            v_server_group_id: Some(group.into()),
            connection_drain: Some(false),
            connection_drain_timeout: None,
            health_check: checked.then_some(HealthCheck::DEFAULT),
        }
    }

    fn health(port: u16, id: &str, ip: &str, status: &str) -> BackendHealth {
        BackendHealth {
            server_id: id.into(),
            server_ip: ip.parse().ok(),
            port: 8080,
            listener_port: port,
            status: status.into(),
        }
    }

    fn eni_pod(ip: &str) -> PodPlace {
        PodPlace {
            ips: vec![ip.parse().unwrap()],
            instance: Some(Some("i-1".into())),
            node_unknown: false,
            virtual_node: false,
        }
    }

    #[test]
    fn a_group_no_listener_checks_is_not_checked_whatever_the_reading() {
        let listeners = [listener(80, "rsp-a", false), listener(81, "rsp-b", true)];
        let reading = [health(80, "eni-1", "10.0.0.5", "unavailable")];
        let v = verdict(
            Mode::Eni,
            &eni_pod("10.0.0.5"),
            "rsp-a",
            &listeners,
            Some(&reading),
        );
        assert_eq!(v, Verdict::NotChecked);
        assert!(!v.waits());
    }

    #[test]
    fn every_checked_listener_of_the_group_must_report_the_pod_normal() {
        let listeners = [listener(80, "rsp-a", true), listener(443, "rsp-a", true)];
        let pod = eni_pod("10.0.0.5");
        let one = [
            health(80, "eni-1", "10.0.0.5", "normal"),
            health(443, "eni-1", "10.0.0.5", "unavailable"),
            // Another pod's backend says nothing of this one.
            health(443, "eni-2", "10.0.0.6", "normal"),
        ];
        let v = verdict(Mode::Eni, &pod, "rsp-a", &listeners, Some(&one));
        assert_eq!(v, Verdict::Pending { ports: vec![443] });
        assert!(v.waits());
        let both = [
            health(80, "eni-1", "10.0.0.5", "normal"),
            health(443, "eni-1", "10.0.0.5", "normal"),
        ];
        assert_eq!(
            verdict(Mode::Eni, &pod, "rsp-a", &listeners, Some(&both)),
            Verdict::Healthy
        );
        // Absent from the reading (not yet applied): pending, not healthy.
        assert_eq!(
            verdict(Mode::Eni, &pod, "rsp-a", &listeners, Some(&both[..1])),
            Verdict::Pending { ports: vec![443] }
        );
        assert_eq!(
            verdict(Mode::Eni, &pod, "rsp-a", &listeners, None),
            Verdict::Unknown
        );
    }

    #[test]
    fn an_abnormal_backend_names_its_listener_and_check() {
        let listeners = [listener(80, "rsp-a", true)];
        let reading = [health(80, "i-1", "192.168.0.1", "abnormal")];
        let node_pod = PodPlace {
            ips: vec!["10.0.0.5".parse().unwrap()],
            instance: Some(Some("i-1".into())),
            node_unknown: false,
            virtual_node: false,
        };
        assert_eq!(
            verdict(
                Mode::Cluster,
                &node_pod,
                "rsp-a",
                &listeners,
                Some(&reading)
            ),
            Verdict::Abnormal {
                port: 80,
                check: HealthCheck::DEFAULT
            }
        );
        // In ENI mode the node's entry is not the pod's backend.
        assert_eq!(
            verdict(Mode::Eni, &node_pod, "rsp-a", &listeners, Some(&reading)),
            Verdict::Pending { ports: vec![80] }
        );
    }
}
