"""Full-text search processing (``couchlite.query.fts``), checked where it runs: in SQLite.

The shared conformance cases that use MATCH and RANK are reproduced on in-memory FTS4 tables
filled with :func:`fts.index_text` of the datasets and searched with :func:`fts.match_query`;
the expected document IDs and RANK values are the rows Couchbase Lite C 3.2 returned for them.
SQLite itself also checks the design: its ``simple`` tokenizer must hand the stored words back
unchanged, the words must be those of its ``unicode61`` tokenizer, and every MATCH string
written must be one FTS4 accepts, meaning what the user's query means.
"""

from __future__ import annotations

import re
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from couchlite.query import fts
from couchlite.query.values import MISSING

DATA = Path(__file__).resolve().parents[1] / "data" / "query"


def _documents(name: str) -> list[dict[str, Any]]:
    lines = (DATA / name).read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def _path_value(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


class Table:
    """An FTS4 table of processed text, as an FTS index holds it (one column per expression)."""

    def __init__(
        self, rows: Sequence[tuple[str, Sequence[Any]]], columns: int, language: str | None
    ) -> None:
        self.language = language
        self.names = [doc_id for doc_id, _ in rows]
        self.db = sqlite3.connect(":memory:")
        self.db.create_function("cl_rank", 1, fts.rank, deterministic=True)
        cols = ", ".join(f"c{i}" for i in range(columns))
        self.db.execute(f"CREATE VIRTUAL TABLE t USING fts4({cols}, tokenize={fts.TOKENIZER})")
        marks = ", ".join("?" * columns)
        for docid, (_, values) in enumerate(rows):
            texts = [fts.index_text(value, language, False) for value in values]
            if any(text is not None for text in texts):
                self.db.execute(
                    f"INSERT INTO t (docid, {cols}) VALUES (?, {marks})", [docid, *texts]
                )

    def search(self, terms: str, **options: Any) -> str:
        return fts.match_query(terms, self.language, False, **options)

    def ids(self, terms: str, **options: Any) -> set[str]:
        rows = self.db.execute(
            "SELECT docid FROM t WHERE t MATCH ?", (self.search(terms, **options),)
        )
        return {self.names[docid] for (docid,) in rows}

    def ranked(self, terms: str) -> list[tuple[float, str]]:
        """(RANK, id) of every match, in ``ORDER BY RANK(idx), meta().id`` order."""
        rows = self.db.execute(
            "SELECT docid, cl_rank(matchinfo(t, 'pcx')) FROM t WHERE t MATCH ?",
            (self.search(terms),),
        )
        return sorted((rank, self.names[docid]) for docid, rank in rows)


def _index(dataset: str, expressions: list[str], language: str | None) -> Table:
    docs = _documents(dataset)
    rows = [(doc["_id"], [_path_value(doc, path) for path in expressions]) for doc in docs]
    return Table(rows, len(expressions), language)


@pytest.fixture(scope="module")
def indexes() -> dict[str, Table]:
    """The conformance datasets' FTS indexes, as their README describes them."""
    hotels, names = "travel/travel.hotels.jsonl", "names/_default.jsonl"
    return {
        "hotelDesc": _index(hotels, ["description"], "en"),
        "hotelNameCity": _index(hotels, ["name", "city"], None),
        "nameFTS": _index(names, ["likes"], None),
        "nameCityFTS": _index(names, ["name.first", "name.last", "contact.address.city"], None),
    }


def _ids(prefix: str, numbers: str) -> set[str]:
    return {f"{prefix}_{n}" for n in numbers.split()}


# Each case: (conformance id, index, MATCH terms, IDs of the rows Couchbase Lite returned).
MATCH_CASES = [
    ("q0386", "hotelDesc", "beach", _ids("hotel", "19 20 46 47 49 83 84 86 88 90 102 127 131 "
        "138 140 159 161 164 167 247 251 263 291 292 293 297 300 301 322 335")),
    ("q0387", "hotelDesc", "swimming", _ids("hotel", "13 41 62 66 101 149 150 189 234 264")),
    ("q0390", "hotelDesc", '"golden gate"', _ids("hotel", "195 198")),
    ("q0391", "hotelDesc", "restaurant OR bar", _ids("hotel", "2 4 15 16 25 28 36 46 62 66 69 "
        "72 89 90 97 100 103 106 120 122 134 135 142 150 158 160 164 178 182 187 195 217 225 244 "
        "249 261 266 268 276 280 316 324 340")),
    ("q0393", "hotelDesc", "vict*", _ids("hotel", "28 47 119 215 219 223 286")),
    ("q0396", "hotelDesc", "xyzzyplugh", set()),
    ("q0401", "hotelDesc", "family", _ids("hotel", "34 84 205 211 257 322 323 333 334 340")),
    ("q0403", "hotelNameCity", "birmingham", _ids("hotel", "341 342 343 344 345 346 347 348 "
        "349 350")),
    ("q0407", "hotelDesc", "wifi", _ids("hotel", "15 80 90 110 143 345 347 348")),
    ("q0408", "nameFTS", "chess", _ids("name", "20 26 28 35 37 38 51 72 74 76 79 93")),
    ("q0410", "nameFTS", "chess OR boxing", _ids("name", "12 18 20 26 28 35 37 38 41 45 46 51 "
        "64 72 74 76 79 84 93")),
    ("q0447", "nameCityFTS", "salt", _ids("name", "10 46")),
    ("q0448", "nameCityFTS", "john*", _ids("name", "25 50")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "index", "terms", "expected"), MATCH_CASES)
def test_conformance_match(
    indexes: dict[str, Table], case: str, index: str, terms: str, expected: set[str]
) -> None:
    assert indexes[index].ids(terms) == expected


def _ranked(prefix: str, numbers: str, rank: float) -> list[tuple[str, float]]:
    return [(f"{prefix}_{n}", rank) for n in numbers.split()]


# (conformance id, index, terms, the first rows of ORDER BY RANK(idx), meta().id, as (id, RANK))
RANK_CASES = [
    ("q0399", "hotelDesc", "pool",
        _ranked("hotel", "10 100 101 103 104 11 120 13 135 137", 0.02857142857142857)),
    ("q0401", "hotelDesc", "family",
        _ranked("hotel", "205 211 257 322 323 333 334 34 340 84", 0.1)),
    ("q0410", "nameFTS", "chess OR boxing",
        _ranked("name", "20 26 28 35 37 72 74 76 93", 0.08333333333333333)
        + _ranked("name", "12 18 41 45 46 64 84", 0.1)
        + _ranked("name", "38 51 79", 0.18333333333333335)),
]  # fmt: skip


@pytest.mark.parametrize(("case", "index", "terms", "expected"), RANK_CASES)
def test_conformance_rank(
    indexes: dict[str, Table], case: str, index: str, terms: str, expected: list[Any]
) -> None:
    got = [(doc_id, rank) for rank, doc_id in indexes[index].ranked(terms)]
    assert got[: len(expected)] == expected  # exactly: the same doubles, summed in the same order


def test_rank_is_never_computed_on_an_empty_phrase_query(indexes: dict[str, Table]) -> None:
    assert indexes["hotelDesc"].ranked("the") == []


@pytest.mark.parametrize("terms", ["the", '"the"', "THE", "the of and", "(a AND the) OR it"])
def test_stop_words_never_match(indexes: dict[str, Table], terms: str) -> None:
    assert indexes["hotelDesc"].ids(terms) == set()


def test_a_bare_stop_word_is_left_out_of_a_query(indexes: dict[str, Table]) -> None:
    desc = indexes["hotelDesc"]
    pool = desc.ids("pool")
    assert pool and desc.ids("the pool") == pool == desc.ids("a the pool is") == desc.ids(
        "pool OR the"
    )
    assert desc.ids('"golden the gate"') == desc.ids('"golden gate"')


def test_stemming_with_a_language(indexes: dict[str, Table]) -> None:
    desc = indexes["hotelDesc"]
    assert desc.ids("views") == desc.ids("view") != set()
    assert desc.ids("swimming") == desc.ids("swim") == desc.ids("swims")
    assert desc.ids("family") == desc.ids("families")


def test_no_stemming_without_a_language(indexes: dict[str, Table]) -> None:
    name_city = indexes["hotelNameCity"]
    hotels = _documents("travel/travel.hotels.jsonl")
    word = re.compile(r"\bhotels\b", re.IGNORECASE)
    literal = {d["_id"] for d in hotels if word.search(f"{d.get('name')} {d.get('city')}")}
    assert name_city.ids("hotels") == literal
    assert name_city.ids("hotel") - literal  # "Hotel" is not found by "hotels"


def test_matching_ignores_case(indexes: dict[str, Table]) -> None:
    desc = indexes["hotelDesc"]
    assert desc.ids("BEACH") == desc.ids("Beach") == desc.ids("beach") != set()
    assert desc.ids("Golden NEAR/0 GATE") == desc.ids('"golden gate"')


def test_array_items_are_indexed(indexes: dict[str, Table]) -> None:
    likes = indexes["nameFTS"]
    names = _documents("names/_default.jsonl")
    assert likes.ids("chess") == {d["_id"] for d in names if "chess" in d.get("likes", [])}


# --- index_text --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "language", "ignore_accents", "expected"),
    [
        (MISSING, "en", False, None),
        (None, None, False, ""),
        ("", None, False, ""),
        ("The Swimming-Pools, and VIEWS!", None, False, "the swimming pools and views"),
        ("The Swimming-Pools, and VIEWS!", "en", False, "swim pool view"),
        ("The Swimming-Pools, and VIEWS!", "english", False, "swim pool view"),
        ("The Swimming-Pools, and VIEWS!", "en_US", False, "swim pool view"),
        ("The Swimming-Pools, and VIEWS!", "elbonian", False, "the swimming pools and views"),
        ("Schindler's List (1993): don't", None, False, "schindler s list 1993 don t"),
        ("under_score 3.14 -41 x2", None, False, "under score 3 14 41 x2"),
        (
            ["Views", ["nested", ["deeper"]], {"b": "bee", "a": "ay"}],
            None,
            False,
            "views nested deeper ay bee",
        ),
        ([True, False, 7, 2.0, 0.5, 1e300, None, {}], None, False, "t f 7 2 0 5 1e 300"),
        ("Café CAFÉ cafe\u0301", None, False, "café café café"),
        ("Café Ñandú Ærø", None, True, "cafe nandu ærø"),
        (
            "Straße STRASSE ΣΊΣΥΦΟΣ Ǆemal İzmir \u212a",
            None,
            False,
            "straße strasse σίσυφοσ ǆemal İzmir k",
        ),
        ("İzmir Ǘ", None, True, "izmir u"),
        ("東京タワー 北京", None, False, "東京タワー 北京"),
        ("हिन्दी भाषा", None, False, "हिन्दी भाषा"),
        ("on* he said it's on", "en", False, "on said s"),
        ("Les étés sont chauds, même à Paris", "fr", False, "chaud paris"),
        # Stop words are matched once accents are gone, as in LiteCore: "étés", "même" and "à" stay.
        ("Les étés sont chauds, même à Paris", "fr", True, "ete chaud mem a paris"),
        ("Die schönen Häuser", "de", False, "die schon haus"),
    ],
)
def test_index_text(value: Any, language: str | None, ignore_accents: bool, expected: Any) -> None:
    assert fts.index_text(value, language, ignore_accents) == expected


def test_index_text_rejects_what_json_cannot_hold() -> None:
    with pytest.raises(TypeError):
        fts.index_text([b"bytes"], None, False)


def test_a_phrase_can_run_from_one_array_item_into_the_next() -> None:
    table = Table([("d", [["golden", "gate park"]])], 1, None)
    assert table.ids('"golden gate"') == {"d"}


def test_prefixes_are_never_stop_words() -> None:
    table = Table([("a", ["one only on"]), ("b", ["on off"]), ("c", ["oneself"])], 1, "en")
    assert table.search("on*") == "on*"
    assert table.ids("on*") == {"a", "c"}  # "on" and "only" are stop words, never stored
    assert table.ids("swimming*") == set() and table.search("swimming*") == "swim*"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "english"),
        ("EN_gb", "english"),
        ("english", "english"),
        ("porter", "porter"),
        ("de", "german"),
        ("no", "norwegian"),
        ("tr", "turkish"),
        ("ja", None),
        ("", None),
        (None, None),
    ],
)
def test_snowball_language(language: str | None, expected: str | None) -> None:
    assert fts.snowball_language(language) == expected


def test_languages_are_litecores() -> None:
    codes = [
        "da",
        "nl",
        "en",
        "fi",
        "fr",
        "de",
        "hu",
        "it",
        "no",
        "pt",
        "ro",
        "ru",
        "es",
        "sv",
        "tr",
    ]
    names = "danish dutch english finnish french german hungarian italian norwegian portuguese"
    assert set(fts.LANGUAGES) == {
        *codes,
        *names.split(),
        "porter",
        "romanian",
        "russian",
        "spanish",
        "swedish",
        "turkish",
    }
    assert fts.LANGUAGES["nl"] == fts.LANGUAGES["dutch"] in {"dutch_porter", "dutch"}
    import snowballstemmer  # type: ignore[import-untyped]

    assert set(fts.LANGUAGES.values()) <= set(snowballstemmer.algorithms())


def test_stop_words_are_the_english_and_french_lists_only() -> None:
    assert fts.index_text("the us ought yourselves very", "en", False) == "us"
    assert fts.index_text("le chat", "fr", False) == "chat"
    assert fts.index_text("the le", "de", False) == "the le"


# --- match_query -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "language", "expected"),
    [
        ("swimming", "en", "swim"),
        ("Swimming Pools", "en", "swim AND pool"),
        ("restaurant OR bar", "en", "restaur OR bar"),
        ("vict*", "en", "vict*"),
        ("hotels*", "en", "hotel*"),
        ("hotels*", None, "hotels*"),
        ("the", "en", fts.MATCH_NOTHING),
        ("a the b", "en", "b"),
        ("a the b", None, "a AND the AND b"),
        ('"the"', "en", fts.MATCH_NOTHING),
        ('pool "the"', "en", fts.MATCH_NOTHING),
        ('pool OR "of the"', "en", "pool"),
        ("pool OR the", "en", "pool"),
        ("the NOT pool", "en", fts.MATCH_NOTHING),
        ("bar NOT the pool", "en", "bar NOT pool"),
        ("bar NOT () pool", None, "bar NOT pool"),
        ("bar () OR pool", None, "bar OR pool"),
        ("bar NEAR the pool", "en", "bar NEAR/10 pool"),
        ("bar NEAR the", "en", "bar"),
        ("pool NOT the", "en", "pool"),
        ('"The Golden Gate"', "en", '"golden gate"'),
        ('"golden gate*"', None, '"golden gate*"'),
        ("^hotel beach", None, "^hotel AND beach"),
        ('"^golden gate"', None, '"^golden gate"'),
        ("golden NEAR/3 gate", None, "golden NEAR/3 gate"),
        ("golden NEAR gate NEAR park", None, "golden NEAR/10 gate NEAR/10 park"),
        ("golden NEAR/2 the NEAR/5 gate", "en", "golden NEAR/5 gate"),
        ("golden NEAR/99999999999 gate", None, "golden NEAR/1000000 gate"),
        ("(pool OR bar) NOT (restaurants bar)", "en", "(pool OR bar) NOT (restaur AND bar)"),
        ("a (b OR c) d", None, "a AND (b OR c) AND d"),
        ("a OR b c OR d", None, "a OR (b AND c) OR d"),
        ("a NOT b NOT c", None, "(a NOT b) NOT c"),
        ("(a) NEAR (b)", None, "a NEAR/10 b"),
        ("((a OR (b OR c)))", None, "a OR b OR c"),
        ("wi-fi", None, "wi AND fi"),
        ("a*b", None, "a* AND b"),
        ("OR/2 ORacle and", None, "or AND 2 AND oracle AND and"),
        ("café Ωmega", None, "café AND ωmega"),
        ("cafe\u0301", None, "café"),
        ("Café", "fr", "caf"),
        ("", None, fts.MATCH_NOTHING),
        (" \t\n", None, fts.MATCH_NOTHING),
        ("()", None, fts.MATCH_NOTHING),
        ("!! ?", None, fts.MATCH_NOTHING),
        ("pool !!", None, "pool"),
    ],
)
def test_match_query(terms: str, language: str | None, expected: str) -> None:
    assert fts.match_query(terms, language, False) == expected


def test_match_query_removes_accents_when_the_index_does() -> None:
    assert fts.match_query("Ñandú", None, True) == "nandu"
    assert fts.match_query("Ñandú", None, False) == "ñandú"


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ('"golden gate', "unbalanced quote"),
        ('a "b" "c', "unbalanced quote"),
        ("(a OR b", "'(' without ')'"),
        ("a OR b)", "')' without '('"),
        ("a AND", "missing at the end"),
        ("(a AND)", "missing before ')'"),
        ("OR a", "OR needs"),
        ("a OR OR b", "OR needs"),
        ("NOT", "NOT needs"),
        ("a NEAR", "missing at the end"),
        ("(a OR b) NEAR c", "NEAR needs a word or phrase"),
        ("a NEAR (b c)", "NEAR needs a word or phrase"),
    ],
)
def test_unusable_queries_raise(terms: str, message: str) -> None:
    with pytest.raises(fts.FullTextQueryError, match=re.escape(message)):
        fts.match_query(terms, None, False)


def test_a_full_text_query_error_is_a_value_error() -> None:
    assert issubclass(fts.FullTextQueryError, ValueError)
    with pytest.raises(fts.FullTextQueryError, match="string"):
        fts.match_query(5, None, False)  # type: ignore[arg-type]


def test_queries_are_bounded() -> None:
    with pytest.raises(fts.FullTextQueryError, match="characters"):
        fts.match_query("a" * (fts.MAX_QUERY_LENGTH + 1), None, False)
    words = " ".join(f"w{i}" for i in range(fts.MAX_QUERY_TERMS))
    assert fts.match_query(words, None, False).count(" AND ") == fts.MAX_QUERY_TERMS - 1
    with pytest.raises(fts.FullTextQueryError, match="words to search for"):
        fts.match_query(words + " more", None, False)
    deep = "(" * fts.MAX_QUERY_NESTING + "a" + ")" * fts.MAX_QUERY_NESTING
    assert fts.match_query(deep, None, False) == "a"
    with pytest.raises(fts.FullTextQueryError, match="nested parentheses"):
        fts.match_query(f"({deep})", None, False)
    with pytest.raises(fts.FullTextQueryError, match="nested too deeply"):
        fts.match_query(" NOT ".join("abcdefghijklm"), None, False)


def test_the_tree_depth_bound_is_sqlites() -> None:
    table = Table([("d", ["a b"])], 1, None)
    chain = " NOT ".join("abcdefghijkl")  # 11 NOTs: the deepest tree SQLite builds for them
    table.ids(chain)
    flat = " OR ".join(f"w{i}" for i in range(fts.MAX_QUERY_TERMS))
    assert table.ids(flat) == set()
    with pytest.raises(sqlite3.OperationalError, match="malformed MATCH"):
        table.db.execute("SELECT * FROM t WHERE t MATCH ?", (chain + " NOT m",)).fetchall()


def test_column_filters() -> None:
    table = Table(
        [("h1", ["Grand Hotel", "Birmingham"]), ("h2", ["Birmingham Inn", "Leeds"])], 2, None
    )
    columns = {"name": "c0", "city": "c1"}
    assert table.search("City:birmingham inn", columns=columns) == "c1:birmingham AND inn"
    assert table.ids("city:birmingham", columns=columns) == {"h1"}
    assert table.ids("name:birmingham", columns=columns) == {"h2"}
    assert table.ids("birmingham") == {"h1", "h2"}
    assert table.search("city:birmingham") == "city AND birmingham"  # not a column: two words
    with pytest.raises(fts.FullTextQueryError, match="city: FTS4 can only filter single words"):
        table.search('city:"birmingham inn"', columns=columns)


def test_empty_phrases_match_nothing_as_in_sqlite() -> None:
    table = Table([("a", ["the pool"]), ("b", ["pool bar"]), ("c", ["bar"])], 1, "en")
    assert table.ids('pool "the"') == set()
    assert table.ids('pool OR "the"') == {"a", "b"}
    assert table.ids('"the" NOT pool') == set()
    assert table.ids("pool NOT the") == {"a", "b"}
    assert table.ids("bar NOT pool") == {"c"}
    assert table.ids("pool NEAR/0 bar") == {"b"}


# --- against SQLite itself --------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers() -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE simple USING fts3tokenize('simple')")
    db.execute("CREATE VIRTUAL TABLE u0 USING fts3tokenize('unicode61', 'remove_diacritics=0')")
    db.execute("CREATE VIRTUAL TABLE u1 USING fts3tokenize('unicode61', 'remove_diacritics=1')")
    yield db
    db.close()


def _tokens(db: sqlite3.Connection, tokenizer: str, text: str) -> list[str]:
    return [
        token for (token,) in db.execute(f"SELECT token FROM {tokenizer} WHERE input = ?", (text,))
    ]


_NO_SURROGATES = st.characters(exclude_categories=("Cs",))
_SETTINGS = settings(max_examples=300, deadline=None)


@_SETTINGS
@given(
    text=st.text(_NO_SURROGATES, max_size=40), language=st.sampled_from([None, "en", "fr", "ru"])
)
def test_the_simple_tokenizer_hands_stored_words_back(
    tokenizers: sqlite3.Connection, text: str, language: str | None
) -> None:
    stored = fts.index_text(text, language, False)
    assert stored is not None
    assert _tokens(tokenizers, "simple", stored) == stored.split()


def _unicode61_alphabet() -> list[str]:
    """Characters whose class and folding Unicode 6.1 (SQLite's tables) and Python agree on.

    Left out: combining marks (kept in their word here, see ``fts._words``), characters that
    NFC changes (normalized here), unassigned ones, and blocks that gained characters after 6.1.
    """
    import unicodedata

    ranges = [
        (0x20, 0x36F),
        (0x370, 0x37E),
        (0x384, 0x3FF),
        (0x400, 0x527),
        (0x2010, 0x2027),
        (0x3041, 0x3096),
        (0x4E00, 0x4E80),
    ]
    return [
        c
        for start, end in ranges
        for c in map(chr, range(start, end + 1))
        if unicodedata.category(c)[0] not in "MC" and unicodedata.normalize("NFC", c) == c
    ]


@_SETTINGS
@given(text=st.text(st.sampled_from(_unicode61_alphabet()), max_size=40))
def test_words_are_unicode61_words(tokenizers: sqlite3.Connection, text: str) -> None:
    assert fts.index_text(text, None, False).split() == _tokens(tokenizers, "u0", text)


_LATIN = [chr(c) for c in [*range(0x20, 0x7F), *range(0xA0, 0x180)]]


@_SETTINGS
@given(text=st.text(st.sampled_from(_LATIN), max_size=40))
def test_accents_go_as_with_unicode61(tokenizers: sqlite3.Connection, text: str) -> None:
    assert fts.index_text(text, None, True).split() == _tokens(tokenizers, "u1", text)


_QUERY_PIECES = [
    "a",
    "b",
    "c",
    "pool",
    "the",
    "a*",
    "^b",
    '"a b"',
    '"the"',
    '"c',
    "OR",
    "AND",
    "NOT",
    "NEAR",
    "NEAR/1",
    "(",
    ")",
    "!!",
    "x:a",
    "*",
    "-b",
    "OR/2",
]


@pytest.fixture(scope="module")
def sample() -> Table:
    texts = ["a b c", "pool", "b a", "c c the", "a pool b", "the a", "x a"]
    return Table([(f"d{i}", [text]) for i, text in enumerate(texts)], 1, "en")


@_SETTINGS
@given(
    pieces=st.lists(st.sampled_from(_QUERY_PIECES), max_size=12),
    joiner=st.sampled_from([" ", "", "  \t"]),
)
def test_every_match_string_is_one_fts4_accepts(
    sample: Table, pieces: list[str], joiner: str
) -> None:
    try:
        query = sample.search(joiner.join(pieces))
    except fts.FullTextQueryError:
        return
    sample.db.execute("SELECT docid FROM t WHERE t MATCH ?", (query,)).fetchall()


@_SETTINGS
@given(text=st.text(st.sampled_from(' ab"()*^:-ORANDNOTNEAR/1\t'), max_size=30))
def test_no_text_makes_a_match_string_fts4_rejects(sample: Table, text: str) -> None:
    try:
        query = sample.search(text)
    except fts.FullTextQueryError:
        return
    sample.db.execute("SELECT docid FROM t WHERE t MATCH ?", (query,)).fetchall()


_PLAIN_PIECES = [
    "a",
    "b",
    "c",
    "a*",
    "^b",
    '"a b"',
    '"b a"',
    "OR",
    "AND",
    "NOT",
    "NEAR",
    "NEAR/1",
    "(",
    ")",
]


@pytest.fixture(scope="module")
def twins() -> tuple[Table, sqlite3.Connection]:
    """The same text processed here and stored raw for SQLite's own unicode61 to tokenize."""
    texts = ["a b c", "b", "b a", "c c", "a x b", "A", "c b a"]
    raw = sqlite3.connect(":memory:")
    raw.execute("CREATE VIRTUAL TABLE t USING fts4(c0, tokenize=unicode61)")
    raw.executemany("INSERT INTO t (docid, c0) VALUES (?, ?)", list(enumerate(texts)))
    return Table([(str(i), [text]) for i, text in enumerate(texts)], 1, None), raw


@_SETTINGS
@given(pieces=st.lists(st.sampled_from(_PLAIN_PIECES), min_size=1, max_size=10))
def test_a_rewritten_query_means_what_sqlite_makes_of_it(
    twins: tuple[Table, sqlite3.Connection], pieces: list[str]
) -> None:
    # Without stop words or stemming, the rewriting must change nothing SQLite can tell apart.
    # Where SQLite rejects the query, it is either rejected here too or, for an operand written
    # but empty ("() OR a"), run without that operand.
    table, raw = twins
    terms = " ".join(pieces)
    try:
        expected = {str(d) for (d,) in raw.execute("SELECT docid FROM t WHERE t MATCH ?", (terms,))}
    except sqlite3.OperationalError:
        try:
            table.ids(terms)
        except fts.FullTextQueryError:
            pass
        else:
            assert "()" in terms.replace(" ", "")
        return
    assert table.ids(terms) == expected


# --- rank --------------------------------------------------------------------------------------


def _matchinfo(phrases: int, columns: int, cells: list[tuple[int, int, int]]) -> bytes:
    return struct.pack(f"={2 + 3 * len(cells)}I", phrases, columns, *(n for c in cells for n in c))


def test_rank_sums_hits_over_all_hits_by_phrase_and_column() -> None:
    info = _matchinfo(2, 2, [(1, 4, 1), (0, 3, 0), (2, 5, 1), (1, 1, 1)])
    assert fts.rank(info) == 1 / 4 + 2 / 5 + 1 / 1
    assert fts.rank(_matchinfo(1, 1, [(0, 0, 0)])) == 0.0
    assert fts.rank(_matchinfo(0, 3, [])) == 0.0


@pytest.mark.parametrize(
    "info",
    [
        b"",
        b"\x01\x00\x00\x00",
        _matchinfo(1, 2, [(1, 1, 1)]),
        _matchinfo(1, 1, [(1, 1, 1)]) + b"\x00",
        _matchinfo(1, 1, [(2, 1, 1)]),
    ],
)
def test_rank_rejects_what_is_not_pcx_matchinfo(info: bytes) -> None:
    with pytest.raises(ValueError, match="matchinfo"):
        fts.rank(info)


def test_rank_adds_up_the_columns() -> None:
    table = Table([("a", ["salt", "salt lake salt"]), ("b", ["pepper", "salt"])], 2, None)
    # "salt": column 0 has 1 hit in all rows, column 1 has 3 (a: 2, b: 1)
    assert table.ranked("salt") == [(1 / 3, "b"), (1 / 1 + 2 / 3, "a")]
    # phrase by phrase: b's "salt" in column 1, then its "pepper" in column 0
    assert table.ranked("salt OR pepper") == [(1 / 3 + 1 / 1, "b"), (1 / 1 + 2 / 3, "a")]
