//! Field ownership: apply conflicts, force, Update ownership transfer, pruning.

use super::*;

#[test]
fn leaves_and_fields_v1_round_trip() {
    let obj = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "1"}, "finalizers": ["x"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        "spec": {"tags": [1, 2]}
    });
    let l = leaves(&obj);
    let expect: BTreeSet<Path> = [
        vec!["f:metadata", "f:labels", "f:a"],
        vec!["f:metadata", "f:finalizers", "v:\"x\""],
        vec![
            "f:status",
            "f:conditions",
            "k:{\"type\":\"Ready\"}",
            "f:type",
        ],
        vec![
            "f:status",
            "f:conditions",
            "k:{\"type\":\"Ready\"}",
            "f:status",
        ],
        vec!["f:spec", "f:tags"],
    ]
    .into_iter()
    .map(|p| p.into_iter().map(String::from).collect())
    .collect();
    assert_eq!(l, expect);
    assert_eq!(decode(&encode(&l)), l);
    for p in &l {
        assert!(get(&obj, p).is_some(), "{p:?}");
    }
}

#[test]
fn apply_prunes_what_the_manager_stopped_applying() {
    let mut obj = json!({"metadata": {"name": "s", "finalizers": ["other"]},
                         "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let steps = [
        json!({"metadata": {"finalizers": ["mine"]},
               "status": {"conditions": [{"type": "Mine", "status": "True"}]}}),
        json!({"metadata": {"finalizers": []}, "status": {"conditions": []}}),
    ];
    for applied in steps {
        let old = obj.clone();
        let l = leaves(&applied);
        crate::patch::strategic_merge(&mut obj, &applied);
        prune_unapplied(&old, &mut obj, "m", "", &l);
        let op = Op::Apply {
            manager: "m",
            leaves: l,
            force: false,
        };
        record(Some(&old), &mut obj, &op, "", "v1", "t");
    }
    assert_eq!(obj["metadata"]["finalizers"], json!(["other"]));
    assert_eq!(
        obj["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}])
    );
}

#[test]
fn apply_conflicts_with_another_owner_unless_same_value_or_forced() {
    let mut lease = json!({"metadata": {"name": "l"}, "spec": {}});
    let a = json!({"spec": {"holderIdentity": "a"}});
    check_apply(&lease, &a, "a", "leases", "l").unwrap();
    let old = lease.clone();
    crate::patch::strategic_merge(&mut lease, &a);
    let op = Op::Apply {
        manager: "a",
        leaves: leaves(&a),
        force: false,
    };
    record(
        Some(&old),
        &mut lease,
        &op,
        "",
        "coordination.k8s.io/v1",
        "t",
    );

    let b = json!({"spec": {"holderIdentity": "b"}});
    let err = check_apply(&lease, &b, "b", "leases", "l").unwrap_err();
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains(".spec.holderIdentity"),
        "{}",
        err.message
    );
    // The same value is shared ownership, not a conflict.
    check_apply(&lease, &a, "b", "leases", "l").unwrap();

    // An update (strategic patch) by another manager takes the field over.
    let old = lease.clone();
    lease["spec"]["holderIdentity"] = json!("c");
    record(
        Some(&old),
        &mut lease,
        &Op::Update("c"),
        "",
        "coordination.k8s.io/v1",
        "t",
    );
    check_apply(&lease, &b, "b", "leases", "l").unwrap_err();
    check_apply(
        &lease,
        &json!({"spec": {"holderIdentity": "x"}}),
        "c",
        "leases",
        "l",
    )
    .unwrap();
    let managers: Vec<&str> = lease["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["c"]);
}
