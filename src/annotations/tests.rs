use super::*;
use proptest::prelude::*;

fn mk_annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn invalid_key(errors: &[AnnotationError]) -> Vec<&'static str> {
    errors
        .iter()
        .map(|e| match e {
            AnnotationError::Missing { key, .. } | AnnotationError::Invalid { key, .. } => *key,
        })
        .collect()
}

#[test]
fn full_spec_parses() {
    let spec = parse(&mk_annotations(&[
        (LB_ID, "lb-2ze123"),
        (VGROUP_PORT, "rsp-a:80, rsp-b:443"),
        (CONNECTION_DRAIN, "on"),
        (CONNECTION_DRAIN_TIMEOUT, "30"),
        (REMOVE_UNSCHEDULED_BACKEND, "On"),
        (BACKEND_LABEL, "pool=web,example.com/zone=a"),
        (BACKEND_TYPE, "eni"),
    ]))
    .unwrap();
    assert_eq!(spec.load_balancer_id, "lb-2ze123");
    assert_eq!(
        spec.vgroup_ports.get(&80).map(String::as_str),
        Some("rsp-a")
    );
    assert_eq!(
        spec.vgroup_ports.get(&443).map(String::as_str),
        Some("rsp-b")
    );
    assert_eq!(spec.connection_drain, Some(true));
    assert_eq!(spec.connection_drain_timeout, Some(30));
    assert!(spec.remove_unscheduled_backend);
    assert_eq!(
        spec.backend_labels,
        vec![
            ("pool".to_owned(), "web".to_owned()),
            ("example.com/zone".to_owned(), "a".to_owned())
        ]
    );
    assert_eq!(spec.backend_type, Some(BackendType::Eni));
    assert_eq!(spec.drain_window_secs(45), 30);
}

#[test]
fn minimal_spec_uses_defaults() {
    let spec = parse(&mk_annotations(&[(LB_ID, "lb-1")])).unwrap();
    assert!(spec.vgroup_ports.is_empty());
    assert_eq!(spec.connection_drain, None);
    assert!(!spec.remove_unscheduled_backend);
    assert_eq!(spec.backend_type, None);
    assert_eq!(
        spec.drain_window_secs(45),
        45,
        "drain off uses the agent default"
    );
}

#[test]
fn drain_timeout_without_drain_on_keeps_default_window() {
    let spec = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (CONNECTION_DRAIN, "off"),
        (CONNECTION_DRAIN_TIMEOUT, "300"),
    ]))
    .unwrap();
    assert_eq!(spec.drain_window_secs(30), 30);
}

#[test]
fn missing_id_is_reported_with_fix() {
    let errors = parse(&BTreeMap::new()).unwrap_err();
    assert_eq!(invalid_key(&errors), vec![LB_ID]);
    assert!(errors[0].to_string().contains("SLB instance id"));
}

#[test]
fn each_bad_value_names_key_value_and_format() {
    let cases: &[(&str, &str, &str)] = &[
        (LB_ID, "lb 1", "SLB instance id"),
        (VGROUP_PORT, "rsp-a", "<vServerGroupId>:<servicePort>"),
        (VGROUP_PORT, "rsp-a:0", "1-65535"),
        (VGROUP_PORT, "rsp-a:70000", "1-65535"),
        (VGROUP_PORT, "rsp-a:80,rsp-b:80", "listed twice"),
        (CONNECTION_DRAIN, "yes", "on or off"),
        (CONNECTION_DRAIN_TIMEOUT, "9", "10 to 900"),
        (CONNECTION_DRAIN_TIMEOUT, "901", "10 to 900"),
        (CONNECTION_DRAIN_TIMEOUT, "1.5", "10 to 900"),
        (REMOVE_UNSCHEDULED_BACKEND, "true", "on or off"),
        (BACKEND_LABEL, "pool", "key=value"),
        (BACKEND_LABEL, "-bad=x", "label key"),
        (BACKEND_LABEL, "pool=x y", "label value"),
        (BACKEND_TYPE, "vpc", "eni or ecs"),
    ];
    for (key, value, expected) in cases {
        let mut annotations = mk_annotations(&[(key, value)]);
        if *key != LB_ID {
            annotations.insert(LB_ID.to_owned(), "lb-1".to_owned());
        }
        let errors = parse(&annotations).expect_err(value);
        assert_eq!(invalid_key(&errors), vec![*key], "{key}={value}");
        let message = errors[0].to_string();
        assert!(message.contains(key), "{message}");
        assert!(message.contains(value), "{message}");
        assert!(message.contains(expected), "{message} lacks {expected}");
    }
}

#[test]
fn empty_values_mean_absent_like_ack() {
    let spec = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (VGROUP_PORT, ""),
        (CONNECTION_DRAIN, " "),
        (CONNECTION_DRAIN_TIMEOUT, ""),
        (REMOVE_UNSCHEDULED_BACKEND, ""),
        (BACKEND_LABEL, ""),
        (BACKEND_TYPE, ""),
    ]))
    .unwrap();
    assert_eq!(
        spec,
        LbSpec {
            load_balancer_id: "lb-1".into(),
            ..LbSpec::default()
        }
    );
    // An empty id is a missing id: there is no instance to sync.
    let errors = parse(&mk_annotations(&[(LB_ID, "")])).unwrap_err();
    assert_eq!(invalid_key(&errors), vec![LB_ID]);
    assert!(errors[0].to_string().contains("SLB instance id"));
    assert!(!has_lb_id(&mk_annotations(&[(LB_ID, " ")])));
}

#[test]
fn the_legacy_alicloud_prefix_is_read_and_the_current_key_wins() {
    let legacy = |suffix: &str| format!("{LEGACY_PREFIX}{suffix}");
    let old: BTreeMap<String, String> = [
        (legacy("id"), "lb-old".to_owned()),
        (legacy("backend-label"), "pool=web".to_owned()),
        (legacy("remove-unscheduled-backend"), "on".to_owned()),
    ]
    .into();
    assert!(has_lb_id(&old));
    let spec = parse(&old).unwrap();
    assert_eq!(spec.load_balancer_id, "lb-old");
    assert_eq!(spec.backend_labels, [("pool".to_owned(), "web".to_owned())]);
    assert!(spec.remove_unscheduled_backend);

    let mut both = old.clone();
    both.insert(LB_ID.to_owned(), "lb-new".to_owned());
    assert_eq!(parse(&both).unwrap().load_balancer_id, "lb-new");
}

#[test]
fn drain_on_requires_timeout() {
    let errors = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (CONNECTION_DRAIN, "on"),
    ]))
    .unwrap_err();
    assert_eq!(invalid_key(&errors), vec![CONNECTION_DRAIN_TIMEOUT]);
}

#[test]
fn all_problems_are_reported_together() {
    let errors = parse(&mk_annotations(&[
        (CONNECTION_DRAIN, "maybe"),
        (BACKEND_TYPE, "x"),
    ]))
    .unwrap_err();
    assert_eq!(
        invalid_key(&errors),
        vec![LB_ID, CONNECTION_DRAIN, BACKEND_TYPE]
    );
}

#[test]
fn unknown_prefixed_keys_are_ignored() {
    let spec = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-spec",
            "slb.s1.small",
        ),
        ("example.com/other", "x"),
    ]));
    assert!(spec.is_ok());
}

#[test]
fn ack_annotations_slb_sync_does_not_read_are_named_in_their_current_form() {
    let annotations = mk_annotations(&[
        (LB_ID, "lb-1"),
        (CONNECTION_DRAIN, "on"),
        (
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight",
            "60",
        ),
        (
            "service.beta.kubernetes.io/alicloud-loadbalancer-default-weight",
            "50",
        ),
        (
            "service.beta.kubernetes.io/alicloud-loadbalancer-backend-label",
            "a=b",
        ),
        (
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-spec",
            "slb.s1.small",
        ),
        ("example.com/other", "x"),
        (BACKEND_TYPE, "eni"),
    ]);
    assert_eq!(
        unsupported(&annotations),
        [
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-spec",
            "service.beta.kubernetes.io/alibaba-cloud-loadbalancer-weight",
        ],
        "read keys, the legacy form of a read key and other prefixes are not named; \
         the weight is, without vgroup-port (ACK does not read it either)"
    );
    let mut with_groups = annotations.clone();
    with_groups.insert(VGROUP_PORT.to_owned(), "rsp-1:80".to_owned());
    assert_eq!(
        unsupported(&with_groups),
        ["service.beta.kubernetes.io/alibaba-cloud-loadbalancer-spec"]
    );
    assert!(unsupported(&mk_annotations(&[(LB_ID, "lb-1")])).is_empty());
}

#[test]
fn weights_are_read_as_ack_reads_them() {
    let spec = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (VGROUP_PORT, "rsp-1:80"),
        (WEIGHT, "60"),
        (DEFAULT_WEIGHT, " 0 "),
        (IGNORE_WEIGHT_UPDATE, "ON"),
    ]))
    .unwrap();
    assert_eq!(spec.weight, Some(60));
    assert_eq!(spec.default_weight, Some(0));
    assert!(spec.ignore_weight_update);
    // Without vgroup-port the shared weight is not read (ACK reads it only there).
    let spec = parse(&mk_annotations(&[(LB_ID, "lb-1"), (WEIGHT, "60")])).unwrap();
    assert_eq!(spec.weight, None);
    let errors = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (VGROUP_PORT, "rsp-1:80"),
        (WEIGHT, "101"),
        (DEFAULT_WEIGHT, "-1"),
        (IGNORE_WEIGHT_UPDATE, "yes"),
    ]))
    .unwrap_err();
    assert_eq!(
        invalid_key(&errors),
        vec![WEIGHT, DEFAULT_WEIGHT, IGNORE_WEIGHT_UPDATE]
    );
    assert!(errors[0].to_string().contains("0 to 100"));
}

#[test]
fn lb_id_detection_for_unclassed_services() {
    assert!(has_lb_id(&mk_annotations(&[(LB_ID, "lb-1")])));
    assert!(!has_lb_id(&mk_annotations(&[(BACKEND_TYPE, "eni")])));
}

#[test]
fn a_huge_bad_value_is_quoted_cut_short_and_the_other_problems_still_show() {
    let huge = "x".repeat(200_000);
    let errors = parse(&mk_annotations(&[
        (LB_ID, "lb-1"),
        (VGROUP_PORT, &huge),
        (CONNECTION_DRAIN_TIMEOUT, "5"),
    ]))
    .unwrap_err();
    assert_eq!(
        invalid_key(&errors),
        [VGROUP_PORT, CONNECTION_DRAIN_TIMEOUT]
    );
    let text = errors[0].to_string();
    assert!(text.len() < 400, "{} bytes", text.len());
    assert!(text.contains("… (200000 bytes)"), "{text}");
    assert!(errors[1].to_string().contains("\"5\""));
}

proptest! {
    #[test]
    fn no_value_panics_the_parser(
        key in prop::sample::select(vec![
            LB_ID, VGROUP_PORT, CONNECTION_DRAIN, CONNECTION_DRAIN_TIMEOUT,
            REMOVE_UNSCHEDULED_BACKEND, BACKEND_LABEL, BACKEND_TYPE,
        ]),
        value in any::<String>(),
        structured in "[a-z0-9=:,/._ -]{0,40}",
    ) {
        for v in [&value, &structured] {
            let mut annotations = mk_annotations(&[(LB_ID, "lb-1")]);
            annotations.insert(key.to_owned(), v.clone());
            match parse(&annotations) {
                Ok(_) => {}
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for e in errors {
                        prop_assert!(e.to_string().contains(key) || e.to_string().contains(LB_ID));
                    }
                }
            }
        }
    }

    #[test]
    fn vgroup_ports_round_trip(ports in prop::collection::btree_map(1u16.., "rsp-[a-z0-9]{1,10}", 1..5)) {
        let text = ports.iter().map(|(p, id)| format!("{id}:{p}")).collect::<Vec<_>>().join(",");
        let spec = parse(&mk_annotations(&[(LB_ID, "lb-1"), (VGROUP_PORT, &text)])).unwrap();
        prop_assert_eq!(spec.vgroup_ports, ports);
    }
}
