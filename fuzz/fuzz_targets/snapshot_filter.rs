//! containerd filter strings (List/Walk), one per line: parsing either succeeds or gives an
//! InvalidArgument error that shows where; matching never panics.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use winlayer_snapshotter::{ErrorKind, Filters, Info, Kind, Time};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let filters: Vec<&str> = text.split('\n').collect();
    match Filters::parse(&filters) {
        Ok(parsed) => {
            let labels = BTreeMap::from([("a.b".to_string(), "v".to_string()), ("l".to_string(), "1".to_string())]);
            for kind in [Kind::Active, Kind::View, Kind::Committed] {
                let info = Info {
                    name: "n".into(),
                    parent: "p".into(),
                    kind,
                    created: Time::default(),
                    updated: Time::default(),
                    labels: labels.clone(),
                };
                parsed.matches(&info);
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument);
            assert!(e.message().starts_with("filters: parse error: ["), "{e}");
        }
    }
});
