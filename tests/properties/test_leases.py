"""Property tests: destination paths overlap by whole segments, and the lease index finds
exactly the overlaps a pairwise comparison finds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.domain.leases import DestinationLeases, Lease, overlaps, written_paths
from orchestrator.domain.paths import confine

# Few names, some prefixes of others as strings ("in", "inbox"), so overlaps are frequent.
names = st.sampled_from(["in", "inbox", "in.x", "a", "b"])
segment_lists = st.lists(names, max_size=4)


@st.composite
def spellings(draw: st.DrawFn, parts: list[str]) -> str:
    """One of the ways a user may write the path of ``parts``: leading, doubled and trailing
    slashes, '.' segments."""
    pieces: list[str] = []
    for part in parts:
        pieces += ["."] * draw(st.integers(0, 1)) + [part]
    joined = "/".join(pieces)
    lead = draw(st.sampled_from(["", "/", "//", "./"]))
    tail = draw(st.sampled_from(["", "/", "/."]))
    return (lead + joined + tail).replace("/", draw(st.sampled_from(["/", "//"])))


def reference(a: list[str], b: list[str]) -> bool:
    """Overlap by the definition: one path is the other or a folder above it."""
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


@given(segment_lists, segment_lists, st.data())
def test_overlap_is_by_whole_segments_whatever_the_spelling(
    a: list[str], b: list[str], data: st.DataObject
) -> None:
    first, second = data.draw(spellings(a)), data.draw(spellings(b))
    assert overlaps(first, second) == reference(a, b) == overlaps(second, first)
    stored = confine("/", first)  # as a job's destination is stored
    assert overlaps(stored, second) == reference(a, b)


@given(segment_lists, names)
def test_a_folder_overlaps_what_is_under_it_and_not_a_longer_name(
    parts: list[str], name: str
) -> None:
    folder = "/" + "/".join(parts)
    assert overlaps(folder, f"{folder}/{name}/deeper")
    assert not overlaps(f"{folder}/in", f"{folder}/inbox")


@given(segment_lists, st.lists(st.lists(names, min_size=1, max_size=3), min_size=1, max_size=3))
def test_a_job_writes_each_source_by_its_last_name_under_its_folder(
    folder: list[str], sources: list[list[str]]
) -> None:
    written = written_paths("/" + "/".join(folder), ["/".join(s) for s in sources])
    assert written == {"/" + "/".join([*folder, s[-1]]) for s in sources}


holdings = st.lists(
    st.tuples(st.integers(1, 2), st.lists(segment_lists, min_size=1, max_size=3)), max_size=6
)


@given(holdings, st.integers(1, 2), st.lists(segment_lists, min_size=1, max_size=3))
def test_the_lease_index_finds_a_holder_exactly_when_one_overlaps(
    held: list[tuple[int, list[list[str]]]], node: int, wanted: list[list[str]]
) -> None:
    leases = DestinationLeases()
    for number, (held_node, paths) in enumerate(held):
        leases.take(held_node, ["/".join(p) for p in paths], Lease(str(number), "/"))
    candidates = [
        number
        for number, (held_node, paths) in enumerate(held)
        if held_node == node
        and any(overlaps("/".join(p), "/".join(w)) for p in paths for w in wanted)
    ]
    found = leases.holder(node, ["/".join(w) for w in wanted])
    if not candidates:
        assert found is None
    else:
        assert found is not None and int(found.job_id) in candidates
