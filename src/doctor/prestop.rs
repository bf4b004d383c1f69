//! What a container's preStop hook does, as far as keeping the process serving goes.
//!
//! Only the shapes people actually write are recognised: `slb-sync wait-drained`, `sleep
//! N` (exec, or inside `sh -c`), and the built-in `sleep` action. Anything else is
//! reported as "cannot tell", never guessed.

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

/// The waiting a preStop hook does before the container gets SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PreStop {
    /// No preStop hook: SIGTERM goes out while the SLB may still send traffic.
    Missing,
    /// `slb-sync wait-drained`: returns when the agent confirms the drain, or at `timeout`.
    WaitDrained {
        /// `--timeout` seconds; `None` when not given.
        timeout: Option<u32>,
        /// Whether `--pod`/`--namespace` are given (otherwise POD_NAME/POD_NAMESPACE).
        names_pod: bool,
    },
    /// A fixed sleep of this many seconds.
    Sleep(u32),
    /// A hook whose duration cannot be read from the manifest (an HTTP call, a script).
    Unknown(String),
}

impl PreStop {
    /// Seconds the hook may keep the container alive, when that can be read.
    pub(super) fn seconds(&self) -> Option<u32> {
        match self {
            PreStop::WaitDrained { timeout, .. } => *timeout,
            PreStop::Sleep(n) => Some(*n),
            PreStop::Missing | PreStop::Unknown(_) => None,
        }
    }
}

/// Reads a container's preStop hook.
pub(super) fn of(container: &Container) -> PreStop {
    let Some(hook) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
    else {
        return PreStop::Missing;
    };
    classify(hook)
}

fn classify(hook: &LifecycleHandler) -> PreStop {
    if let Some(sleep) = &hook.sleep {
        return PreStop::Sleep(u32::try_from(sleep.seconds).unwrap_or(0));
    }
    if hook.http_get.is_some() {
        return PreStop::Unknown("an httpGet hook".to_owned());
    }
    if hook.tcp_socket.is_some() {
        return PreStop::Unknown("a tcpSocket hook".to_owned());
    }
    let Some(command) = hook.exec.as_ref().and_then(|e| e.command.as_ref()) else {
        return PreStop::Unknown("an empty hook".to_owned());
    };
    // `sh -c "…"`: read the script's words.
    let words: Vec<String> = match command.as_slice() {
        [shell, flag, script, ..] if is_shell(shell) && flag == "-c" => {
            script.split_whitespace().map(str::to_owned).collect()
        }
        _ => command.clone(),
    };
    if let Some(i) = words.iter().position(|w| w == "wait-drained") {
        let args = &words[i + 1..];
        let flag = |name: &str| -> Option<&str> {
            args.iter().enumerate().find_map(|(j, a)| {
                if a == name {
                    args.get(j + 1).map(String::as_str)
                } else {
                    a.strip_prefix(name)?.strip_prefix('=')
                }
            })
        };
        return PreStop::WaitDrained {
            timeout: flag("--timeout").and_then(parse_seconds),
            names_pod: flag("--pod").is_some() && flag("--namespace").is_some(),
        };
    }
    if words.len() == 2 && words[0].rsplit('/').next() == Some("sleep") {
        if let Some(n) = parse_seconds(&words[1]) {
            return PreStop::Sleep(n);
        }
    }
    PreStop::Unknown(format!("the command {:?}", command.join(" ")))
}

fn is_shell(program: &str) -> bool {
    matches!(
        program.rsplit('/').next(),
        Some("sh" | "bash" | "ash" | "dash")
    )
}

/// `30`, `30s`; other units and fractions are not guessed.
fn parse_seconds(value: &str) -> Option<u32> {
    let value = value.trim_end_matches(';');
    value.strip_suffix('s').unwrap_or(value).parse().ok()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, SleepAction};

    use super::*;

    fn exec(cmd: &[&str]) -> Container {
        Container {
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(cmd.iter().map(|s| s.to_string()).collect()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn recognises_the_shapes_people_write() {
        assert_eq!(of(&Container::default()), PreStop::Missing);
        assert_eq!(
            of(&exec(&[
                "/slb-sync/slb-sync",
                "wait-drained",
                "--agent",
                "http://a:8080",
                "--timeout",
                "60"
            ])),
            PreStop::WaitDrained {
                timeout: Some(60),
                names_pod: false
            }
        );
        assert_eq!(
            of(&exec(&[
                "slb-sync",
                "wait-drained",
                "--timeout=45",
                "--pod",
                "p",
                "--namespace",
                "n"
            ])),
            PreStop::WaitDrained {
                timeout: Some(45),
                names_pod: true
            }
        );
        assert_eq!(of(&exec(&["sleep", "40"])), PreStop::Sleep(40));
        assert_eq!(
            of(&exec(&["/bin/sh", "-c", "sleep 25s"])),
            PreStop::Sleep(25)
        );
        assert!(matches!(
            of(&exec(&["/bin/sh", "-c", "nginx -s quit"])),
            PreStop::Unknown(_)
        ));
        let builtin = Container {
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction { seconds: 50 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(of(&builtin), PreStop::Sleep(50));
    }
}
