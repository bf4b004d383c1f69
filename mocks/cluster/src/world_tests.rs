use super::*;

#[test]
fn every_preset_parses_and_is_named_as_listed() {
    for (name, yaml) in PRESETS {
        let w = World::parse(yaml, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&w.name, name);
        assert!(!w.description.is_empty());
        assert_eq!(World::load(name).unwrap(), w);
    }
}

#[test]
fn the_kind_preset_is_the_default_world() {
    assert_eq!(World::load("kind").unwrap(), World::default());
}

#[test]
fn each_single_condition_preset_differs_from_kind_in_its_condition_only() {
    let kind = World::default();
    let w = World::load("slb-tail").unwrap();
    let Propagation::PerBackend {
        add,
        weight,
        remove,
    } = w.slb.propagation
    else {
        panic!("slb-tail propagates per backend")
    };
    // The agent's allowance covers the slowest change this world makes.
    for t in [add, weight, remove] {
        assert!(
            t.max_ms.is_some_and(|m| m <= w.timings.slb_propagation_ms),
            "{t:?}"
        );
    }
    assert_eq!((&w.cluster, &w.load), (&kind.cluster, &kind.load));
    assert_eq!(w.slb.api, kind.slb.api);
    let w = World::load("api-faults").unwrap();
    assert!(w.slb.api.outage.is_some() && w.slb.api.qps_limit.is_some());
    assert_eq!(w.slb.propagation, kind.slb.propagation);
    let w = World::load("long-lived").unwrap();
    assert!(w.load.streams > 0 && w.load.stream_ms.0 > 1000 * u64::from(w.timings.drain_window_s));
    assert_eq!(w.slb, kind.slb);
    let w = World::load("health-check").unwrap();
    assert!(w.slb.health_check.is_some());
    assert_eq!((&w.load, &w.slb.api), (&kind.load, &kind.slb.api));
}

#[test]
fn a_bad_file_names_the_field_and_an_unknown_name_says_how_to_list() {
    let e = World::parse(
        "name: x\ndescription: y\nslb: {propagaton: {fixed: {ms: 1}}}\n",
        "mine.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("mine.yaml") && e.contains("propagaton"), "{e}");
    let e = World::load("no-such-preset").unwrap_err().to_string();
    assert!(e.contains("--list-scenarios"), "{e}");
}
