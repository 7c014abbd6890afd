//! A bounded fuzz run of every target in `cargo xtask test` (`cargo xtask fuzz --minutes N`
//! runs longer): no crash, and the mutations stay close enough to valid input that each target
//! accepts some of them (so the fuzzer reaches past the first parse).

#[test]
fn every_target_takes_thousands_of_hostile_inputs_without_a_crash() {
    maestral_fuzz::quiet_panics();
    for mut target in maestral_fuzz::all_targets() {
        let corpus = target.corpus().len() as u64;
        assert!(corpus > 0, "{}: an empty corpus tests nothing", target.name());
        let report = maestral_fuzz::run(target.as_mut(), 7, 20_000, None);
        let crashes: Vec<String> = report
            .crashes
            .iter()
            .map(|c| format!("{}: {:?}", c.message, String::from_utf8_lossy(&c.input)))
            .collect();
        assert!(crashes.is_empty(), "{}: {crashes:#?}", target.name());
        assert_eq!(report.inputs, 20_000);
        assert!(
            report.accepted > corpus,
            "{}: only {} of {} inputs accepted: the corpus or the mutations are broken",
            target.name(),
            report.accepted,
            report.inputs
        );
    }
}

#[test]
fn a_crash_is_caught_with_its_input_and_replays() {
    struct Fragile;
    impl maestral_fuzz::Target for Fragile {
        fn name(&self) -> &'static str {
            "fragile"
        }
        fn corpus(&self) -> Vec<Vec<u8>> {
            vec![b"hello".to_vec()]
        }
        fn run(&mut self, input: &[u8]) -> bool {
            assert!(!input.contains(&b'!'), "a '!' breaks it");
            true
        }
    }
    maestral_fuzz::quiet_panics();
    let report = maestral_fuzz::run(&mut Fragile, 3, 20_000, None);
    let crash = report.crashes.first().expect("the mutations find the '!'");
    assert!(crash.input.contains(&b'!'));
    assert!(crash.message.contains("breaks it"), "{}", crash.message);
    assert!(maestral_fuzz::replay(&mut Fragile, &crash.input).is_err());
    assert_eq!(maestral_fuzz::replay(&mut Fragile, b"fine"), Ok(true));
}
