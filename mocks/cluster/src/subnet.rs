//! Claims a loopback subnet (`127.<subnet>.0.0/16`) for one lab run across processes.
//!
//! Every run binds its kube-proxies and pods on `127.<subnet>.x.y`, so two runs on one
//! subnet at the same time (two `race-lab` processes, or a `race-lab` next to the CI
//! test) fail to bind or, worse, reach each other's pods. A claim is a listener on the
//! subnet's claim address, held as long as the run lasts: the kernel gives it to one
//! process at a time, and a crashed process releases it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Port of a subnet's claim address `127.<subnet>.255.254`.
pub const CLAIM_PORT: u16 = 29_999;

/// The lowest and highest subnet a claim may take.
pub const SUBNETS: std::ops::RangeInclusive<u8> = 20..=250;

/// A held subnet; dropping it releases the subnet.
#[derive(Debug)]
pub struct SubnetClaim {
    pub subnet: u8,
    _listener: TcpListener,
}

/// Why no subnet could be claimed.
#[derive(Debug, thiserror::Error)]
#[error("no free loopback subnet in 127.{first}–{last}.0.0/16: every claim address 127.<subnet>.255.254:{CLAIM_PORT} is held (too many lab runs at once?)")]
pub struct NoFreeSubnet {
    pub first: u8,
    pub last: u8,
}

fn claim_addr(subnet: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(127, subnet, 255, 254), CLAIM_PORT))
}

/// Claims the first free subnet at or after `from` (wrapping within [`SUBNETS`]).
pub fn claim_from(from: u8) -> Result<SubnetClaim, NoFreeSubnet> {
    let (lo, hi) = (*SUBNETS.start(), *SUBNETS.end());
    let span = u16::from(hi - lo) + 1;
    let start = u16::from(from.clamp(lo, hi) - lo);
    for i in 0..span {
        let subnet = lo + ((start + i) % span) as u8;
        if let Ok(listener) = TcpListener::bind(claim_addr(subnet)) {
            return Ok(SubnetClaim {
                subnet,
                _listener: listener,
            });
        }
    }
    Err(NoFreeSubnet {
        first: lo,
        last: hi,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_subnet_is_skipped_and_released_on_drop() {
        let a = claim_from(240).unwrap();
        let b = claim_from(a.subnet).unwrap();
        assert_ne!(a.subnet, b.subnet, "held by a");
        let held = a.subnet;
        drop(a);
        let again = claim_from(held).unwrap();
        assert_eq!(again.subnet, held, "released on drop");
        let wrapped = claim_from(255).unwrap();
        assert!(SUBNETS.contains(&wrapped.subnet));
    }
}
