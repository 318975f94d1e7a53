//! docs/protocol.md section 10's capability table is the fake's family table: the table between
//! the `fake-family-table` markers must be exactly what `Family::capability_table` renders from
//! the code (`gemini-fake/src/family.rs`). When a rule changes, change the code and paste the
//! table this test prints.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gemini_fake::Family;

const START: &str = "<!-- fake-family-table -->";
const END: &str = "<!-- /fake-family-table -->";

#[test]
fn the_protocol_notes_capability_table_is_the_fakes_family_table() {
    let notes = include_str!("../../../docs/protocol.md");
    let generated = Family::capability_table();
    let documented = notes
        .split_once(START)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table.trim())
        .unwrap_or_else(|| panic!("docs/protocol.md has no {START} … {END} block"));
    assert!(
        documented == generated.trim(),
        "docs/protocol.md section 10 and the fake's family table differ; the code's table:\n\n{generated}"
    );
    // Every model id the fake accepts is named in the notes' table.
    for family in Family::ALL {
        for vertex in [false, true] {
            for id in family.model_ids(vertex) {
                assert!(documented.contains(&format!("`{id}`")), "{id}");
            }
        }
    }
}
