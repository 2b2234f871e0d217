//! The naming rule makes every permission regex exact: for any two distinct valid entity names
//! whose private namespaces do not overlap (a registry refuses such pairs), no regex of one
//! entity matches a resource of the other that is not meant for it. Permission regexes are
//! matched by RabbitMQ with Erlang's PCRE; fancy-regex speaks the same lookahead.

use ebadge_bus::conventions::{
    EntityName, inbox_queue, is_valid_entity_name, pair_exchange, permissions, quarantine_queue,
};
use fancy_regex::Regex;
use proptest::prelude::*;

/// Names biased towards the troublesome pieces: `to`, `private`, dashes.
fn name() -> impl Strategy<Value = EntityName> {
    let piece = prop_oneof![
        "to",
        "private",
        "in",
        "inbox",
        "x",
        "a",
        "heh",
        "[a-z0-9]{1,3}"
    ];
    (
        "[a-z]",
        proptest::collection::vec((piece, proptest::bool::ANY), 0..4),
    )
        .prop_map(|(first, pieces)| {
            let mut n = first;
            for (p, dash) in pieces {
                if dash {
                    n.push('-');
                }
                n.push_str(&p);
            }
            n
        })
        .prop_filter_map("a valid name", |n| EntityName::new(&n).ok())
}

fn matches(regex: &str, resource: &str) -> bool {
    Regex::new(regex).unwrap().is_match(resource).unwrap()
}

/// The three regexes of one entity, compiled.
struct Compiled {
    configure: Regex,
    write: Regex,
    read: Regex,
}

impl Compiled {
    fn of(name: &EntityName) -> Self {
        let p = permissions(name, &[]);
        let re = |r: &str| Regex::new(r).unwrap();
        Self {
            configure: re(&p.configure),
            write: re(&p.write),
            read: re(&p.read),
        }
    }
}

fn hit(regex: &Regex, resource: &str) -> bool {
    regex.is_match(resource).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_regex_of_one_entity_reaches_what_is_not_meant_for_it(
        n in name(), m in name(), x in name(), suffix in "[a-z0-9-]{0,12}",
    ) {
        prop_assume!(n != m && !n.overlaps(&m));
        let p = Compiled::of(&n);
        // m's private namespace: its inbox, quarantine, and any queue it makes (a tap, even one
        // named like an exchange addressed to n).
        for private in [
            inbox_queue(&m),
            quarantine_queue(&m),
            format!("private-{m}-{suffix}"),
            format!("private-{m}-{suffix}-to-{n}"),
        ] {
            prop_assert!(!hit(&p.configure, &private), "configure ~ {}", private);
            prop_assert!(!hit(&p.write, &private), "write ~ {}", private);
            prop_assert!(!hit(&p.read, &private), "read ~ {}", private);
        }
        // Pair exchanges: n writes only its own, reads only those addressed to it.
        for (sender, receiver) in [(&m, &x), (&x, &m), (&m, &n), (&n, &m)] {
            let exchange = pair_exchange(sender, receiver);
            prop_assert!(!hit(&p.configure, &exchange));
            prop_assert_eq!(hit(&p.write, &exchange), sender == &n, "write ~ {}", exchange);
            prop_assert_eq!(hit(&p.read, &exchange), receiver == &n, "read ~ {}", exchange);
        }
    }

    #[test]
    fn a_pair_exchange_names_exactly_one_pair(s in name(), r in name()) {
        let exchange = pair_exchange(&s, &r);
        let (sender, receiver) = ebadge_bus::conventions::parse_pair_exchange(&exchange).unwrap();
        prop_assert_eq!((sender, receiver), (s, r));
    }
}

#[test]
fn overlapping_names_are_exactly_those_whose_namespaces_meet() {
    let n = |s: &str| EntityName::new(s).unwrap();
    assert!(n("a").overlaps(&n("a-b")));
    let p = permissions(&n("a"), &[]);
    assert!(
        matches(&p.configure, "private-a-b-inbox"),
        "why a registry refuses the pair"
    );
}

#[test]
fn the_ambiguous_names_of_the_review_are_refused() {
    for bad in [
        "x-to",
        "to-n",
        "private",
        "inbox-to",
        "ebadge-admin",
        "a-to-b",
    ] {
        assert!(!is_valid_entity_name(bad), "{bad}");
    }
}
