"""embedlab.text.chunk: fixed, overlapping and sentence-based chunks; nothing lost; bad input."""

import pytest

from embedlab.text import chunk, split_sentences

TEXT = ("One two three. Four five six seven. Eight nine. "
        "Ten eleven twelve thirteen fourteen fifteen sixteen.")


def test_fixed_chunks_are_disjoint_windows_that_rebuild_the_text() -> None:
    parts = chunk(TEXT, size=4)
    assert parts == ["One two three. Four", "five six seven. Eight", "nine. Ten eleven twelve",
                     "thirteen fourteen fifteen sixteen."]
    assert " ".join(parts) == " ".join(TEXT.split())


def test_overlapping_windows_step_by_size_minus_overlap() -> None:
    words = [f"w{i}" for i in range(10)]
    parts = chunk(" ".join(words), size=4, overlap=2)
    assert parts == ["w0 w1 w2 w3", "w2 w3 w4 w5", "w4 w5 w6 w7", "w6 w7 w8 w9"]
    # every window but the last holds `size` words; the last one reaches the end
    assert chunk("a b c d e", size=3, overlap=1) == ["a b c", "c d e"]
    assert chunk("a b", size=5, overlap=4) == ["a b"]


def test_sentence_chunks_keep_sentences_whole_and_cut_only_overlong_ones() -> None:
    parts = chunk(TEXT, size=6, method="sentences")
    assert parts[:2] == ["One two three.", "Four five six seven. Eight nine."]
    # the 7-word sentence is longer than size=6: cut into windows, nothing dropped
    assert parts[2:] == ["Ten eleven twelve thirteen fourteen fifteen", "sixteen."]
    assert " ".join(parts) == " ".join(TEXT.split())
    for p in parts[:2]:
        assert all(s in split_sentences(TEXT) for s in split_sentences(p))


def test_sentence_overlap_carries_trailing_sentences() -> None:
    text = "A b. C d. E f. G h."
    assert chunk(text, size=4, overlap=2, method="sentences") == ["A b. C d.", "C d. E f.",
                                                                  "E f. G h."]
    assert chunk(text, size=4, overlap=0, method="sentences") == ["A b. C d.", "E f. G h."]


@pytest.mark.parametrize("method", ["fixed", "sentences"])
def test_every_word_is_in_some_chunk_and_no_chunk_is_too_long(method: str) -> None:
    text = " ".join(f"Word{i} is here{'.' if i % 5 == 4 else ''}" for i in range(200))
    parts = chunk(text, size=37, overlap=9, method=method)
    assert all(len(p.split()) <= 37 for p in parts)
    covered = {w for p in parts for w in p.split()}
    assert covered == set(text.split())


def test_bad_input_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="overlap"):
        chunk(TEXT, size=4, overlap=4)
    with pytest.raises(ValueError, match="overlap"):
        chunk(TEXT, size=4, overlap=-1)
    with pytest.raises(ValueError, match="empty"):
        chunk("   \n ", size=4)
    with pytest.raises(ValueError, match="size"):
        chunk(TEXT, size=0)
    with pytest.raises(ValueError, match="method"):
        chunk(TEXT, method="paragraphs")
    with pytest.raises(TypeError, match="text"):
        chunk(["not", "a", "str"])
    with pytest.raises(TypeError, match="size"):
        chunk(TEXT, size=4.0)
